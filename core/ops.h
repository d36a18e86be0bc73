// core::ops: the operations the Wan networks are written in. Every op takes its output (already
// allocated, right shape) as the last argument(s) and runs on the context's device. The CPU
// backend (core/cpu/) computes in fp32 and accepts bf16/f16 inputs and outputs by converting; it
// is the readable reference. A CUDA tensor reaching an op without a CUDA kernel is an error, never
// a silent fallback to the CPU.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace wanbatch::core::ops {

// out = x converted to out's dtype (same element count; also a plain copy when dtypes match).
void cast(const Context& ctx, const Tensor& x, Tensor& out);
// Every element of out set to `value`.
void fill(const Context& ctx, Tensor& out, float value);

// out[..., N] = x[..., K] · weight[N, K]ᵀ + bias[N] (PyTorch Linear; bias may be undefined).
void linear(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            Tensor& out);
// out = gelu_tanh(linear(x, weight, bias)) in one op (the FFN's first half; on CUDA the GELU runs
// in the GEMM's epilogue, so the pre-activation never goes through memory).
void linear_gelu_tanh(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      Tensor& out);
// out[B, M, N] = a[B, M, K] · b[B, K, N] (b[B, N, K] when transpose_b); 2-D operands work as B = 1
// and a 2-D b is shared by every batch.
void matmul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out,
            bool transpose_b = false);

// Normalisation over the last dimension. weight/bias may be undefined (no affine).
void layer_norm(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                float eps, Tensor& out);
// x · rsqrt(mean(x²) + eps) · weight (Wan's RMSNorm and T5's LayerNorm; weight may be undefined).
void rms_norm(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out);

// Element-wise activations.
void gelu_tanh(const Context& ctx, const Tensor& x, Tensor& out);  // GELU, tanh approximation
void gelu_erf(const Context& ctx, const Tensor& x, Tensor& out);   // exact GELU, x·Φ(x)
void silu(const Context& ctx, const Tensor& x, Tensor& out);
// Softmax over the last dimension.
void softmax(const Context& ctx, const Tensor& x, Tensor& out);

// Element-wise arithmetic. b's shape must equal a trailing part of a's shape (it is broadcast over
// a's leading dimensions). out may alias a.
void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void scale(const Context& ctx, const Tensor& x, float factor, Tensor& out);
// out = Σ coefficients[k] · inputs[k], all of one shape, summed in double and rounded once (the
// solvers' updates). out may alias an input.
void linear_combination(const Context& ctx, const std::vector<double>& coefficients,
                        const std::vector<const Tensor*>& inputs, Tensor& out);

// out = x with its dimensions reordered: out.shape[i] = x.shape[perm[i]] (up to 8 dimensions).
void permute(const Context& ctx, const Tensor& x, const std::vector<int>& perm, Tensor& out);

// Sinusoidal timestep embedding (wan-spec "DiT forward", computed in float64): for each value t of
// `timesteps` [T], out[T, dim] = [cos(t·f_0..f_{half-1}), sin(t·f_0..f_{half-1})] with
// f_i = 10000^(−i/half), half = dim/2 — cosines first.
void sinusoidal_embedding(const Context& ctx, const Tensor& timesteps, Tensor& out);

// Wan fusions (wan-spec "DiT forward"). x is [L, D]; shift, scale and gate are [D], [1, D] (one
// row for every token) or [L, D] (per-token timesteps, TI2V).
// out = layer_norm(x, no affine, eps) · (1 + scale) + shift
void layernorm_modulate(const Context& ctx, const Tensor& x, const Tensor& shift,
                        const Tensor& scale, float eps, Tensor& out);
// out = x + y · gate (out may alias x)
void gated_residual(const Context& ctx, const Tensor& x, const Tensor& y, const Tensor& gate,
                    Tensor& out);
// A residual update and the norm that reads its result, in one pass over x (every residual of a
// DiT block feeds a norm): x ← x + y · gate (gate undefined: x + y), then
// out = layernorm_modulate(x, shift, scale, eps). x is the f32 residual stream [L, D], updated in
// place; out must not overlap x or y. Equal to gated_residual (or add) followed by the norm.
void residual_layernorm_modulate(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                                 const Tensor& shift, const Tensor& scale, float eps, Tensor& out);
// The same with out = layer_norm(x, weight, bias, eps) (weight and bias [D], either may be
// undefined).
void residual_layer_norm(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                         const Tensor& weight, const Tensor& bias, float eps, Tensor& out);

