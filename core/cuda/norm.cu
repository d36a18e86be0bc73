// CUDA kernels of the row-wise ops in core/cuda/ops.h — layer_norm, rms_norm, the Wan fusions
// layernorm_modulate and gated_residual, softmax — and of the small element-wise ones gelu_erf,
// clamp, linear_combination and sinusoidal_embedding. Inputs and outputs are f32, bf16 or f16,
// each independently; arithmetic is fp32 (fp64 where the CPU twin's contract says "in double").
// Row ops run one block per row: the row is read once into shared memory as fp32 (when it fits),
// the statistics are two-pass (mean, then centred squares) with warp-shuffle block reductions, and
// the epilogue writes with 4-wide stores. core/ops.cpp has already checked devices and shapes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/element_access.cuh"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

// Element loads and stores: core/cuda/element_access.cuh.

// Four consecutive elements as one aligned access (16 bytes for f32, 8 for bf16/f16).
template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};

template <typename T>
__device__ __forceinline__ void load4(const T* p, float (&f)[4]) {
  const Pack4<T> pack = *reinterpret_cast<const Pack4<T>*>(p);
#pragma unroll
  for (int k = 0; k < 4; ++k) f[k] = to_float(pack.v[k]);
}

template <typename T>
__device__ __forceinline__ void store4(T* p, const float (&f)[4]) {
  Pack4<T> pack;
#pragma unroll
  for (int k = 0; k < 4; ++k) pack.v[k] = from_float<T>(f[k]);
  *reinterpret_cast<Pack4<T>*>(p) = pack;
}

// Small parameter vectors (weights, shift, scale, gate, timesteps) keep their own dtype, known
// only at run time (load_any, store_any); the switch is uniform across the block.

// ---- block reductions ------------------------------------------------------------------------

struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Every thread gets the block's total. blockDim.x is a multiple of 32; `scratch` holds 32 floats.
// The leading barrier lets the caller reduce again with the same scratch right away.
template <typename Op>
__device__ float block_reduce(float v, float* scratch, Op op, float identity) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_reduce(lane < warps ? scratch[lane] : identity, op);
}

// Two sums in one block reduction (one pair of barriers instead of two); the same per-value order
// of additions as two block_reduce calls. `scratch` holds 32 float2.
__device__ void block_sum2(float& a, float& b, float2* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  a = warp_reduce(a, SumOp{});
  b = warp_reduce(b, SumOp{});
  __syncthreads();
  if (lane == 0) scratch[warp] = make_float2(a, b);
  __syncthreads();
  const float2 v = lane < warps ? scratch[lane] : make_float2(0.0f, 0.0f);
  a = warp_reduce(v.x, SumOp{});
  b = warp_reduce(v.y, SumOp{});
}

// ---- row-wise normalisations -----------------------------------------------------------------

enum class NormKind { kLayer, kRms, kModulate };

// A per-column parameter: [D] or [1, D] (row_stride 0) or [L, D] (row_stride D); null if absent.
// vec4: f32, 16-byte aligned rows, so four columns from a multiple of 4 are one float4 load.
struct Param {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t row_stride = 0;
  bool vec4 = false;
  __device__ float at(int64_t row, int64_t j) const {
    return load_any(data, dtype, row * row_stride + j);
  }
  __device__ void at4(int64_t row, int64_t j, float (&f)[4]) const {
    if (vec4) {
      const float4 v =
          *reinterpret_cast<const float4*>(static_cast<const float*>(data) + row * row_stride + j);
      f[0] = v.x;
      f[1] = v.y;
      f[2] = v.z;
      f[3] = v.w;
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) f[k] = at(row, j + k);
    }
  }
};

struct NormArgs {
  const void* x;
  void* out;
  int64_t width;
  float eps;
  bool vec;            // rows start 4-element aligned and width % 4 == 0: 4-wide loads and stores
  bool cached;         // the row fits in dynamic shared memory (width floats)
  Param weight, bias;  // layer_norm / rms_norm affine (either may be absent)
  Param shift, scale;  // layernorm_modulate
};

