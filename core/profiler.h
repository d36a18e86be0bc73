// Per-op wall time, for the benchmark's breakdown (GEMM, attention, communication, other). While a
// profiler is attached to a Context, every op through it waits for the device before and after
// itself and adds its time under its name. That removes any overlap, so a benchmark times the
// forward without a profiler and uses a profiled run only for the shares.
#pragma once

#include <map>
#include <string>

#include "core/clock.h"
#include "core/context.h"

namespace wanbatch::core {

class OpProfiler {
 public:
  void add(const char* name, double seconds) { seconds_[name] += seconds; }
  const std::map<std::string, double>& seconds() const { return seconds_; }
  void clear() { seconds_.clear(); }

 private:
  std::map<std::string, double> seconds_;
};

// Times one op of `ctx` when a profiler is attached; costs a pointer test otherwise.
class ProfileScope {
 public:
  ProfileScope(const Context& ctx, const char* name) : ctx_(ctx), name_(name) {
    if (!ctx_.profiler()) return;
    ctx_.synchronize();
    start_ = Clock::now();
  }
  ~ProfileScope() {
    if (!ctx_.profiler()) return;
    ctx_.synchronize();
    ctx_.profiler()->add(name_, seconds_since(start_));
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  const Context& ctx_;
  const char* name_;
  Clock::time_point start_;
};

}  // namespace wanbatch::core
