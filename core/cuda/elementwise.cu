// CUDA kernels of the element-wise ops in core/cuda/ops.h (cast, fill, add, mul, scale, gelu_tanh,
// silu), queued on the context's stream. They compute in fp32 and store f32, bf16 or f16 with
// round to nearest even, like the CPU twins in core/cpu/elementwise.cpp. core/ops.cpp has already
// checked devices, shapes and dtypes.
#include <cstdint>
#include <cstring>

#include "core/cuda/check.h"
#include "core/cuda/element_access.cuh"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

// The ops' arithmetic in fp32. Explicit _rn intrinsics keep nvcc from fusing a multiply and an add
// into an FMA, so add, mul and scale give exactly the CPU's correctly rounded results.
struct AddOp {
  __device__ float operator()(float a, float b) const { return __fadd_rn(a, b); }
};
struct MulOp {
  __device__ float operator()(float a, float b) const { return __fmul_rn(a, b); }
};
struct ScaleOp {
  float factor;
  __device__ float operator()(float x) const { return __fmul_rn(x, factor); }
};
// GELU, tanh approximation: 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³). Written as
// x·sigmoid(2u), the same function, because 1 + tanh(u) cancels catastrophically for negative x in
// fp32 while the sigmoid form keeps full relative precision (the CPU computes in double).
struct GeluTanhOp {
  __device__ float operator()(float x) const {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
  }
};
struct SiluOp {
  __device__ float operator()(float x) const { return x / (1.0f + expf(-x)); }
};

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

template <DType D, typename Op>
__global__ void unary_kernel(const DeviceType<D>* x, DeviceType<D>* out, int64_t n, Op op) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = from_float<DeviceType<D>>(op(to_float(x[i])));
  }
}

template <typename Op>
__global__ void unary_mixed_kernel(const void* x, DType x_dtype, void* out, DType out_dtype,
                                   int64_t n, Op op) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    store_any(out, out_dtype, i, op(load_any(x, x_dtype, i)));
  }
}

// b repeats over a's leading dimensions: element i of a pairs with element i mod nb of b.
// out may alias a (each element is read before it is written, by the same thread).
template <DType D, typename Op>
__global__ void binary_kernel(const DeviceType<D>* a, const DeviceType<D>* b, DeviceType<D>* out,
                              int64_t n, int64_t nb, Op op) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t j = nb == n ? i : i % nb;
    out[i] = from_float<DeviceType<D>>(op(to_float(a[i]), to_float(b[j])));
  }
}

template <typename Op>
__global__ void binary_mixed_kernel(const void* a, DType a_dtype, const void* b, DType b_dtype,
                                    void* out, DType out_dtype, int64_t n, int64_t nb, Op op) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t j = nb == n ? i : i % nb;
    store_any(out, out_dtype, i, op(load_any(a, a_dtype, i), load_any(b, b_dtype, j)));
  }
}

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, T pattern) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) out[i] = pattern;
}

bool is_op_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

template <typename Op>
void unary(const char* name, const Context& ctx, const Tensor& x, Tensor& out, Op op) {
  const int64_t n = out.numel();
  if (n == 0) return;
  WB_CHECK(is_op_float(x.dtype()) && is_op_float(out.dtype()), name, ": CUDA kernel takes f32, ",
           "bf16 or f16, got ", x.describe(), " → ", out.describe());
  const Resources& r = resources_of(ctx, name);
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(n, r.sm_count());
  const cudaStream_t s = r.stream();
  if (x.dtype() == out.dtype()) {
    switch (x.dtype()) {
      case DType::BF16: {
        using T = DeviceType<DType::BF16>;
        unary_kernel<DType::BF16><<<blocks, kThreadsPerBlock, 0, s>>>(
            static_cast<const T*>(x.raw()), static_cast<T*>(out.raw()), n, op);
        break;
      }
      case DType::F16: {
        using T = DeviceType<DType::F16>;
        unary_kernel<DType::F16><<<blocks, kThreadsPerBlock, 0, s>>>(
            static_cast<const T*>(x.raw()), static_cast<T*>(out.raw()), n, op);
        break;
      }
      default:
        unary_kernel<DType::F32><<<blocks, kThreadsPerBlock, 0, s>>>(
            static_cast<const float*>(x.raw()), static_cast<float*>(out.raw()), n, op);
        break;
    }
  } else {
    unary_mixed_kernel<<<blocks, kThreadsPerBlock, 0, s>>>(x.raw(), x.dtype(), out.raw(),
                                                           out.dtype(), n, op);
  }
  CUDA_CHECK_LAUNCH("unary element-wise kernel");
}

