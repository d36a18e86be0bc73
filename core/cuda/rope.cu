// CUDA kernels of Wan's 3D RoPE (rope_3d) and of the fused q/k path rms_norm_rope. As the CPU twin
// (core/cpu/rope.cpp) and the reference do, the pair frequencies are computed in double (on the
// host, by the CPU's formula), the angles and their cos/sin in double per token, and each channel
// pair is rotated in double and rounded once, so results match the CPU to the last bit but for
// rare one-ulp differences of the device's double sin/cos. One block per token: its cos/sin table
// is computed once into shared memory and used by every head.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "core/cuda/check.h"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

__device__ __forceinline__ float load_any(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::BF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// A channel pair as one 2-element access (8 bytes for f32, 4 for bf16/f16) when the tensor's
// base allows it; rows hold an even number of elements, so every pair is then aligned.
template <typename T>
struct alignas(2 * sizeof(T)) Pack2 {
  T v[2];
};

template <typename T>
__device__ __forceinline__ bool pair_aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (2 * sizeof(T)) == 0;
}

template <typename T>
__device__ __forceinline__ void load_pair(const T* p, bool paired, float& a, float& b) {
  if (paired) {
    const Pack2<T> pack = *reinterpret_cast<const Pack2<T>*>(p);
    a = to_float(pack.v[0]);
    b = to_float(pack.v[1]);
  } else {
    a = to_float(p[0]);
    b = to_float(p[1]);
  }
}

template <typename T>
__device__ __forceinline__ void store_pair(T* p, bool paired, float a, float b) {
  if (paired) {
    Pack2<T> pack;
    pack.v[0] = from_float<T>(a);
    pack.v[1] = from_float<T>(b);
    *reinterpret_cast<Pack2<T>*>(p) = pack;
  } else {
    p[0] = from_float<T>(a);
    p[1] = from_float<T>(b);
  }
}

// head_dim ≤ 512 (Wan uses 128); the table travels as a kernel parameter (≈2.3 KiB of 4 KiB).
constexpr int kMaxPairs = 256;

// Per channel pair of a head: its grid axis (0 frame, 1 height, 2 width) and frequency,
// exactly core/cpu/rope.cpp's pair_frequencies.
struct RopeTable {
  double frequency[kMaxPairs];
  unsigned char axis[kMaxPairs];
  int pairs;
  int64_t frames, height, width;  // the grid
  int64_t token_offset;
};

RopeTable make_table(int64_t head_dim, const ops::RopeGrid& grid, int64_t token_offset) {
  WB_CHECK(head_dim / 2 <= kMaxPairs, "rope: CUDA kernel takes head_dim up to ", 2 * kMaxPairs,
           ", got ", head_dim);
  RopeTable t{};
  const int64_t sixth = head_dim / 6;
  const int64_t part_dims[3] = {head_dim - 4 * sixth, 2 * sixth, 2 * sixth};
  int p = 0;
  for (int axis = 0; axis < 3; ++axis) {
    for (int64_t i = 0; i < part_dims[axis]; i += 2) {
      const double exponent = static_cast<double>(i) / static_cast<double>(part_dims[axis]);
      t.frequency[p] = 1.0 / std::pow(10000.0, exponent);
      t.axis[p] = static_cast<unsigned char>(axis);
      ++p;
    }
  }
  t.pairs = p;  // head_dim / 2: the parts are even and sum to head_dim
  t.frames = grid.frames;
  t.height = grid.height;
  t.width = grid.width;
  t.token_offset = token_offset;
  return t;
}

// Fills cos_t/sin_t for global token g (block-wide; the caller synchronises before use).
__device__ void token_angles(const RopeTable& t, int64_t g, double* cos_t, double* sin_t) {
  const int64_t position[3] = {g / (t.height * t.width), (g / t.width) % t.height, g % t.width};
  for (int p = threadIdx.x; p < t.pairs; p += blockDim.x) {
    const double angle = static_cast<double>(position[t.axis[p]]) * t.frequency[p];
    sincos(angle, &sin_t[p], &cos_t[p]);
  }
}

