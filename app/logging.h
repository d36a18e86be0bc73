// Boost.Log set-up for the wanbatch executable: one console sink on stderr, lines stamped with
// time, the MPI rank (under a launcher) and the level; non-zero ranks print warnings and errors
// only, unless every rank is asked to log.
#pragma once

#include <string>

namespace wanbatch::app {

struct LogSettings {
  std::string level = "info";  // trace, debug, info, warning, error, fatal
  bool all_ranks = false;
  int rank = -1;  // -1: not under MPI, no rank tag
};

// Throws Error for an unknown level name.
void init_logging(const LogSettings& settings);

}  // namespace wanbatch::app