struct AttentionOptions {
  float scale = 0.0f;           // 0 means 1/sqrt(head_dim)
  std::vector<int64_t> k_lens;  // per batch entry: keys at positions ≥ k_lens[b] are masked
  Tensor bias;                  // optional additive bias [H, Lq, Lk] (T5 relative positions)
};
// Scaled dot-product attention. q [B, Lq, H, D], k [B, Lk, H, D], v [B, Lk, H, Dv] →
// out [B, Lq, H, Dv]. A query whose keys are all masked gets zeros.
void attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const AttentionOptions& options = {});

// Wan's 3D rotary embedding (wan-spec "3D RoPE"). x is [L, H, D]: L consecutive tokens of the
// (f, h, w) grid starting at global token index `token_offset` (non-zero on Ulysses ranks); tokens
// at or beyond f·h·w (sequence padding) are copied unchanged. out may alias x.
struct RopeGrid {
  int64_t frames = 0, height = 0, width = 0;
};
void rope_3d(const Context& ctx, const Tensor& x, const RopeGrid& grid, int64_t token_offset,
             Tensor& out);
// Wan's self-attention q/k path in one pass (the `rmsnorm_rope` fusion): x [L, H, D] is
// RMS-normalised over each token's full H·D channels (weight [H·D] or undefined), then rotated as
// rope_3d does (padding tokens are normalised, not rotated). Equals rms_norm on x viewed as
// [L, H·D] followed by rope_3d, with the intermediate kept in fp32. out may alias x.
void rms_norm_rope(const Context& ctx, const Tensor& x, const Tensor& weight, float eps,
                   const RopeGrid& grid, int64_t token_offset, Tensor& out);

// Wan VAE's RMS_norm (channel first, wan-spec "VAEs"): x [C, ...] is normalised over its first
// dimension at every position p: out[c, p] = x[c, p] / max(‖x[:, p]‖₂, 1e-12) · sqrt(C) · gamma[c]
// (+ bias[c]), i.e. F.normalize's eps, then the sqrt(C) scale. gamma [C]; bias [C] or undefined.
void rms_norm_channels(const Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& bias,
                       Tensor& out);
// out[c, ...] = x[c, ...] · scale[c] + shift[c] for x [C, ...] and scale, shift [C] (per-channel
// affine, as the VAE latent normalisation). out may alias x.
void channel_affine(const Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift,
                    Tensor& out);
// out = min(max(x, lo), hi). out may alias x.
void clamp(const Context& ctx, const Tensor& x, float lo, float hi, Tensor& out);

// Copies `count` entries along dimension `dim` of src, from src_begin on, into dst from dst_begin
// on; every other dimension of src and dst must be equal and the dtypes the same. Concatenating,
// narrowing and writing one time range of a video are all this op. src and dst must not overlap.
void copy_slice(const Context& ctx, const Tensor& src, int dim, int64_t src_begin, Tensor& dst,
                int64_t dst_begin, int64_t count);
// out = x with every entry along `dim` repeated r = out.dim(dim) / x.dim(dim) times in a row
// (torch.repeat_interleave): out[.., i, ..] = x[.., i / r, ..]. Any dtype (elements are moved).
void repeat_interleave(const Context& ctx, const Tensor& x, int dim, Tensor& out);
// out = the mean of x over dimension `dim`; out has x's shape without that dimension. Summed in
// double.
void mean_dim(const Context& ctx, const Tensor& x, int dim, Tensor& out);
// Nearest-neighbour 2× upsampling of the last two dimensions: out[..., y, x] = x[..., y/2, x/2]
// (PyTorch's 'nearest' and 'nearest-exact' modes agree at scale 2).
void upsample_nearest_2x(const Context& ctx, const Tensor& x, Tensor& out);

// 3-D convolution with zero padding given per side, so causal (past-only) padding is expressible.
// x [C, T, H, W] or [N, C, T, H, W]; weight [O, C, kt, kh, kw]; bias [O] or undefined;
// out [(N,) O, T', H', W'] with T' = (T + pad_t0 + pad_t1 − kt) / stride_t + 1, and so on.
struct Conv3dParams {
  std::array<int64_t, 3> stride{1, 1, 1};            // t, h, w
  std::array<int64_t, 6> padding{0, 0, 0, 0, 0, 0};  // t front, t back, top, bottom, left, right
};
Shape conv3d_output_shape(const Shape& x, const Shape& weight, const Conv3dParams& params);
void conv3d(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            const Conv3dParams& params, Tensor& out);

}  // namespace wanbatch::core::ops
