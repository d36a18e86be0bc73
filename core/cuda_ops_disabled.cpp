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

// GEMMs.
void linear(const Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&) { unavailable(); }
void linear_gelu_tanh(const Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  unavailable();
}
void matmul(const Context&, const Tensor&, const Tensor&, Tensor&, bool) { unavailable(); }
double benchmark_gemm_tflops(const Context&, int64_t, int64_t, int64_t, int) { unavailable(); }

// Norms, fusions, RoPE, embeddings and layout.
void layer_norm(const Context&, const Tensor&, const Tensor&, const Tensor&, float, Tensor&) {
  unavailable();
}
void rms_norm(const Context&, const Tensor&, const Tensor&, float, Tensor&) { unavailable(); }
void layernorm_modulate(const Context&, const Tensor&, const Tensor&, const Tensor&, float,
                        Tensor&) {
  unavailable();
}
void gated_residual(const Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  unavailable();
}
void residual_layernorm_modulate(const Context&, Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, const Tensor&, float, Tensor&) {
  unavailable();
}
void residual_layer_norm(const Context&, Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, float, Tensor&) {
  unavailable();
}
void softmax(const Context&, const Tensor&, Tensor&) { unavailable(); }
void gelu_erf(const Context&, const Tensor&, Tensor&) { unavailable(); }
void clamp(const Context&, const Tensor&, float, float, Tensor&) { unavailable(); }
void linear_combination(const Context&, const std::vector<double>&,
                        const std::vector<const Tensor*>&, Tensor&) {
  unavailable();
}
void sinusoidal_embedding(const Context&, const Tensor&, Tensor&) { unavailable(); }
void rope_3d(const Context&, const Tensor&, const ops::RopeGrid&, int64_t, Tensor&) {
  unavailable();
}
void rms_norm_rope(const Context&, const Tensor&, const Tensor&, float, const ops::RopeGrid&,
                   int64_t, Tensor&) {
  unavailable();
}
void permute(const Context&, const Tensor&, const std::vector<int>&, Tensor&) { unavailable(); }
void copy_slice(const Context&, const Tensor&, int, int64_t, Tensor&, int64_t, int64_t) {
  unavailable();
}

// Attention.
void attention(const Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&,
               const ops::AttentionOptions&) {
  unavailable();
}

// The VAE's ops.
void rms_norm_channels(const Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  unavailable();
}
void channel_affine(const Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  unavailable();
}
void repeat_interleave(const Context&, const Tensor&, int, Tensor&) { unavailable(); }
void mean_dim(const Context&, const Tensor&, int, Tensor&) { unavailable(); }
void upsample_nearest_2x(const Context&, const Tensor&, Tensor&) { unavailable(); }
void conv3d(const Context&, const Tensor&, const Tensor&, const Tensor&, const ops::Conv3dParams&,
            Tensor&) {
  unavailable();
}

}  // namespace wanbatch::core::cuda
