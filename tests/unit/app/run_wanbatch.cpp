#include "run_wanbatch.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>

namespace wanbatch::testing {

RunResult run_wanbatch(const std::string& args) {
  const std::string command = std::string(WANBATCH_BINARY) + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.output.append(buffer.data(), n);
  const int raw = pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return result;
}

}  // namespace wanbatch::testing
