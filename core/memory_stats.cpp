#include "core/memory_stats.h"

#include <sys/resource.h>

#include "core/cuda/runtime.h"

namespace wanbatch::core {

size_t host_peak_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

DevicePoolStats device_pool_stats(const Context& ctx) {
  if (!ctx.device().is_cuda()) return {};
  const int device = ctx.device().index;
  return {cuda::current_device_bytes(device), cuda::reserved_device_bytes(device),
          cuda::device_allocation_count(device)};
}

}  // namespace wanbatch::core