// (re, im) · (cos, sin) in double as the CPU computes it (two products, then one add), each
// rounded once to fp32; _rn keeps nvcc from contracting to FMA.
__device__ __forceinline__ void rotate(float re, float im, double c, double s, float& out_re,
                                       float& out_im) {
  out_re = static_cast<float>(__dsub_rn(__dmul_rn(re, c), __dmul_rn(im, s)));
  out_im = static_cast<float>(__dadd_rn(__dmul_rn(re, s), __dmul_rn(im, c)));
}

// x, out [L, H, D] as rows of H·D; one block per token. Padding tokens (g ≥ f·h·w) are copied,
// converted when the dtypes differ, or left alone when out is x. out may alias x.
template <typename Tx, typename To>
__global__ void rope_kernel(const Tx* x_all, To* out_all, int64_t heads, RopeTable t) {
  __shared__ double cos_t[kMaxPairs], sin_t[kMaxPairs];
  const int64_t token = blockIdx.x, g = t.token_offset + token;
  const int64_t row_width = heads * 2 * t.pairs;
  const Tx* x = x_all + token * row_width;
  To* out = out_all + token * row_width;
  const bool paired = pair_aligned(x_all) && pair_aligned(out_all);
  const int pairs = t.pairs;
  if (g >= t.frames * t.height * t.width) {
    if (static_cast<const void*>(x) == static_cast<const void*>(out)) return;
    for (int64_t q = threadIdx.x; q < heads * pairs; q += blockDim.x) {
      float a, b;
      load_pair(x + 2 * q, paired, a, b);
      store_pair(out + 2 * q, paired, a, b);
    }
    return;
  }
  token_angles(t, g, cos_t, sin_t);
  __syncthreads();
  for (int64_t q = threadIdx.x; q < heads * pairs; q += blockDim.x) {
    const int p = static_cast<int>(q % pairs);
    float re, im;
    load_pair(x + 2 * q, paired, re, im);
    rotate(re, im, cos_t[p], sin_t[p], re, im);
    store_pair(out + 2 * q, paired, re, im);
  }
}

// Rows wider than this are re-read from global memory instead of kept in shared memory.
constexpr int64_t kMaxCachedWidth = 8192;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Every thread gets the block's sum; blockDim.x is a multiple of 32.
__device__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? scratch[lane] : 0.0f);
}

// rms_norm over each token's H·D channels (fp32 statistics, as core/cuda/norm.cu), then the
// rotation of rope_kernel on the normalised fp32 values; padding tokens are normalised only.
// out may alias x: every element is read in pass 1, before the barrier, and pass 2 writes each
// element from the thread that reads it.
template <typename Tx, typename To>
__global__ void rms_norm_rope_kernel(const Tx* x_all, To* out_all, const void* weight,
                                     DType weight_dtype, float eps, int64_t heads, bool cached,
                                     RopeTable t) {
  extern __shared__ float cache[];
  __shared__ double cos_t[kMaxPairs], sin_t[kMaxPairs];
  __shared__ float scratch[32];
  const int64_t token = blockIdx.x, g = t.token_offset + token;
  const int pairs = t.pairs;
  const int64_t row_width = heads * 2 * pairs;
  const Tx* x = x_all + token * row_width;
  To* out = out_all + token * row_width;
  const bool rotated = g < t.frames * t.height * t.width;

  const bool paired = pair_aligned(x_all) && pair_aligned(out_all);

  // Pass 1 walks the pairs as pass 2 does, so each thread later reads back what it cached.
  float sum_sq = 0.0f;
  for (int64_t q = threadIdx.x; q < heads * pairs; q += blockDim.x) {
    float a, b;
    load_pair(x + 2 * q, paired, a, b);
    if (cached) {
      cache[2 * q] = a;
      cache[2 * q + 1] = b;
    }
    sum_sq += a * a;
    sum_sq += b * b;
  }
  if (rotated) token_angles(t, g, cos_t, sin_t);
  sum_sq = block_sum(sum_sq, scratch);  // its barriers also publish the cache and the table
  const float inv_rms = 1.0f / sqrtf(sum_sq / static_cast<float>(row_width) + eps);

  for (int64_t q = threadIdx.x; q < heads * pairs; q += blockDim.x) {
    const int64_t j = 2 * q;
    float a, b;
    if (cached) {
      a = cache[j];
      b = cache[j + 1];
    } else {
      load_pair(x + j, paired, a, b);
    }
    a = __fmul_rn(a, inv_rms);
    b = __fmul_rn(b, inv_rms);
    if (weight) {
      a = __fmul_rn(a, load_any(weight, weight_dtype, j));
      b = __fmul_rn(b, load_any(weight, weight_dtype, j + 1));
    }
    if (rotated) {
      const int p = static_cast<int>(q % pairs);
      rotate(a, b, cos_t[p], sin_t[p], a, b);
    }
    store_pair(out + j, paired, a, b);
  }
}

