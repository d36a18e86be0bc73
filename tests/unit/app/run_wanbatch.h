// Runs the wanbatch executable built with the tests, as a user would from a shell.
#pragma once

#include <string>

namespace wanbatch::testing {

struct RunResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// `wanbatch ARGS` (ARGS as a shell would split them); the exit status, or -1 if it did not exit.
RunResult run_wanbatch(const std::string& args);

}  // namespace wanbatch::testing
