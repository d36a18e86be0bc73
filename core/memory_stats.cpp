#include "core/memory_stats.h"

#include <sys/resource.h>

namespace wanbatch::core {

size_t host_peak_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace wanbatch::core