// Rows at most this wide are kept in shared memory as fp32 (32 KiB, within the default limit);
// wider rows are re-read from global memory (L2) by the later passes.
constexpr int64_t kMaxCachedWidth = 8192;

// Threads per row block: about four 4-element groups per thread, 32 to 512 threads.
int row_threads(int64_t width) {
  const int64_t groups = (width + 3) / 4;
  int threads = 32;
  while (threads < 512 && threads * 4 < groups) threads *= 2;
  return threads;
}

template <typename Tx>
__device__ __forceinline__ float row_value(const NormArgs& a, const Tx* x, const float* cache,
                                           int64_t j) {
  return a.cached ? cache[j] : to_float(x[j]);
}

// The epilogue of four columns from j, in the CPU twin's order of roundings (_rn keeps nvcc from
// contracting to FMA): normalise with the row's statistics, then modulate (· (1 + scale) + shift)
// or apply the affine weight and bias; the parameters as float4 loads where they allow it.
template <NormKind kKind>
__device__ __forceinline__ void finish_group(const NormArgs& a, int64_t row, int64_t j, float mean,
                                             float residual, float inv, float (&f)[4]) {
  float p[4], q[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (kKind == NormKind::kRms) {
      f[k] = __fmul_rn(f[k], inv);
    } else {
      f[k] = __fmul_rn(__fsub_rn(__fsub_rn(f[k], mean), residual), inv);
    }
  }
  if constexpr (kKind == NormKind::kModulate) {
    a.scale.at4(row, j, p);
    a.shift.at4(row, j, q);
#pragma unroll
    for (int k = 0; k < 4; ++k) f[k] = __fadd_rn(__fmul_rn(f[k], __fadd_rn(1.0f, p[k])), q[k]);
  } else {
    if (a.weight.data) {
      a.weight.at4(0, j, p);
#pragma unroll
      for (int k = 0; k < 4; ++k) f[k] = __fmul_rn(f[k], p[k]);
    }
    if (a.bias.data) {
      a.bias.at4(0, j, q);
#pragma unroll
      for (int k = 0; k < 4; ++k) f[k] = __fadd_rn(f[k], q[k]);
    }
  }
}

