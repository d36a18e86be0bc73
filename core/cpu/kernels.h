// The CPU backend of core::ops: plain fp32 loops (and OpenBLAS for GEMM) that read as the
// specification of each op. Shapes and devices are validated by core/ops.cpp before these run.
#pragma once

#include "core/ops.h"

namespace wanbatch::core::cpu {

void cast(const Tensor& x, Tensor& out);
void fill(Tensor& out, float value);
void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out);
void linear_gelu_tanh(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out);
void matmul(const Tensor& a, const Tensor& b, Tensor& out, bool transpose_b);
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out);
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);
void gelu_tanh(const Tensor& x, Tensor& out);
void gelu_erf(const Tensor& x, Tensor& out);
void silu(const Tensor& x, Tensor& out);
void permute(const Tensor& x, const std::vector<int>& perm, Tensor& out);
void sinusoidal_embedding(const Tensor& timesteps, Tensor& out);
void softmax(const Tensor& x, Tensor& out);
void add(const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Tensor& a, const Tensor& b, Tensor& out);
void scale(const Tensor& x, float factor, Tensor& out);
void linear_combination(const std::vector<double>& coefficients,
                        const std::vector<const Tensor*>& inputs, Tensor& out);
void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                        Tensor& out);
void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate, Tensor& out);
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options);
void rope_3d(const Tensor& x, const ops::RopeGrid& grid, int64_t token_offset, Tensor& out);
void rms_norm_rope(const Tensor& x, const Tensor& weight, float eps, const ops::RopeGrid& grid,
                   int64_t token_offset, Tensor& out);
void rms_norm_channels(const Tensor& x, const Tensor& gamma, const Tensor& bias, Tensor& out);
void channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& out);
void clamp(const Tensor& x, float lo, float hi, Tensor& out);
void copy_slice(const Tensor& src, int dim, int64_t src_begin, Tensor& dst, int64_t dst_begin,
                int64_t count);
void repeat_interleave(const Tensor& x, int dim, Tensor& out);
void mean_dim(const Tensor& x, int dim, Tensor& out);
void upsample_nearest_2x(const Tensor& x, Tensor& out);
void conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias,
            const ops::Conv3dParams& params, Tensor& out);

}  // namespace wanbatch::core::cpu