template <typename Op>
void binary(const char* name, const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out,
            Op op) {
  const int64_t n = out.numel();
  const int64_t nb = b.numel();
  if (n == 0) return;
  WB_CHECK(is_op_float(a.dtype()) && is_op_float(b.dtype()) && is_op_float(out.dtype()), name,
           ": CUDA kernel takes f32, bf16 or f16, got ", a.describe(), ", ", b.describe(), " → ",
           out.describe());
  WB_CHECK(nb > 0 && n % nb == 0, name, ": ", b.describe(), " does not broadcast over ",
           a.describe());
  const Resources& r = resources_of(ctx, name);
  DeviceGuard guard(r.device());
  const unsigned blocks = grid_blocks(n, r.sm_count());
  const cudaStream_t s = r.stream();
  if (a.dtype() == b.dtype() && a.dtype() == out.dtype()) {
    switch (a.dtype()) {
      case DType::BF16: {
        using T = DeviceType<DType::BF16>;
        binary_kernel<DType::BF16><<<blocks, kThreadsPerBlock, 0, s>>>(
            static_cast<const T*>(a.raw()), static_cast<const T*>(b.raw()),
            static_cast<T*>(out.raw()), n, nb, op);
        break;
      }
      case DType::F16: {
        using T = DeviceType<DType::F16>;
        binary_kernel<DType::F16><<<blocks, kThreadsPerBlock, 0, s>>>(
            static_cast<const T*>(a.raw()), static_cast<const T*>(b.raw()),
            static_cast<T*>(out.raw()), n, nb, op);
        break;
      }
      default:
        binary_kernel<DType::F32><<<blocks, kThreadsPerBlock, 0, s>>>(
            static_cast<const float*>(a.raw()), static_cast<const float*>(b.raw()),
            static_cast<float*>(out.raw()), n, nb, op);
        break;
    }
  } else {
    binary_mixed_kernel<<<blocks, kThreadsPerBlock, 0, s>>>(a.raw(), a.dtype(), b.raw(), b.dtype(),
                                                            out.raw(), out.dtype(), n, nb, op);
  }
  CUDA_CHECK_LAUNCH("binary element-wise kernel");
}

template <typename T>
void launch_fill(const Resources& r, void* out, int64_t n, const void* pattern_bytes) {
  T pattern;
  std::memcpy(&pattern, pattern_bytes, sizeof(T));
  fill_kernel<T><<<grid_blocks(n, r.sm_count()), kThreadsPerBlock, 0, r.stream()>>>(
      static_cast<T*>(out), n, pattern);
  CUDA_CHECK_LAUNCH("fill_kernel");
}

}  // namespace

void cast(const Context& ctx, const Tensor& x, Tensor& out) {
  if (out.numel() == 0) return;
  if (x.dtype() == out.dtype() && x.raw() == out.raw()) return;  // a copy onto itself
  const Resources& r = resources_of(ctx, "cast");
  DeviceGuard guard(r.device());
  convert_async(x.raw(), x.dtype(), out.raw(), out.dtype(), static_cast<size_t>(out.numel()),
                r.sm_count(), r.stream());
}

void fill(const Context& ctx, Tensor& out, float value) {
  const int64_t n = out.numel();
  if (n == 0) return;
  // The element's bits come from the CPU's own conversion, so every dtype gets exactly the value
  // the CPU fill stores.
  unsigned char pattern[8] = {};
  convert_elements(&value, DType::F32, pattern, out.dtype(), 1);
  const Resources& r = resources_of(ctx, "fill");
  DeviceGuard guard(r.device());
  switch (dtype_size(out.dtype())) {
    case 1:
      return launch_fill<uint8_t>(r, out.raw(), n, pattern);
    case 2:
      return launch_fill<uint16_t>(r, out.raw(), n, pattern);
    case 4:
      return launch_fill<uint32_t>(r, out.raw(), n, pattern);
    case 8:
      return launch_fill<uint64_t>(r, out.raw(), n, pattern);
  }
  throw make_error("fill: unsupported element size for ", out.describe());
}

void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  binary("add", ctx, a, b, out, AddOp{});
}

void mul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  binary("mul", ctx, a, b, out, MulOp{});
}

void scale(const Context& ctx, const Tensor& x, float factor, Tensor& out) {
  unary("scale", ctx, x, out, ScaleOp{factor});
}

void gelu_tanh(const Context& ctx, const Tensor& x, Tensor& out) {
  unary("gelu_tanh", ctx, x, out, GeluTanhOp{});
}

void silu(const Context& ctx, const Tensor& x, Tensor& out) {
  unary("silu", ctx, x, out, SiluOp{});
}

}  // namespace wanbatch::core::cuda
