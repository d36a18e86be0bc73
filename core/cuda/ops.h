// Entry points of the CUDA kernels behind core::ops, for the ops that have one so far. core/ops.cpp
// validates arguments and dispatches here for CUDA tensors; an op not listed here has no CUDA
// kernel yet and core/ops.cpp says so. Without CUDA, core/cuda_ops_disabled.cpp throws.
#pragma once

#include "core/ops.h"

namespace wanbatch::core::cuda {

void cast(const Context& ctx, const Tensor& x, Tensor& out);
void fill(const Context& ctx, Tensor& out, float value);
void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void scale(const Context& ctx, const Tensor& x, float factor, Tensor& out);
void gelu_tanh(const Context& ctx, const Tensor& x, Tensor& out);
void silu(const Context& ctx, const Tensor& x, Tensor& out);

// GEMMs through cuBLASLt (gemm.cpp).
void linear(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            Tensor& out);
void linear_gelu_tanh(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      Tensor& out);
void matmul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool transpose_b);
// The GEMM ceiling for `wanbatch bench`: times out[m, n] = x[m, k] · w[n, k]ᵀ in bf16 (random
// inputs, no bias) on ctx's stream with CUDA events after a warm-up and returns the median's
// TFLOP/s (2·m·n·k flops per GEMM). Allocates its own tensors.
double benchmark_gemm_tflops(const Context& ctx, int64_t m, int64_t n, int64_t k, int iterations);

// Norms, fusions, RoPE, embeddings and layout (norm.cu, rope.cu, layout.cu).
void layer_norm(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                float eps, Tensor& out);
void rms_norm(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out);
void layernorm_modulate(const Context& ctx, const Tensor& x, const Tensor& shift,
                        const Tensor& scale, float eps, Tensor& out);
void gated_residual(const Context& ctx, const Tensor& x, const Tensor& y, const Tensor& gate,
                    Tensor& out);
void residual_layernorm_modulate(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                                 const Tensor& shift, const Tensor& scale, float eps, Tensor& out);
void residual_layer_norm(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                         const Tensor& weight, const Tensor& bias, float eps, Tensor& out);
void softmax(const Context& ctx, const Tensor& x, Tensor& out);
void gelu_erf(const Context& ctx, const Tensor& x, Tensor& out);
void clamp(const Context& ctx, const Tensor& x, float lo, float hi, Tensor& out);
void linear_combination(const Context& ctx, const std::vector<double>& coefficients,
                        const std::vector<const Tensor*>& inputs, Tensor& out);
void sinusoidal_embedding(const Context& ctx, const Tensor& timesteps, Tensor& out);
void rope_3d(const Context& ctx, const Tensor& x, const ops::RopeGrid& grid, int64_t token_offset,
             Tensor& out);
void rms_norm_rope(const Context& ctx, const Tensor& x, const Tensor& weight, float eps,
                   const ops::RopeGrid& grid, int64_t token_offset, Tensor& out);
void permute(const Context& ctx, const Tensor& x, const std::vector<int>& perm, Tensor& out);
void copy_slice(const Context& ctx, const Tensor& src, int dim, int64_t src_begin, Tensor& dst,
                int64_t dst_begin, int64_t count);

// Attention: cuDNN fused SDPA and the fallback kernel (attention_cudnn.cpp, attention.cu).
// bf16/f16 without bias go to cuDNN's fused flash attention where it builds a plan for the shape,
// everything else (f32, the T5 bias, refused shapes) to the fallback kernel; the environment
// variable WANBATCH_ATTENTION=fallback forces the fallback kernel (for tests and comparisons).
void attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options);

// The VAE's ops: conv3d and the channel-wise ones (conv3d.cpp, vae_ops.cu).
void rms_norm_channels(const Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& bias,
                       Tensor& out);
void channel_affine(const Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift,
                    Tensor& out);
void repeat_interleave(const Context& ctx, const Tensor& x, int dim, Tensor& out);
void mean_dim(const Context& ctx, const Tensor& x, int dim, Tensor& out);
void upsample_nearest_2x(const Context& ctx, const Tensor& x, Tensor& out);
void conv3d(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            const ops::Conv3dParams& params, Tensor& out);
// conv3d's helpers (vae_ops.cu), for conv3d.cpp only (no stubs without CUDA): the first copies
// x [planes, dims] (planes = batch × channels) into padded [planes, padded_dims] at offset
// `front` with zeros around it; the second adds bias [O] to out [(N,) O, T, H, W].
void conv3d_pad_input(const Context& ctx, const void* x, DType dtype, int64_t planes,
                      const std::array<int64_t, 3>& dims, const std::array<int64_t, 3>& front,
                      const std::array<int64_t, 3>& padded_dims, void* padded);
void conv3d_add_bias(const Context& ctx, Tensor& out, const Tensor& bias);

}  // namespace wanbatch::core::cuda
