// Wall-clock timing for logs and reports: one clock, and seconds since a start point.
#pragma once

#include <chrono>

namespace wanbatch::core {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace wanbatch::core
