// The process's memory high-water marks for reports: the host's (resident set) and, on a GPU,
// the device's (core/context.h).
#pragma once

#include <cstddef>

#include "core/context.h"

namespace wanbatch::core {

// The largest resident set this process has had, in bytes (getrusage).
size_t host_peak_bytes();

// The context's device memory pool now (all 0 on the CPU): bytes in tensors, bytes the pool holds
// from the driver (in tensors or cached for reuse), and how many device tensors have been
// allocated since the process started. A denoising step after the warm-up should change none of
// them (DESIGN.md: no allocation inside a step); tests/cuda/cuda_step_memory_test.cpp checks it.
struct DevicePoolStats {
  size_t in_use = 0;
  size_t reserved = 0;
  size_t allocations = 0;
};
DevicePoolStats device_pool_stats(const Context& ctx);

// The peak that matters for the context: the device's tensors on a GPU, the host's on the CPU.
inline size_t peak_bytes(const Context& ctx) {
  return ctx.device().is_cuda() ? device_peak_bytes(ctx) : host_peak_bytes();
}

}  // namespace wanbatch::core
