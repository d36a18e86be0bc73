// CUDA kernels of the VAE's memory-bound ops (rms_norm_channels, channel_affine,
// repeat_interleave, mean_dim, upsample_nearest_2x) and the two small helpers of conv3d (zero
// padding into a scratch buffer, per-channel bias), queued on the context's stream. They compute
// in fp32 (sums of squares and means in double, like the CPU twins) and load and store f32, bf16
// or f16 with round to nearest even. core/ops.cpp has already checked devices and shapes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "core/cuda/check.h"
#include "core/cuda/element_access.cuh"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

// A C++ type carried as a value, so one generic lambda can be instantiated per element type.
template <typename T>
struct Tag {
  using type = T;
};

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

// Calls f(Tag<T>{}) with T the device type of a floating dtype the kernels take.
template <typename F>
void with_float_type(const char* op, DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32:
      return f(Tag<float>{});
    case DType::BF16:
      return f(Tag<__nv_bfloat16>{});
    case DType::F16:
      return f(Tag<__half>{});
    default:
      throw make_error(op, ": CUDA kernel takes f32, bf16 or f16, got ", dtype_name(dtype));
  }
}

// Both dtypes of an input → output op.
template <typename F>
void with_float_types(const char* op, DType in, DType out, F&& f) {
  with_float_type(op, in, [&](auto in_tag) {
    with_float_type(op, out, [&](auto out_tag) { f(in_tag, out_tag); });
  });
}

// Grid for kernels that give each block row y one channel (params read once per block) and
// stride over that channel's plane along x. gridDim.y is capped at 65535; the kernels loop.
dim3 channel_grid(int64_t channels, int64_t plane, int sm_count) {
  const int64_t rows = std::min<int64_t>(channels, 65535);
  // Enough blocks in all to fill the GPU a few times over, split over the channel rows.
  const int64_t target = static_cast<int64_t>(std::max(sm_count, 1)) * kBlocksPerSm;
  const int64_t per_row = std::max<int64_t>(1, target / rows);
  const int64_t needed = (plane + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int64_t x = std::clamp<int64_t>(needed, 1, std::max<int64_t>(per_row, 1));
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(rows));
}

// ------------------------------------------------------------------ rms_norm_channels

// One thread per position p: ‖x[:, p]‖² summed in double (as the CPU), then every channel
// scaled. Neighbouring threads read neighbouring positions, so both passes are coalesced; the
// second re-reads x[:, p], mostly from L2. out may alias x (each thread reads a position fully
// before writing it).
template <typename TX, typename TO>
__global__ void rms_norm_channels_kernel(const TX* x, const void* gamma, DType gamma_dtype,
                                         const void* bias, DType bias_dtype, TO* out,
                                         int64_t channels, int64_t positions, double root_c) {
  for (int64_t p = first_index(); p < positions; p += grid_stride()) {
    double sum = 0.0;
    for (int64_t c = 0; c < channels; ++c) {
      const double v = to_float(x[c * positions + p]);
      sum += v * v;
    }
    // F.normalize's eps 1e-12, then the sqrt(C) scale; the product in double and the bias added
    // in float, as the CPU does, so f32 results match it to the last bit but for the summation
    // order.
    const double factor = root_c / fmax(sqrt(sum), 1e-12);
    for (int64_t c = 0; c < channels; ++c) {
      const double g = load_any(gamma, gamma_dtype, c);
      const float b = bias ? load_any(bias, bias_dtype, c) : 0.0f;
      const double v = to_float(x[c * positions + p]);
      out[c * positions + p] = from_float<TO>(__fadd_rn(static_cast<float>(v * factor * g), b));
    }
  }
}

// ------------------------------------------------------------------ channel_affine

// out[c, i] = x[c, i] · scale[c] + shift[c], rounded twice like the CPU's (no FMA).
template <typename TX, typename TO>
__global__ void channel_affine_kernel(const TX* x, const void* scale, DType scale_dtype,
                                      const void* shift, DType shift_dtype, TO* out,
                                      int64_t channels, int64_t plane) {
  for (int64_t c = blockIdx.y; c < channels; c += gridDim.y) {
    const float a = load_any(scale, scale_dtype, c);
    const float b = load_any(shift, shift_dtype, c);
    const TX* src = x + c * plane;
    TO* dst = out + c * plane;
    for (int64_t i = first_index(); i < plane; i += grid_stride()) {
      dst[i] = from_float<TO>(__fadd_rn(__fmul_rn(to_float(src[i]), a), b));
    }
  }
}