const Resources& resources_of(const Context& ctx) {
  const Resources* resources = ctx.cuda_resources();
  WB_CHECK(resources != nullptr, "CUDA op on context ", ctx.device().str(),
           ", which has no CUDA stream (create it with Context::cuda)");
  return *resources;
}

void check_float(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    const DType d = t->dtype();
    WB_CHECK(d == DType::F32 || d == DType::BF16 || d == DType::F16, op,
             ": CUDA kernel takes f32, bf16 or f16, got ", t->describe());
  }
}

template <typename F>
void with_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::BF16:
      return f(__nv_bfloat16{});
    case DType::F16:
      return f(__half{});
    default:
      return f(float{});
  }
}

// Threads per token block: enough for one channel pair each up to 256 threads.
int token_threads(int64_t pairs_per_token) {
  int threads = 32;
  while (threads < 256 && threads < pairs_per_token) threads *= 2;
  return threads;
}

}  // namespace

void rope_3d(const Context& ctx, const Tensor& x, const ops::RopeGrid& grid, int64_t token_offset,
             Tensor& out) {
  check_float("rope_3d", {&x, &out});
  const int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  if (x.numel() == 0) return;
  WB_CHECK(tokens <= INT32_MAX, "rope_3d: ", tokens, " tokens exceed one grid");
  const RopeTable table = make_table(head_dim, grid, token_offset);
  const Resources& r = resources_of(ctx);
  DeviceGuard guard(r.device());
  const int threads = token_threads(heads * table.pairs);
  with_type(x.dtype(), [&](auto tx) {
    with_type(out.dtype(), [&](auto to) {
      using Tx = decltype(tx);
      using To = decltype(to);
      rope_kernel<<<static_cast<unsigned>(tokens), threads, 0, r.stream()>>>(
          static_cast<const Tx*>(x.raw()), static_cast<To*>(out.raw()), heads, table);
    });
  });
  CUDA_CHECK_LAUNCH("rope_kernel");
}

void rms_norm_rope(const Context& ctx, const Tensor& x, const Tensor& weight, float eps,
                   const ops::RopeGrid& grid, int64_t token_offset, Tensor& out) {
  check_float("rms_norm_rope", {&x, &weight, &out});
  const int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  if (x.numel() == 0) return;
  WB_CHECK(tokens <= INT32_MAX, "rms_norm_rope: ", tokens, " tokens exceed one grid");
  const RopeTable table = make_table(head_dim, grid, token_offset);
  const Resources& r = resources_of(ctx);
  DeviceGuard guard(r.device());
  const int64_t width = heads * head_dim;
  const bool cached = width <= kMaxCachedWidth;
  const size_t smem = cached ? static_cast<size_t>(width) * sizeof(float) : 0;
  const int threads = token_threads(heads * table.pairs);
  const void* w = weight.defined() ? weight.raw() : nullptr;
  const DType w_dtype = weight.defined() ? weight.dtype() : DType::F32;
  with_type(x.dtype(), [&](auto tx) {
    with_type(out.dtype(), [&](auto to) {
      using Tx = decltype(tx);
      using To = decltype(to);
      rms_norm_rope_kernel<<<static_cast<unsigned>(tokens), threads, smem, r.stream()>>>(
          static_cast<const Tx*>(x.raw()), static_cast<To*>(out.raw()), w, w_dtype, eps, heads,
          cached, table);
    });
  });
  CUDA_CHECK_LAUNCH("rms_norm_rope_kernel");
}

}  // namespace wanbatch::core::cuda
