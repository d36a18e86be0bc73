// core/cuda/ops.h in builds without CUDA: no CUDA tensor can exist there, so these never run; they
// throw in case one is reached anyway.
#include "core/cuda/ops.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {
[[noreturn]] void unavailable() { throw Error("this wanbatch was built without CUDA"); }
}  // namespace

void cast(const Context&, const Tensor&, Tensor&) { unavailable(); }
void fill(const Context&, Tensor&, float) { unavailable(); }
void add(const Context&, const Tensor&, const Tensor&, Tensor&) { unavailable(); }
void mul(const Context&, const Tensor&, const Tensor&, Tensor&) { unavailable(); }
void scale(const Context&, const Tensor&, float, Tensor&) { unavailable(); }
void gelu_tanh(const Context&, const Tensor&, Tensor&) { unavailable(); }
void silu(const Context&, const Tensor&, Tensor&) { unavailable(); }

}  // namespace wanbatch::core::cuda