// Per-channel bias added to a conv3d output viewed as [rows, plane], channel = row mod channels.
template <typename TO>
__global__ void add_bias_kernel(TO* out, const void* bias, DType bias_dtype, int64_t rows,
                                int64_t channels, int64_t plane) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float b = load_any(bias, bias_dtype, r % channels);
    TO* dst = out + r * plane;
    for (int64_t i = first_index(); i < plane; i += grid_stride()) {
      dst[i] = from_float<TO>(__fadd_rn(to_float(dst[i]), b));
    }
  }
}

// ------------------------------------------------------------------ repeat_interleave

// Moves whole units (1 to 16 bytes): every run of `units` units in x (one entry along the
// repeated dimension with everything after it) is written `repeats` times in a row.
template <typename U>
__global__ void repeat_runs_kernel(const U* x, U* out, int64_t total, int64_t units,
                                   int64_t repeats) {
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t run = i / units, k = i - run * units;
    out[i] = x[(run / repeats) * units + k];
  }
}

// ------------------------------------------------------------------ mean_dim

// One thread per output (a, j) when the reduced dimension has a stride (inner > 1): neighbouring
// threads read neighbouring addresses. Summed in double, like the CPU.
template <typename TX, typename TO>
__global__ void mean_strided_kernel(const TX* x, TO* out, int64_t outer, int64_t extent,
                                    int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t o = first_index(); o < total; o += grid_stride()) {
    const int64_t a = o / inner, j = o - a * inner;
    const TX* src = x + a * extent * inner + j;
    double sum = 0.0;
    for (int64_t i = 0; i < extent; ++i) sum += to_float(src[i * inner]);
    out[o] = from_float<TO>(static_cast<float>(sum / static_cast<double>(extent)));
  }
}

// One warp per output when the reduced dimension is the last (inner == 1): the lanes stride over
// the contiguous row and combine with shuffles.
template <typename TX, typename TO>
__global__ void mean_rows_kernel(const TX* x, TO* out, int64_t rows, int64_t extent) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = first_index() / 32, warps = grid_stride() / 32;
  for (int64_t r = warp; r < rows; r += warps) {
    const TX* src = x + r * extent;
    double sum = 0.0;
    for (int64_t i = lane; i < extent; i += 32) sum += to_float(src[i]);
    for (int offset = 16; offset > 0; offset /= 2)
      sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) out[r] = from_float<TO>(static_cast<float>(sum / static_cast<double>(extent)));
  }
}

// ------------------------------------------------------------------ upsample_nearest_2x

template <typename TX, typename TO>
__global__ void upsample_nearest_2x_kernel(const TX* x, TO* out, int64_t total, int64_t h,
                                           int64_t w) {
  const int64_t ow = 2 * w, oh = 2 * h;
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t ox = i % ow, rest = i / ow;
    const int64_t oy = rest % oh, plane = rest / oh;
    out[i] = from_float<TO>(to_float(x[(plane * h + oy / 2) * w + ox / 2]));
  }
}

// ------------------------------------------------------------------ conv3d's zero padding

// padded[q, t, y, x] = x[q, t − front_t, y − front_h, x − front_w], zero outside x, over the
// planes q (batch × channels). Elements are moved as raw units of their size.
template <typename U>
__global__ void pad3d_kernel(const U* x, U* padded, int64_t total, int64_t t, int64_t h, int64_t w,
                             int64_t pt, int64_t ph, int64_t pw, int64_t front_t, int64_t front_h,
                             int64_t front_w) {
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    int64_t rest = i;
    const int64_t xp = rest % pw;
    rest /= pw;
    const int64_t yp = rest % ph;
    rest /= ph;
    const int64_t tp = rest % pt;
    const int64_t q = rest / pt;
    const int64_t ti = tp - front_t, yi = yp - front_h, xi = xp - front_w;
    const bool inside = ti >= 0 && ti < t && yi >= 0 && yi < h && xi >= 0 && xi < w;
    padded[i] = inside ? x[((q * t + ti) * h + yi) * w + xi] : U{};
  }
}