// One block per row. Pass 1 loads the row (caching it) and sums x (layer) or x² (rms); pass 2
// (layer kinds) sums the centred squares; pass 3 writes. The CPU twin does the same in double;
// fp32 here is within ~1e-6 relative for Wan's widths. out may alias x: every element is read
// before the block's first reduction finishes, and written by the thread that read it.
template <typename Tx, typename To, NormKind kKind>
__global__ void row_norm_kernel(NormArgs a) {
  extern __shared__ float cache[];
  __shared__ float scratch[32];
  __shared__ float2 scratch2[32];
  const int64_t row = blockIdx.x, width = a.width;
  const Tx* x = static_cast<const Tx*>(a.x) + row * width;
  To* out = static_cast<To*>(a.out) + row * width;
  const int64_t first = a.vec ? 4 * static_cast<int64_t>(threadIdx.x) : threadIdx.x;
  const int64_t step = a.vec ? 4 * static_cast<int64_t>(blockDim.x) : blockDim.x;
  constexpr bool kRms = kKind == NormKind::kRms;

  float sum = 0.0f;
  if (a.vec) {
    for (int64_t j = first; j < width; j += step) {
      float f[4];
      load4(x + j, f);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (a.cached) cache[j + k] = f[k];
        sum += kRms ? f[k] * f[k] : f[k];
      }
    }
  } else {
    for (int64_t j = first; j < width; j += step) {
      const float v = to_float(x[j]);
      if (a.cached) cache[j] = v;
      sum += kRms ? v * v : v;
    }
  }
  sum = block_reduce(sum, scratch, SumOp{}, 0.0f);

  float mean = 0.0f, residual = 0.0f, inv = 0.0f;
  if constexpr (kRms) {
    inv = 1.0f / sqrtf(sum / static_cast<float>(width) + a.eps);
  } else {
    mean = sum / static_cast<float>(width);
    // Corrected two-pass: Σ(x − mean) recovers what rounding the mean to fp32 lost, so the
    // normalisation subtracts the mean to better than fp32 (a row with a small spread would
    // otherwise amplify the mean's rounding by 1/std).
    float centred = 0.0f;
    // Same element-to-thread mapping as pass 1, so a cached value is read by the thread that wrote
    // it; the barrier inside block_reduce above already ordered it anyway.
    for (int64_t j0 = first; j0 < width; j0 += step) {
      const int count = a.vec ? 4 : 1;
      for (int k = 0; k < count; ++k) {
        const float d = row_value(a, x, cache, j0 + k) - mean;
        residual += d;
        centred += d * d;
      }
    }
    block_sum2(residual, centred, scratch2);
    residual /= static_cast<float>(width);
    inv = 1.0f /
          sqrtf(fmaxf(centred / static_cast<float>(width) - residual * residual, 0.0f) + a.eps);
  }

  // The epilogue in the CPU twin's order of roundings; _rn keeps nvcc from contracting to FMA.
  auto finish = [&](int64_t j, float v) {
    float r;
    if constexpr (kRms) {
      r = __fmul_rn(v, inv);
    } else {
      r = __fmul_rn(__fsub_rn(__fsub_rn(v, mean), residual), inv);
    }
    if constexpr (kKind == NormKind::kModulate) {
      r = __fadd_rn(__fmul_rn(r, __fadd_rn(1.0f, a.scale.at(row, j))), a.shift.at(row, j));
    } else {
      if (a.weight.data) r = __fmul_rn(r, a.weight.at(0, j));
      if (a.bias.data) r = __fadd_rn(r, a.bias.at(0, j));
    }
    return r;
  };
  auto finish4 = [&](int64_t j, float(&f)[4]) {
    finish_group<kKind>(a, row, j, mean, residual, inv, f);
  };
  if (a.vec) {
    for (int64_t j = first; j < width; j += step) {
      float f[4];
      if (a.cached) {
#pragma unroll
        for (int k = 0; k < 4; ++k) f[k] = cache[j + k];
      } else {
        load4(x + j, f);
      }
      finish4(j, f);
      store4(out + j, f);
    }
  } else {
    for (int64_t j = first; j < width; j += step) {
      out[j] = from_float<To>(finish(j, row_value(a, x, cache, j)));
    }
  }
}

// ---- rows held in registers -------------------------------------------------------------------
// The DiT's rows (1 536 to 5 120 wide) fit in the registers of a few warps (kRegChunks float4
// chunks a thread, few enough to keep many warps per SM in flight), so the norm can read each row
// once and reduce with warp shuffles and one barrier per statistic, with no shared-memory copy of
// the row. This kernel serves the norms above when the row fits and the
// residual-then-norm fusions (x ← x + y·gate, then the norm of the new x), which are its reason:
// the DiT chains every residual update into the next norm, and fused they read x once, not twice.

// float4 chunks a thread holds; a row has at most kRegChunks · 32 · kMaxRowWarps chunks (8 192
// elements). A block holds as many rows as fit in kRegRowWarps warps, at least one.
constexpr int kRegChunks = 4;
constexpr int kMaxRowWarps = 16;
constexpr int kRegRowWarps = 8;

struct ResidualArgs {
  const void* y = nullptr;  // null: no residual update (x is only read)
  Param gate;               // absent: x + y
};

// The sum over one row's warps (blockDim.x threads); every thread of the block calls it.
// `partial` is this call's own [rows per block][kMaxRowWarps] scratch, so no second barrier.
__device__ __forceinline__ void row_sum2(float& a, float& b, float2 (*partial)[kMaxRowWarps]) {
  a = warp_reduce(a, SumOp{});
  b = warp_reduce(b, SumOp{});
  const int warps = blockDim.x / 32;
  if (warps == 1) return;
  if (threadIdx.x % 32 == 0) partial[threadIdx.y][threadIdx.x / 32] = make_float2(a, b);
  __syncthreads();
  a = 0.0f;
  b = 0.0f;
  for (int w = 0; w < warps; ++w) {  // the same order on every thread: one value per row
    a += partial[threadIdx.y][w].x;
    b += partial[threadIdx.y][w].y;
  }
}

