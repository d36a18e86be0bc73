#include "core/context.h"

#include "core/cuda/runtime.h"

namespace wanbatch::core {

Context Context::cpu() { return Context(); }

size_t device_bytes_in_use(const Context& ctx) {
  return ctx.device().is_cuda() ? cuda::current_device_bytes(ctx.device().index) : 0;
}

size_t device_peak_bytes(const Context& ctx) {
  return ctx.device().is_cuda() ? cuda::peak_device_bytes(ctx.device().index) : 0;
}

void reset_device_peak_bytes(const Context& ctx) {
  if (ctx.device().is_cuda()) cuda::reset_peak_device_bytes(ctx.device().index);
}

}  // namespace wanbatch::core