// The widest unit (16, 8, 4, 2 or 1 bytes) that divides `bytes` and both addresses.
int unit_bytes(size_t bytes, const void* a, const void* b) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  for (int unit : {16, 8, 4, 2}) {
    const auto u = static_cast<size_t>(unit);
    if (bytes % u == 0 && pa % u == 0 && pb % u == 0) return unit;
  }
  return 1;
}

// Calls f(Tag<U>{}) with U an unsigned type of `unit` bytes (uint4 for 16).
template <typename F>
void with_unit_type(int unit, F&& f) {
  switch (unit) {
    case 16:
      return f(Tag<uint4>{});
    case 8:
      return f(Tag<uint2>{});
    case 4:
      return f(Tag<uint32_t>{});
    case 2:
      return f(Tag<uint16_t>{});
    default:
      return f(Tag<uint8_t>{});
  }
}

int64_t product(const Tensor& x, int begin, int end) {
  int64_t n = 1;
  for (int i = begin; i < end; ++i) n *= x.dim(i);
  return n;
}

}  // namespace

void rms_norm_channels(const Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& bias,
                       Tensor& out) {
  const int64_t channels = x.dim(0);
  const int64_t positions = channels ? x.numel() / channels : 0;
  if (positions == 0 || channels == 0) return;
  const Resources& r = resources_of(ctx, "rms_norm_channels");
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(positions, r.sm_count());
  const double root_c = std::sqrt(static_cast<double>(channels));
  const void* bias_ptr = bias.defined() ? bias.raw() : nullptr;
  const DType bias_dtype = bias.defined() ? bias.dtype() : DType::F32;
  with_float_types("rms_norm_channels", x.dtype(), out.dtype(), [&](auto in, auto to) {
    using TX = typename decltype(in)::type;
    using TO = typename decltype(to)::type;
    rms_norm_channels_kernel<TX, TO><<<blocks, kThreadsPerBlock, 0, r.stream()>>>(
        static_cast<const TX*>(x.raw()), gamma.raw(), gamma.dtype(), bias_ptr, bias_dtype,
        static_cast<TO*>(out.raw()), channels, positions, root_c);
  });
  CUDA_CHECK_LAUNCH("rms_norm_channels_kernel");
}

void channel_affine(const Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift,
                    Tensor& out) {
  const int64_t channels = x.dim(0);
  const int64_t plane = channels ? x.numel() / channels : 0;
  if (plane == 0 || channels == 0) return;
  const Resources& r = resources_of(ctx, "channel_affine");
  DeviceGuard guard(r.device());
  const dim3 grid = channel_grid(channels, plane, r.sm_count());
  with_float_types("channel_affine", x.dtype(), out.dtype(), [&](auto in, auto to) {
    using TX = typename decltype(in)::type;
    using TO = typename decltype(to)::type;
    channel_affine_kernel<TX, TO><<<grid, kThreadsPerBlock, 0, r.stream()>>>(
        static_cast<const TX*>(x.raw()), scale.raw(), scale.dtype(), shift.raw(), shift.dtype(),
        static_cast<TO*>(out.raw()), channels, plane);
  });
  CUDA_CHECK_LAUNCH("channel_affine_kernel");
}

void repeat_interleave(const Context& ctx, const Tensor& x, int dim, Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t extent = x.dim(dim), repeats = out.dim(dim) / extent;
  const size_t run_bytes =
      static_cast<size_t>(product(x, dim + 1, x.ndim())) * dtype_size(x.dtype());
  const int unit = unit_bytes(run_bytes, x.raw(), out.raw());
  const auto units = static_cast<int64_t>(run_bytes / static_cast<size_t>(unit));
  const int64_t total = static_cast<int64_t>(out.nbytes() / static_cast<size_t>(unit));
  const Resources& r = resources_of(ctx, "repeat_interleave");
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(total, r.sm_count());
  with_unit_type(unit, [&](auto tag) {
    using U = typename decltype(tag)::type;
    repeat_runs_kernel<U><<<blocks, kThreadsPerBlock, 0, r.stream()>>>(
        static_cast<const U*>(x.raw()), static_cast<U*>(out.raw()), total, units, repeats);
  });
  CUDA_CHECK_LAUNCH("repeat_runs_kernel");
}