// Rows [L, width], width % 4 == 0 and 16-byte aligned rows; blockDim (32·row_warps, rows per
// block). With kResidual, Tx is float and each x element becomes x + y·gate (rounded as stored),
// written back to x and normalised. The statistics and epilogue follow row_norm_kernel (and so
// the CPU twin's order of roundings); only the order of the partial sums differs.
template <typename Tx, typename Ty, typename To, NormKind kKind, bool kResidual>
__global__ void __launch_bounds__(32 * kMaxRowWarps)
    register_norm_kernel(NormArgs a, ResidualArgs res, int64_t rows) {
  __shared__ float2 partial_sum[kRegRowWarps][kMaxRowWarps];
  __shared__ float2 partial_centred[kRegRowWarps][kMaxRowWarps];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < rows;  // idle rows still reach the barriers
  const int64_t width = a.width;
  Tx* x = static_cast<Tx*>(const_cast<void*>(a.x)) + row * width;
  constexpr bool kRms = kKind == NormKind::kRms;

  float v[kRegChunks][4];
  float sum = 0.0f, unused = 0.0f;
#pragma unroll
  for (int s = 0; s < kRegChunks; ++s) {
    const int64_t j = 4 * (threadIdx.x + static_cast<int64_t>(s) * blockDim.x);
    if (!live || j >= width) continue;
    load4(x + j, v[s]);
    if constexpr (kResidual) {
      float y[4], g[4] = {1.0f, 1.0f, 1.0f, 1.0f};
      load4(static_cast<const Ty*>(res.y) + row * width + j, y);
      if (res.gate.data) res.gate.at4(row, j, g);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        v[s][k] =
            res.gate.data ? __fadd_rn(v[s][k], __fmul_rn(y[k], g[k])) : __fadd_rn(v[s][k], y[k]);
      }
      store4(x + j, v[s]);  // Tx is float: stored exactly as held
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) sum += kRms ? v[s][k] * v[s][k] : v[s][k];
  }
  row_sum2(sum, unused, partial_sum);

  float mean = 0.0f, residual = 0.0f, inv = 0.0f;
  if constexpr (kRms) {
    inv = 1.0f / sqrtf(sum / static_cast<float>(width) + a.eps);
  } else {
    mean = sum / static_cast<float>(width);
    float centred = 0.0f;
#pragma unroll
    for (int s = 0; s < kRegChunks; ++s) {
      const int64_t j = 4 * (threadIdx.x + static_cast<int64_t>(s) * blockDim.x);
      if (!live || j >= width) continue;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float d = v[s][k] - mean;
        residual += d;
        centred += d * d;
      }
    }
    row_sum2(residual, centred, partial_centred);
    residual /= static_cast<float>(width);
    inv = 1.0f /
          sqrtf(fmaxf(centred / static_cast<float>(width) - residual * residual, 0.0f) + a.eps);
  }
  if (!live) return;
  To* out = static_cast<To*>(a.out) + row * width;
#pragma unroll
  for (int s = 0; s < kRegChunks; ++s) {
    const int64_t j = 4 * (threadIdx.x + static_cast<int64_t>(s) * blockDim.x);
    if (j >= width) continue;
    finish_group<kKind>(a, row, j, mean, residual, inv, v[s]);
    store4(out + j, v[s]);
  }
}

// Softmax over each row: max, then Σ exp(x − max), then exp(x − max) / Σ. The cache holds the
// exponentials after pass 2 so they are computed once.
template <typename Tx, typename To>
__global__ void softmax_kernel(const Tx* x_all, To* out_all, int64_t width, bool cached) {
  extern __shared__ float cache[];
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const Tx* x = x_all + row * width;
  To* out = out_all + row * width;
  float peak = -INFINITY;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float v = to_float(x[j]);
    if (cached) cache[j] = v;
    peak = fmaxf(peak, v);
  }
  peak = block_reduce(peak, scratch, MaxOp{}, -INFINITY);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float e = expf((cached ? cache[j] : to_float(x[j])) - peak);
    if (cached) cache[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, scratch, SumOp{}, 0.0f);
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float e = cached ? cache[j] : expf(to_float(x[j]) - peak);
    out[j] = from_float<To>(__fdiv_rn(e, sum));
  }
}

