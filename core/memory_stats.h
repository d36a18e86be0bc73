// The process's memory high-water marks for reports: the host's (resident set) and, on a GPU,
// the device's (core/context.h).
#pragma once

#include <cstddef>

#include "core/context.h"

namespace wanbatch::core {

// The largest resident set this process has had, in bytes (getrusage).
size_t host_peak_bytes();

// The peak that matters for the context: the device's tensors on a GPU, the host's on the CPU.
inline size_t peak_bytes(const Context& ctx) {
  return ctx.device().is_cuda() ? device_peak_bytes(ctx) : host_peak_bytes();
}

}  // namespace wanbatch::core
