// The benchmark's machine-readable last line, "bench variant=... key=value ...", as a map, for the
// tests of `wanbatch bench` in one process and under MPI.
#pragma once

#include <map>
#include <sstream>
#include <string>

namespace wanbatch::testing {

// The fields of the last "bench variant=" line in `output`; empty when there is none.
inline std::map<std::string, std::string> bench_fields(const std::string& output) {
  std::map<std::string, std::string> f;
  const size_t start = output.rfind("bench variant=");
  if (start == std::string::npos) return f;
  std::istringstream in(output.substr(start, output.find('\n', start) - start));
  std::string word;
  in >> word;  // "bench"
  while (in >> word) {
    const size_t eq = word.find('=');
    if (eq != std::string::npos) f[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return f;
}

}  // namespace wanbatch::testing