// out = x + y · gate for x, y, out [L, D] and gate [D], [1, D] or [L, D]; one block per row.
// out may alias x (each element is read and written by one thread).
template <typename Tx, typename Ty, typename To>
__global__ void gated_residual_kernel(const Tx* x_all, const Ty* y_all, To* out_all, Param gate,
                                      int64_t width, bool vec) {
  const int64_t row = blockIdx.x;
  const Tx* x = x_all + row * width;
  const Ty* y = y_all + row * width;
  To* out = out_all + row * width;
  if (vec) {
    for (int64_t j = 4 * static_cast<int64_t>(threadIdx.x); j < width; j += 4 * blockDim.x) {
      float a[4], b[4], r[4];
      load4(x + j, a);
      load4(y + j, b);
      float g[4];
      gate.at4(row, j, g);
#pragma unroll
      for (int k = 0; k < 4; ++k) r[k] = __fadd_rn(a[k], __fmul_rn(b[k], g[k]));
      store4(out + j, r);
    }
  } else {
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
      out[j] =
          from_float<To>(__fadd_rn(to_float(x[j]), __fmul_rn(to_float(y[j]), gate.at(row, j))));
    }
  }
}

// ---- element-wise ----------------------------------------------------------------------------

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

// Exact GELU written with erfc: x·Φ(x) = ½·x·erfc(−x/√2). The textbook ½·x·(1 + erf(x/√2))
// cancels for negative x in fp32; erfc keeps full relative precision there.
struct GeluErfOp {
  __device__ float operator()(float x) const { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }
};
// The CPU's std::min(std::max(v, lo), hi) exactly, NaN included (it passes through).
struct ClampOp {
  float lo, hi;
  __device__ float operator()(float v) const {
    const float low = v < lo ? lo : v;
    return hi < low ? hi : low;
  }
};

template <typename Tx, typename To, typename Op>
__global__ void unary_kernel(const Tx* x, To* out, int64_t n, Op op) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = from_float<To>(op(to_float(x[i])));
  }
}

// Inputs of one linear_combination, passed by value (kernel parameter space).
constexpr int kMaxCombinationInputs = 16;
struct CombinationArgs {
  const void* inputs[kMaxCombinationInputs];
  DType dtypes[kMaxCombinationInputs];
  double coefficients[kMaxCombinationInputs];
  int count;
};

// Σ c_k · x_k in double, in the CPU's order, rounded once; _rn keeps it free of FMA contraction
// so the f32 result equals the CPU's bit for bit. out may alias an input (same element, one
// thread, read before written).
__global__ void linear_combination_kernel(CombinationArgs a, void* out, DType out_dtype,
                                          int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    double sum = 0.0;
    for (int k = 0; k < a.count; ++k) {
      const double v = load_any(a.inputs[k], a.dtypes[k], i);
      sum = __dadd_rn(sum, __dmul_rn(a.coefficients[k], v));
    }
    store_any(out, out_dtype, i, static_cast<float>(sum));
  }
}

// out[r, i] = cos(t_r·f_i), out[r, half + i] = sin(t_r·f_i), f_i = 10000^(−i/half), in double.
__global__ void sinusoidal_kernel(const void* timesteps, DType t_dtype, void* out, DType out_dtype,
                                  int64_t count, int64_t half) {
  for (int64_t e = first_index(); e < count * half; e += grid_stride()) {
    const int64_t r = e / half, i = e % half;
    const double t = load_any(timesteps, t_dtype, r);
    const double angle = t * pow(10000.0, -static_cast<double>(i) / static_cast<double>(half));
    double s, c;
    sincos(angle, &s, &c);
    store_any(out, out_dtype, r * 2 * half + i, static_cast<float>(c));
    store_any(out, out_dtype, r * 2 * half + half + i, static_cast<float>(s));
  }
}

// ---- host side -------------------------------------------------------------------------------