void mean_dim(const Context& ctx, const Tensor& x, int dim, Tensor& out) {
  const int64_t outer = product(x, 0, dim), extent = x.dim(dim);
  const int64_t inner = product(x, dim + 1, x.ndim());
  if (out.numel() == 0) return;
  const Resources& r = resources_of(ctx, "mean_dim");
  DeviceGuard guard(r.device());
  with_float_types("mean_dim", x.dtype(), out.dtype(), [&](auto in, auto to) {
    using TX = typename decltype(in)::type;
    using TO = typename decltype(to)::type;
    const auto* src = static_cast<const TX*>(x.raw());
    auto* dst = static_cast<TO*>(out.raw());
    if (inner == 1) {
      const unsigned blocks = grid_blocks(outer * 32, r.sm_count());
      mean_rows_kernel<TX, TO>
          <<<blocks, kThreadsPerBlock, 0, r.stream()>>>(src, dst, outer, extent);
    } else {
      const unsigned blocks = grid_blocks(outer * inner, r.sm_count());
      mean_strided_kernel<TX, TO>
          <<<blocks, kThreadsPerBlock, 0, r.stream()>>>(src, dst, outer, extent, inner);
    }
  });
  CUDA_CHECK_LAUNCH("mean_dim kernel");
}

void upsample_nearest_2x(const Context& ctx, const Tensor& x, Tensor& out) {
  const int64_t total = out.numel();
  if (total == 0) return;
  const int64_t h = x.dim(-2), w = x.dim(-1);
  const Resources& r = resources_of(ctx, "upsample_nearest_2x");
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(total, r.sm_count());
  with_float_types("upsample_nearest_2x", x.dtype(), out.dtype(), [&](auto in, auto to) {
    using TX = typename decltype(in)::type;
    using TO = typename decltype(to)::type;
    upsample_nearest_2x_kernel<TX, TO><<<blocks, kThreadsPerBlock, 0, r.stream()>>>(
        static_cast<const TX*>(x.raw()), static_cast<TO*>(out.raw()), total, h, w);
  });
  CUDA_CHECK_LAUNCH("upsample_nearest_2x_kernel");
}

void conv3d_pad_input(const Context& ctx, const void* x, DType dtype, int64_t planes,
                      const std::array<int64_t, 3>& dims, const std::array<int64_t, 3>& front,
                      const std::array<int64_t, 3>& padded_dims, void* padded) {
  const int64_t total = planes * padded_dims[0] * padded_dims[1] * padded_dims[2];
  if (total == 0) return;
  const Resources& r = resources_of(ctx, "conv3d_pad_input");
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(total, r.sm_count());
  with_unit_type(static_cast<int>(dtype_size(dtype)), [&](auto tag) {
    using U = typename decltype(tag)::type;
    pad3d_kernel<U><<<blocks, kThreadsPerBlock, 0, r.stream()>>>(
        static_cast<const U*>(x), static_cast<U*>(padded), total, dims[0], dims[1], dims[2],
        padded_dims[0], padded_dims[1], padded_dims[2], front[0], front[1], front[2]);
  });
  CUDA_CHECK_LAUNCH("pad3d_kernel");
}

void conv3d_add_bias(const Context& ctx, Tensor& out, const Tensor& bias) {
  const int64_t channels = bias.dim(0);
  const int64_t plane = out.dim(-1) * out.dim(-2) * out.dim(-3);
  const int64_t rows = plane ? out.numel() / plane : 0;
  if (rows == 0 || plane == 0) return;
  const Resources& r = resources_of(ctx, "conv3d_add_bias");
  DeviceGuard guard(r.device());
  const dim3 grid = channel_grid(rows, plane, r.sm_count());
  with_float_type("conv3d", out.dtype(), [&](auto to) {
    using TO = typename decltype(to)::type;
    add_bias_kernel<TO><<<grid, kThreadsPerBlock, 0, r.stream()>>>(
        static_cast<TO*>(out.raw()), bias.raw(), bias.dtype(), rows, channels, plane);
  });
  CUDA_CHECK_LAUNCH("add_bias_kernel");
}

}  // namespace wanbatch::core::cuda
