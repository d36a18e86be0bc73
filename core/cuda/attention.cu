// The CUDA attention op: the dispatch between cuDNN's fused flash attention
// (attention_cudnn.cpp) and this file's fallback kernel, which takes every case core::ops allows:
// f32, bf16 or f16 inputs, head dims up to 256, per-batch key lengths, an additive bias [H, Lq, Lk]
// (T5's relative positions), fp32 accumulation, out in f32, bf16 or f16. Wider heads (the VAEs')
// go through GEMMs (attention_by_gemm.cpp).
//
// The fallback is a plain flash-style kernel after the CPU twin (core/cpu/attention.cpp): a block
// takes 16 query rows of one head (two per warp) and walks the keys in tiles of 32 staged in shared
// memory as fp32. Within a tile each lane scores one key against the warp's row, the warp keeps an
// online softmax (running max and sum, the accumulator rescaled when the max grows), and each lane
// accumulates the output dims lane, lane + 32, ... from the tile's values.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/cuda/attention.h"
#include "core/cuda/check.h"
#include "core/cuda/element_access.cuh"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 2;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kTileKeys = 32;  // one key per lane
constexpr int kMaxHeadDim = 256;
constexpr int kMaxDimsPerLane = kMaxHeadDim / 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_max(float x) {
  for (int offset = 16; offset > 0; offset /= 2) {
    x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  }
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

struct KernelArgs {
  const void* bias;  // [H, Lq, Lk] or null
  DType bias_dtype;
  int64_t lq, lk, keys;  // keys: this batch entry's key length (> 0)
  int heads, d, dv;
  float scale;
};

// One batch entry: q, k, v and out point at its [L, H, D] block. Grid (⌈Lq/16⌉, H), 256 threads,
// dynamic shared memory as in shared_bytes().
template <typename TIn, typename TOut>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const TIn* __restrict__ q, const TIn* __restrict__ k,
                     const TIn* __restrict__ v, TOut* __restrict__ out, KernelArgs a) {
  extern __shared__ float smem[];
  const int d = a.d, dv = a.dv, heads = a.heads;
  const int kd = d + 1;  // padded key rows: lane j reads row j, so rows start on distinct banks
  float* k_s = smem;     // [kTileKeys][d + 1]
  float* v_s = k_s + kTileKeys * kd;  // [kTileKeys][dv]
  float* q_s = v_s + kTileKeys * dv;  // [kRowsPerBlock][d]
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int h = static_cast<int>(blockIdx.y);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;

  for (int e = static_cast<int>(threadIdx.x); e < kRowsPerBlock * d; e += blockDim.x) {
    const int r = e / d, c = e % d;
    const int64_t i = row0 + r;
    q_s[e] = i < a.lq ? to_float(q[(i * heads + h) * d + c]) : 0.0f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kMaxDimsPerLane];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int t = 0; t < kMaxDimsPerLane; ++t) acc[r][t] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < a.keys; j0 += kTileKeys) {
    __syncthreads();  // the previous tile is consumed (and, at first, q_s is written)
    for (int e = static_cast<int>(threadIdx.x); e < kTileKeys * d; e += blockDim.x) {
      const int jj = e / d, c = e % d;
      const int64_t j = j0 + jj;
      k_s[jj * kd + c] = j < a.keys ? to_float(k[(j * heads + h) * d + c]) : 0.0f;
    }
    for (int e = static_cast<int>(threadIdx.x); e < kTileKeys * dv; e += blockDim.x) {
      const int jj = e / dv, c = e % dv;
      const int64_t j = j0 + jj;
      v_s[e] = j < a.keys ? to_float(v[(j * heads + h) * dv + c]) : 0.0f;
    }
    __syncthreads();

    const int64_t j = j0 + lane;
    const bool valid = j < a.keys;
    const int tile_keys = static_cast<int>(a.keys - j0 < kTileKeys ? a.keys - j0 : kTileKeys);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int local = warp * kRowsPerWarp + r;
      const int64_t i = row0 + local;
      if (i >= a.lq) continue;  // uniform across the warp
      const float* qr = q_s + local * d;
      const float* kr = k_s + lane * kd;
      float dot = 0.0f;
      for (int c = 0; c < d; ++c) dot = fmaf(qr[c], kr[c], dot);
      float s = -INFINITY;
      if (valid) {
        s = dot * a.scale;
        if (a.bias != nullptr) {
          s += load_any(a.bias, a.bias_dtype, (static_cast<int64_t>(h) * a.lq + i) * a.lk + j);
        }
      }
      const float m_new = fmaxf(m[r], warp_max(s));
      // A tile whose scores are all −inf (a −inf bias) adds nothing; keep exp's argument finite.
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = expf(m[r] - m_use);
      const float p = valid ? expf(s - m_use) : 0.0f;
      l[r] = l[r] * alpha + warp_sum(p);
      m[r] = m_new;
#pragma unroll
      for (int t = 0; t < kMaxDimsPerLane; ++t) acc[r][t] *= alpha;
      for (int jj = 0; jj < tile_keys; ++jj) {
        const float pj = __shfl_sync(kFullMask, p, jj);
        const float* vr = v_s + jj * dv;
#pragma unroll
        for (int t = 0; t < kMaxDimsPerLane; ++t) {
          const int c = lane + 32 * t;
          if (c < dv) acc[r][t] = fmaf(pj, vr[c], acc[r][t]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    if (i >= a.lq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    TOut* o = out + (i * heads + h) * dv;
#pragma unroll
    for (int t = 0; t < kMaxDimsPerLane; ++t) {
      const int c = lane + 32 * t;
      if (c < dv) o[c] = from_float<TOut>(acc[r][t] * inv);
    }
  }
}

size_t shared_bytes(int d, int dv) {
  return sizeof(float) *
         static_cast<size_t>(kTileKeys * (d + 1) + kTileKeys * dv + kRowsPerBlock * d);
}

template <typename TIn, typename TOut>
void launch(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
            const ops::AttentionOptions& options, cudaStream_t stream) {
  const int64_t batch = q.dim(0), lq = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t lk = k.dim(1), dv = v.dim(3);
  KernelArgs args{};
  args.bias = options.bias.defined() ? options.bias.raw() : nullptr;
  args.bias_dtype = options.bias.defined() ? options.bias.dtype() : DType::F32;
  args.lq = lq;
  args.lk = lk;
  args.heads = static_cast<int>(heads);
  args.d = static_cast<int>(d);
  args.dv = static_cast<int>(dv);
  args.scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));

  const size_t smem = shared_bytes(args.d, args.dv);
  auto* kernel = &attention_kernel<TIn, TOut>;
  // Beyond 48 KiB (head dims above ~150) a kernel must opt in to more shared memory.
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((lq + kRowsPerBlock - 1) / kRowsPerBlock),
                  static_cast<unsigned>(heads));
  const auto* q_base = static_cast<const TIn*>(q.raw());
  const auto* k_base = static_cast<const TIn*>(k.raw());
  const auto* v_base = static_cast<const TIn*>(v.raw());
  auto* out_base = static_cast<TOut*>(out.raw());
  // One launch per batch entry, so that its key length is a plain argument.
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t keys = options.k_lens.empty() ? lk : options.k_lens[b];
    TOut* out_b = out_base + b * lq * heads * dv;
    if (keys == 0) {  // every key masked: the rows are zero
      CUDA_CHECK(
          cudaMemsetAsync(out_b, 0, static_cast<size_t>(lq * heads * dv) * sizeof(TOut), stream));
      continue;
    }
    args.keys = keys;
    attention_kernel<TIn, TOut><<<grid, kWarps * 32, smem, stream>>>(
        q_base + b * lq * heads * d, k_base + b * lk * heads * d, v_base + b * lk * heads * dv,
        out_b, args);
    CUDA_CHECK_LAUNCH("attention_kernel");
  }
}