bool aligned4(const void* p, size_t element) {
  return reinterpret_cast<uintptr_t>(p) % (4 * element) == 0;
}

Param param_of(const Tensor& t, int64_t rows) {
  Param p;
  if (!t.defined()) return p;
  p.data = t.raw();
  p.dtype = t.dtype();
  // [L, D] with L > 1 is per row; [D] and [1, D] broadcast (rows == 1 makes both the same).
  p.row_stride = (t.ndim() == 2 && t.dim(0) > 1 && rows > 1) ? t.dim(1) : 0;
  p.vec4 = p.dtype == DType::F32 && aligned4(p.data, sizeof(float)) && p.row_stride % 4 == 0;
  return p;
}

// register_norm_kernel on x's rows when they fit it (width a multiple of 4 within the warps'
// registers, every row 16-byte aligned); false, launching nothing, otherwise. `y` (kResidual):
// the residual's addend, x then being float and written in place.
template <NormKind kKind, bool kResidual>
bool launch_register_norm(const Context& ctx, const Tensor& x, const Tensor* y, Tensor& out,
                          NormArgs a, ResidualArgs res) {
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  const int64_t chunks = width / 4;
  const int64_t row_warps = (chunks + 32 * kRegChunks - 1) / (32 * kRegChunks);
  const bool fits = width % 4 == 0 && row_warps <= kMaxRowWarps &&
                    aligned4(x.raw(), dtype_size(x.dtype())) &&
                    aligned4(out.raw(), dtype_size(out.dtype())) &&
                    (!y || aligned4(y->raw(), dtype_size(y->dtype())));
  if (!fits) return false;
  const int64_t rows_per_block = std::max<int64_t>(1, kRegRowWarps / row_warps);
  const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  WB_CHECK(blocks <= INT32_MAX, "norm: ", rows, " rows exceed one grid");
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  a.x = x.raw();
  a.out = out.raw();
  a.width = width;
  const dim3 threads(static_cast<unsigned>(32 * row_warps), static_cast<unsigned>(rows_per_block));
  const auto grid = static_cast<unsigned>(blocks);
  if constexpr (kResidual) {
    res.y = y->raw();
    with_type(y->dtype(), [&](auto ty) {
      with_type(out.dtype(), [&](auto to) {
        using Ty = decltype(ty);
        using To = decltype(to);
        register_norm_kernel<float, Ty, To, kKind, true>
            <<<grid, threads, 0, r.stream()>>>(a, res, rows);
      });
    });
  } else {
    with_type(x.dtype(), [&](auto tx) {
      with_type(out.dtype(), [&](auto to) {
        using Tx = decltype(tx);
        using To = decltype(to);
        register_norm_kernel<Tx, float, To, kKind, false>
            <<<grid, threads, 0, r.stream()>>>(a, res, rows);
      });
    });
  }
  CUDA_CHECK_LAUNCH("register_norm_kernel");
  return true;
}

template <NormKind kKind>
void launch_norm(const char* op, const Context& ctx, const Tensor& x, Tensor& out, NormArgs a) {
  const int64_t width = x.dim(-1);
  if (x.numel() == 0 || width == 0) return;
  if (launch_register_norm<kKind, false>(ctx, x, nullptr, out, a, ResidualArgs{})) return;
  const int64_t rows = x.numel() / width;
  WB_CHECK(rows <= INT32_MAX, op, ": ", rows, " rows exceed one grid");
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  a.x = x.raw();
  a.out = out.raw();
  a.width = width;
  a.vec = width % 4 == 0 && aligned4(x.raw(), dtype_size(x.dtype())) &&
          aligned4(out.raw(), dtype_size(out.dtype()));
  a.cached = width <= kMaxCachedWidth;
  const size_t smem = a.cached ? static_cast<size_t>(width) * sizeof(float) : 0;
  const int threads = row_threads(width);
  with_type(x.dtype(), [&](auto tx) {
    with_type(out.dtype(), [&](auto to) {
      using Tx = decltype(tx);
      using To = decltype(to);
      row_norm_kernel<Tx, To, kKind><<<static_cast<unsigned>(rows), threads, smem, r.stream()>>>(a);
    });
  });
  CUDA_CHECK_LAUNCH("row_norm_kernel");
}

