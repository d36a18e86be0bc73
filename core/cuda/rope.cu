// CUDA kernels of Wan's 3D RoPE (rope_3d) and of the fused q/k path rms_norm_rope. The rotation
// angle of channel pair p of a token (f, h, w) depends on one coordinate only (frame pairs on f,
// height pairs on h, width pairs on w), so cos/sin are tabulated per (position, pair): computed on
// the host in double exactly as the CPU twin (core/cpu/rope.cpp) does, rounded to fp32, uploaded
// once per (device, head_dim, longest grid axis) and kept for the life of the process. Each pair
// is then rotated in fp32 with a table lookup (≈1e-7 relative to the CPU's double rotation).
// Rows are processed in 16-byte chunks kept in registers, one token per group of threads and
// several tokens per block for narrow rows, so the kernels run near memory bandwidth.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/element_access.cuh"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

// Element loads and stores (to_float, from_float, load_any): core/cuda/element_access.cuh.

// N consecutive elements as one access of up to 16 bytes (wider packs split into 16-byte ones).
template <typename T, int N>
struct alignas(sizeof(T) * N > 16 ? 16 : sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
constexpr size_t pack_alignment() {
  return alignof(Pack<T, N>);
}

// A chunk of kN elements of a row. kN > 2: the host checked the pack alignment. kN == 2 (one
// channel pair, the generic path): a 2-element access when `paired`, else element by element.
template <int kN, typename T>
__device__ __forceinline__ void load_chunk(const T* p, bool paired, float (&f)[kN]) {
  if (kN > 2 || paired) {
    const Pack<T, kN> pack = *reinterpret_cast<const Pack<T, kN>*>(p);
#pragma unroll
    for (int k = 0; k < kN; ++k) f[k] = to_float(pack.v[k]);
  } else {
#pragma unroll
    for (int k = 0; k < kN; ++k) f[k] = to_float(p[k]);
  }
}

template <int kN, typename T>
__device__ __forceinline__ void store_chunk(T* p, bool paired, const float (&f)[kN]) {
  if (kN > 2 || paired) {
    Pack<T, kN> pack;
#pragma unroll
    for (int k = 0; k < kN; ++k) pack.v[k] = from_float<T>(f[k]);
    *reinterpret_cast<Pack<T, kN>*>(p) = pack;
  } else {
#pragma unroll
    for (int k = 0; k < kN; ++k) p[k] = from_float<T>(f[k]);
  }
}

// Chunks a thread keeps in registers; a row with more is re-read (from L2) by the second pass.
constexpr int kSlots = 4;
// Tokens one block may hold (narrow rows share a block).
constexpr int kMaxTokensPerBlock = 8;

struct RopeArgs {
  const float2* table;  // [extent, pairs]: (cos, sin) of position · frequency(pair), fp32
  int pairs;            // per head: head_dim / 2
  int frame_pairs;      // pairs [0, frame_pairs) rotate by the frame position,
  int height_end;       // [frame_pairs, height_end) by the row, the rest by the column
  int64_t frames, height, width, token_offset;
  int64_t tokens, row_width;  // row_width = heads · head_dim elements
  int64_t chunks;             // per row: row_width / kN
  bool paired;                // kN == 2 only: x and out allow 2-element accesses
};

struct NormArgs {
  const void* weight = nullptr;  // [row_width] or null
  DType weight_dtype = DType::F32;
  bool weight_vec = false;  // f32 and aligned: loaded kN at a time
  float eps = 0.0f;
};

template <int kN>
__device__ __forceinline__ void load_weight(const NormArgs& n, int64_t j0, float (&w)[kN]) {
  if (n.weight_vec) {
    const Pack<float, kN> pack =
        *reinterpret_cast<const Pack<float, kN>*>(static_cast<const float*>(n.weight) + j0);
#pragma unroll
    for (int k = 0; k < kN; ++k) w[k] = pack.v[k];
  } else {
#pragma unroll
    for (int k = 0; k < kN; ++k) w[k] = load_any(n.weight, n.weight_dtype, j0 + k);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The sum over the threads of one token (a row of the block: blockDim.x, a multiple of 32).
// Every thread of the block must call it (it may hold a barrier).
__device__ float token_sum(float v, float (*scratch)[32]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  if (warps == 1) return v;  // uniform across the block
  if (lane == 0) scratch[threadIdx.y][warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? scratch[threadIdx.y][lane] : 0.0f);
}

// Per token: x, out [tokens, row_width]; blockDim.y tokens per block, blockDim.x threads each.
// kNorm: rms_norm over the row first (fp32 statistics as core/cuda/norm.cu; padding tokens are
// normalised only); otherwise padding tokens (g ≥ f·h·w) are copied, converted when the dtypes
// differ, or left alone when out is x. out may alias x: every element is read and written by one
// thread, and with kNorm every element is read before the barrier in token_sum.
template <typename Tx, typename To, int kN, bool kNorm>
__global__ void rope_rows_kernel(const Tx* x_all, To* out_all, RopeArgs a, NormArgs n) {
  __shared__ float scratch[kMaxTokensPerBlock][32];
  const int64_t token = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = token < a.tokens;
  const int64_t g = a.token_offset + token;
  const bool rotated = g < a.frames * a.height * a.width;
  if constexpr (!kNorm) {  // no barrier below: idle threads may leave
    if (!live) return;
    if (!rotated && static_cast<const void*>(x_all) == static_cast<const void*>(out_all)) return;
  }
  const Tx* x = x_all + token * a.row_width;
  To* out = out_all + token * a.row_width;
  const int64_t first = threadIdx.x, step = blockDim.x;

  float v[kSlots][kN];
  float sum_sq = 0.0f;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t c = first + s * step;
    if (live && c < a.chunks) {
      load_chunk<kN>(x + c * kN, a.paired, v[s]);
      if constexpr (kNorm) {
#pragma unroll
        for (int k = 0; k < kN; ++k) sum_sq += v[s][k] * v[s][k];
      }
    }
  }
  float inv_rms = 1.0f;
  if constexpr (kNorm) {
    if (live) {
      for (int64_t c = first + kSlots * step; c < a.chunks; c += step) {
        float f[kN];
        load_chunk<kN>(x + c * kN, a.paired, f);
#pragma unroll
        for (int k = 0; k < kN; ++k) sum_sq += f[k] * f[k];
      }
    }
    sum_sq = token_sum(sum_sq, scratch);
    inv_rms = 1.0f / sqrtf(sum_sq / static_cast<float>(a.row_width) + n.eps);
  }
  if (!live) return;  // after the block's only barrier

  // Table rows of this token's three coordinates.
  int64_t frame_row = 0, height_row = 0, width_row = 0;
  if (rotated) {
    // 32-bit division (the host checked the grid fits): 64-bit division costs about as much as
    // the rest of a token's work.
    const auto t = static_cast<uint32_t>(g), w = static_cast<uint32_t>(a.width);
    const auto plane = static_cast<uint32_t>(a.height) * w;
    frame_row = static_cast<int64_t>(t / plane) * a.pairs;
    height_row = static_cast<int64_t>(t / w % static_cast<uint32_t>(a.height)) * a.pairs;
    width_row = static_cast<int64_t>(t % w) * a.pairs;
  }
  // Normalise (kNorm), rotate (real tokens) and store one chunk, in the CPU twin's order of
  // roundings; _rn keeps nvcc from contracting the products into other FMAs.
  auto finish = [&](int64_t c, float(&f)[kN]) {
    const int64_t j0 = c * kN;
    if constexpr (kNorm) {
#pragma unroll
      for (int k = 0; k < kN; ++k) f[k] = __fmul_rn(f[k], inv_rms);
      if (n.weight) {
        float w[kN];
        load_weight<kN>(n, j0, w);
#pragma unroll
        for (int k = 0; k < kN; ++k) f[k] = __fmul_rn(f[k], w[k]);
      }
    }
    if (rotated) {
      int p = static_cast<int>(j0) / 2 % a.pairs;  // 32-bit: rows are far narrower than 2^31
#pragma unroll
      for (int k = 0; k < kN; k += 2) {
        const int64_t row = p < a.frame_pairs  ? frame_row
                            : p < a.height_end ? height_row
                                               : width_row;
        const float2 cs = __ldg(a.table + row + p);
        const float re = f[k], im = f[k + 1];
        f[k] = __fmaf_rn(re, cs.x, -__fmul_rn(im, cs.y));
        f[k + 1] = __fmaf_rn(re, cs.y, __fmul_rn(im, cs.x));
        if (++p == a.pairs) p = 0;
      }
    }
    store_chunk<kN>(out + j0, a.paired, f);
  };
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t c = first + s * step;
    if (c < a.chunks) finish(c, v[s]);
  }
  for (int64_t c = first + kSlots * step; c < a.chunks; c += step) {
    float f[kN];
    load_chunk<kN>(x + c * kN, a.paired, f);
    finish(c, f);
  }
}

// ---- host side -------------------------------------------------------------------------------

// Per channel pair of a head, its frequency: exactly core/cpu/rope.cpp's pair_frequencies.
std::vector<double> pair_frequencies(int64_t head_dim) {
  const int64_t sixth = head_dim / 6;
  const int64_t part_dims[3] = {head_dim - 4 * sixth, 2 * sixth, 2 * sixth};
  std::vector<double> frequencies;
  for (int axis = 0; axis < 3; ++axis) {
    for (int64_t i = 0; i < part_dims[axis]; i += 2) {
      const double exponent = static_cast<double>(i) / static_cast<double>(part_dims[axis]);
      frequencies.push_back(1.0 / std::pow(10000.0, exponent));
    }
  }
  return frequencies;  // head_dim / 2 of them: the parts are even and sum to head_dim
}

// The device's (cos, sin) table for positions [0, extent) and every pair of `head_dim`, built on
// first use (with `device` current). The tables of the whole process, per (device, head_dim,
// extent); never freed (a few KiB each, and kernels in flight may still read them).
const float2* rope_table(int device, int64_t head_dim, int64_t extent) {
  static std::mutex* mutex = new std::mutex;
  static auto* tables = new std::map<std::tuple<int, int64_t, int64_t>, const float2*>;
  std::lock_guard<std::mutex> lock(*mutex);
  const auto key = std::make_tuple(device, head_dim, extent);
  const auto it = tables->find(key);
  if (it != tables->end()) return it->second;
  const std::vector<double> frequencies = pair_frequencies(head_dim);
  const size_t pairs = frequencies.size();
  std::vector<float2> host(static_cast<size_t>(extent) * pairs);
  for (int64_t pos = 0; pos < extent; ++pos) {
    for (size_t p = 0; p < pairs; ++p) {
      // The CPU's angle and its cos/sin in double, then rounded once to fp32.
      const double angle = static_cast<double>(pos) * frequencies[p];
      host[static_cast<size_t>(pos) * pairs + p] =
          make_float2(static_cast<float>(std::cos(angle)), static_cast<float>(std::sin(angle)));
    }
  }
  void* table = nullptr;
  CUDA_CHECK(cudaMalloc(&table, host.size() * sizeof(float2)));
  // Synchronous: the table is complete before any stream can use it (rare: once per key).
  CUDA_CHECK(cudaMemcpy(table, host.data(), host.size() * sizeof(float2), cudaMemcpyHostToDevice));
  tables->emplace(key, static_cast<const float2*>(table));
  return static_cast<const float2*>(table);
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Shared by rope_3d and rms_norm_rope (kNorm): picks the chunk width and launch shape.
template <bool kNorm>
void launch_rope(const char* op, const Context& ctx, const Tensor& x, const ops::RopeGrid& grid,
                 int64_t token_offset, const NormArgs& n, Tensor& out) {
  const int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  if (x.numel() == 0) return;
  const Resources& r = resources_of(ctx, "rope");
  DeviceGuard guard(r.device());
  const int64_t extent = std::max({grid.frames, grid.height, grid.width});
  const int64_t sixth = head_dim / 6;
  RopeArgs a{};
  a.table = rope_table(r.device(), head_dim, extent);
  a.pairs = static_cast<int>(head_dim / 2);
  a.frame_pairs = static_cast<int>((head_dim - 4 * sixth) / 2);
  a.height_end = a.frame_pairs + static_cast<int>(sixth);
  a.frames = grid.frames;
  a.height = grid.height;
  a.width = grid.width;
  a.token_offset = token_offset;
  a.tokens = tokens;
  WB_CHECK(grid.frames * grid.height * grid.width <= UINT32_MAX, op, ": a grid of ",
           grid.frames * grid.height * grid.width, " tokens exceeds the kernel's 32-bit positions");
  a.row_width = heads * head_dim;

  with_type(x.dtype(), [&](auto tx) {
    with_type(out.dtype(), [&](auto to) {
      using Tx = decltype(tx);
      using To = decltype(to);
      constexpr int kWide = static_cast<int>(16 / sizeof(Tx));  // 16-byte loads of x
      const bool wide = a.row_width % kWide == 0 && aligned(x.raw(), 16) &&
                        aligned(out.raw(), pack_alignment<To, kWide>());
      auto launch = [&](auto chunk) {
        constexpr int kN = decltype(chunk)::value;
        RopeArgs args = a;
        NormArgs norm = n;
        args.chunks = a.row_width / kN;
        args.paired = aligned(x.raw(), 2 * sizeof(Tx)) && aligned(out.raw(), 2 * sizeof(To));
        norm.weight_vec = n.weight_vec && aligned(n.weight, pack_alignment<float, kN>());
        // About two chunks per thread; narrow rows share a block (about 256 threads).
        const int64_t per_token = (args.chunks + 1) / 2;
        const int threads_x =
            static_cast<int>(std::clamp<int64_t>((per_token + 31) / 32 * 32, 32, 1024));
        const int threads_y = std::clamp(256 / threads_x, 1, kMaxTokensPerBlock);
        const int64_t blocks = (tokens + threads_y - 1) / threads_y;
        WB_CHECK(blocks <= INT32_MAX, op, ": ", tokens, " tokens exceed one grid");
        rope_rows_kernel<Tx, To, kN, kNorm>
            <<<static_cast<unsigned>(blocks), dim3(threads_x, threads_y), 0, r.stream()>>>(
                static_cast<const Tx*>(x.raw()), static_cast<To*>(out.raw()), args, norm);
      };
      if (wide) {
        launch(std::integral_constant<int, kWide>{});
      } else {
        launch(std::integral_constant<int, 2>{});
      }
    });
  });
  CUDA_CHECK_LAUNCH("rope_rows_kernel");
}

}  // namespace

void rope_3d(const Context& ctx, const Tensor& x, const ops::RopeGrid& grid, int64_t token_offset,
             Tensor& out) {
  check_float("rope_3d", {&x, &out});
  launch_rope<false>("rope_3d", ctx, x, grid, token_offset, NormArgs{}, out);
}

void rms_norm_rope(const Context& ctx, const Tensor& x, const Tensor& weight, float eps,
                   const ops::RopeGrid& grid, int64_t token_offset, Tensor& out) {
  check_float("rms_norm_rope", {&x, &weight, &out});
  NormArgs n;
  n.eps = eps;
  if (weight.defined()) {
    n.weight = weight.raw();
    n.weight_dtype = weight.dtype();
    n.weight_vec = weight.dtype() == DType::F32;  // and aligned: checked per chunk width
  }
  launch_rope<true>("rms_norm_rope", ctx, x, grid, token_offset, n, out);
}

}  // namespace wanbatch::core::cuda