template <typename TIn>
void launch_for_output(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                       const ops::AttentionOptions& options, cudaStream_t stream) {
  switch (out.dtype()) {
    case DType::BF16:
      launch<TIn, __nv_bfloat16>(q, k, v, out, options, stream);
      break;
    case DType::F16:
      launch<TIn, __half>(q, k, v, out, options, stream);
      break;
    default:
      launch<TIn, float>(q, k, v, out, options, stream);
      break;
  }
}

bool is_op_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

}  // namespace

void attention_fallback(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        Tensor& out, const ops::AttentionOptions& options) {
  WB_CHECK(q.dim(3) <= kMaxHeadDim && v.dim(3) <= kMaxHeadDim, "attention: the CUDA kernel takes ",
           "head dims up to ", kMaxHeadDim, ", got q ", q.describe(), " and v ", v.describe());
  const Resources& r = resources_of(ctx, "attention");
  DeviceGuard guard(r.device());
  const cudaStream_t stream = r.stream();
  switch (q.dtype()) {
    case DType::BF16:
      launch_for_output<__nv_bfloat16>(q, k, v, out, options, stream);
      break;
    case DType::F16:
      launch_for_output<__half>(q, k, v, out, options, stream);
      break;
    default:
      launch_for_output<float>(q, k, v, out, options, stream);
      break;
  }
}

void attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options) {
  if (out.numel() == 0) return;
  WB_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && is_op_float(q.dtype()) &&
               is_op_float(out.dtype()) &&
               (!options.bias.defined() || is_op_float(options.bias.dtype())),
           "attention: the CUDA kernels take q, k and v of one dtype among f32, bf16 and f16 (and "
           "out and bias in those), got q ",
           q.describe(), ", k ", k.describe(), ", v ", v.describe(), ", out ", out.describe());
  // WANBATCH_ATTENTION=fallback skips cuDNN and runs the fallback kernel for every case, so that
  // tests (and anyone chasing a numerical difference) can compare the two paths.
  const char* forced = std::getenv("WANBATCH_ATTENTION");
  const bool fallback_only = forced != nullptr && std::string_view(forced) == "fallback";
  if (!fallback_only && attention_cudnn(ctx, q, k, v, out, options)) return;
  if (q.dim(3) > kMaxHeadDim || v.dim(3) > kMaxHeadDim) {
    attention_by_gemm(ctx, q, k, v, out, options);
    return;
  }
  attention_fallback(ctx, q, k, v, out, options);
}

}  // namespace wanbatch::core::cuda