template <typename Op>
void launch_unary(const char* op, const Context& ctx, const Tensor& x, Tensor& out, Op fn) {
  const int64_t n = out.numel();
  if (n == 0) return;
  check_float(op, {&x, &out});
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(n, r.sm_count());
  with_type(x.dtype(), [&](auto tx) {
    with_type(out.dtype(), [&](auto to) {
      using Tx = decltype(tx);
      using To = decltype(to);
      unary_kernel<<<blocks, kThreadsPerBlock, 0, r.stream()>>>(static_cast<const Tx*>(x.raw()),
                                                                static_cast<To*>(out.raw()), n, fn);
    });
  });
  CUDA_CHECK_LAUNCH("unary_kernel");
}

}  // namespace

void layer_norm(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                float eps, Tensor& out) {
  check_float("layer_norm", {&x, &weight, &bias, &out});
  NormArgs a{};
  a.eps = eps;
  a.weight = param_of(weight, 1);
  a.bias = param_of(bias, 1);
  launch_norm<NormKind::kLayer>("layer_norm", ctx, x, out, a);
}

void rms_norm(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  check_float("rms_norm", {&x, &weight, &out});
  NormArgs a{};
  a.eps = eps;
  a.weight = param_of(weight, 1);
  launch_norm<NormKind::kRms>("rms_norm", ctx, x, out, a);
}

void layernorm_modulate(const Context& ctx, const Tensor& x, const Tensor& shift,
                        const Tensor& scale, float eps, Tensor& out) {
  check_float("layernorm_modulate", {&x, &shift, &scale, &out});
  NormArgs a{};
  a.eps = eps;
  a.shift = param_of(shift, x.dim(0));
  a.scale = param_of(scale, x.dim(0));
  launch_norm<NormKind::kModulate>("layernorm_modulate", ctx, x, out, a);
}

void gated_residual(const Context& ctx, const Tensor& x, const Tensor& y, const Tensor& gate,
                    Tensor& out) {
  check_float("gated_residual", {&x, &y, &gate, &out});
  const int64_t rows = x.dim(0), width = x.dim(1);
  if (rows == 0 || width == 0) return;
  WB_CHECK(rows <= INT32_MAX, "gated_residual: ", rows, " rows exceed one grid");
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  const bool vec = width % 4 == 0 && aligned4(x.raw(), dtype_size(x.dtype())) &&
                   aligned4(y.raw(), dtype_size(y.dtype())) &&
                   aligned4(out.raw(), dtype_size(out.dtype()));
  const Param g = param_of(gate, rows);
  const int threads = row_threads(width);
  with_type(x.dtype(), [&](auto tx) {
    with_type(y.dtype(), [&](auto ty) {
      with_type(out.dtype(), [&](auto to) {
        using Tx = decltype(tx);
        using Ty = decltype(ty);
        using To = decltype(to);
        gated_residual_kernel<<<static_cast<unsigned>(rows), threads, 0, r.stream()>>>(
            static_cast<const Tx*>(x.raw()), static_cast<const Ty*>(y.raw()),
            static_cast<To*>(out.raw()), g, width, vec);
      });
    });
  });
  CUDA_CHECK_LAUNCH("gated_residual_kernel");
}

void residual_layernorm_modulate(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                                 const Tensor& shift, const Tensor& scale, float eps, Tensor& out) {
  check_float("residual_layernorm_modulate", {&x, &y, &gate, &shift, &scale, &out});
  if (x.numel() == 0) return;
  NormArgs a{};
  a.eps = eps;
  a.shift = param_of(shift, x.dim(0));
  a.scale = param_of(scale, x.dim(0));
  ResidualArgs res;
  res.gate = param_of(gate, x.dim(0));
  if (x.dtype() == DType::F32 &&
      launch_register_norm<NormKind::kModulate, true>(ctx, x, &y, out, a, res)) {
    return;
  }
  // Rows the register kernel does not take: the two passes.
  if (gate.defined()) {
    gated_residual(ctx, x, y, gate, x);
  } else {
    add(ctx, x, y, x);
  }
  layernorm_modulate(ctx, x, shift, scale, eps, out);
}

void residual_layer_norm(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                         const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  check_float("residual_layer_norm", {&x, &y, &gate, &weight, &bias, &out});
  if (x.numel() == 0) return;
  NormArgs a{};
  a.eps = eps;
  a.weight = param_of(weight, 1);
  a.bias = param_of(bias, 1);
  ResidualArgs res;
  res.gate = param_of(gate, x.dim(0));
  if (x.dtype() == DType::F32 &&
      launch_register_norm<NormKind::kLayer, true>(ctx, x, &y, out, a, res)) {
    return;
  }
  if (gate.defined()) {
    gated_residual(ctx, x, y, gate, x);
  } else {
    add(ctx, x, y, x);
  }
  layer_norm(ctx, x, weight, bias, eps, out);
}

void softmax(const Context& ctx, const Tensor& x, Tensor& out) {
  check_float("softmax", {&x, &out});
  const int64_t width = x.dim(-1);
  if (x.numel() == 0 || width == 0) return;
  const int64_t rows = x.numel() / width;
  WB_CHECK(rows <= INT32_MAX, "softmax: ", rows, " rows exceed one grid");
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  const bool cached = width <= kMaxCachedWidth;
  const size_t smem = cached ? static_cast<size_t>(width) * sizeof(float) : 0;
  // Scalar accesses here: the widths softmax sees (attention scores, small logits) are modest.
  int threads = 32;
  while (threads < 512 && threads < width) threads *= 2;
  with_type(x.dtype(), [&](auto tx) {
    with_type(out.dtype(), [&](auto to) {
      using Tx = decltype(tx);
      using To = decltype(to);
      softmax_kernel<<<static_cast<unsigned>(rows), threads, smem, r.stream()>>>(
          static_cast<const Tx*>(x.raw()), static_cast<To*>(out.raw()), width, cached);
    });
  });
  CUDA_CHECK_LAUNCH("softmax_kernel");
}

void gelu_erf(const Context& ctx, const Tensor& x, Tensor& out) {
  launch_unary("gelu_erf", ctx, x, out, GeluErfOp{});
}

void clamp(const Context& ctx, const Tensor& x, float lo, float hi, Tensor& out) {
  launch_unary("clamp", ctx, x, out, ClampOp{lo, hi});
}

void linear_combination(const Context& ctx, const std::vector<double>& coefficients,
                        const std::vector<const Tensor*>& inputs, Tensor& out) {
  WB_CHECK(inputs.size() <= kMaxCombinationInputs, "linear_combination: CUDA kernel takes at most ",
           kMaxCombinationInputs, " inputs, got ", inputs.size());
  check_float("linear_combination", {&out});
  CombinationArgs a{};
  a.count = static_cast<int>(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    check_float("linear_combination", {inputs[k]});
    a.inputs[k] = inputs[k]->raw();
    a.dtypes[k] = inputs[k]->dtype();
    a.coefficients[k] = coefficients[k];
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  linear_combination_kernel<<<grid_blocks(n, r.sm_count()), kThreadsPerBlock, 0, r.stream()>>>(
      a, out.raw(), out.dtype(), n);
  CUDA_CHECK_LAUNCH("linear_combination_kernel");
}

void sinusoidal_embedding(const Context& ctx, const Tensor& timesteps, Tensor& out) {
  check_float("sinusoidal_embedding", {&timesteps, &out});
  const int64_t count = timesteps.numel(), half = out.dim(1) / 2;
  if (count == 0 || half == 0) return;
  const Resources& r = resources_of(ctx, "norm");
  DeviceGuard guard(r.device());
  sinusoidal_kernel<<<grid_blocks(count * half, r.sm_count()), kThreadsPerBlock, 0, r.stream()>>>(
      timesteps.raw(), timesteps.dtype(), out.raw(), out.dtype(), count, half);
  CUDA_CHECK_LAUNCH("sinusoidal_kernel");
}

}  // namespace wanbatch::core::cuda
