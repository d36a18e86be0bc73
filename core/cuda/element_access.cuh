// Per-element fp32 access to f32, bf16 and f16 device buffers, shared by the CUDA kernels that
// compute in fp32 and load and store the model's float formats (for .cu files only).
//
// Rounding: stores round to nearest even, through the _rn intrinsics, and give exactly the bits of
// core/dtype.cpp's float_to_bf16 / float_to_f16 for every non-NaN value, subnormals and overflow to
// inf included, so a kernel's output matches its CPU twin's when the fp32 value is the same. Only a
// NaN may differ: it stays a NaN, but the device writes the canonical one where the CPU keeps the
// payload. Loads widen exactly. Exact dtype conversions (cast, f8, integers) use convert_async in
// runtime.cu instead. The host side: check_float, the argument check that makes those loads and
// stores valid, and with_type, the run-time dtype to device element type dispatch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace wanbatch::core::cuda {

// The device element type of a float dtype known at compile time.
template <DType D>
struct DeviceTypeOf;
template <>
struct DeviceTypeOf<DType::F32> {
  using type = float;
};
template <>
struct DeviceTypeOf<DType::BF16> {
  using type = __nv_bfloat16;
};
template <>
struct DeviceTypeOf<DType::F16> {
  using type = __half;
};
template <DType D>
using DeviceType = typename DeviceTypeOf<D>::type;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// from_float<T>(v): v rounded to nearest even into T (float, __nv_bfloat16 or __half).
template <typename T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(v);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(v);
  } else {
    static_assert(std::is_same_v<T, float>, "from_float stores f32, bf16 or f16");
    return v;
  }
}

// The same by a dtype known only at run time, for operands whose format differs from the kernel's
// (per-channel parameters, a bias, mixed-dtype element-wise ops). The switch is uniform across a
// warp, so it costs little. The caller has checked that dtype is f32, bf16 or f16: any other is
// read and written as f32.
__device__ __forceinline__ float load_any(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::BF16:
      return to_float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16:
      return to_float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void store_any(void* p, DType dtype, int64_t i, float v) {
  switch (dtype) {
    case DType::BF16:
      static_cast<__nv_bfloat16*>(p)[i] = from_float<__nv_bfloat16>(v);
      break;
    case DType::F16:
      static_cast<__half*>(p)[i] = from_float<__half>(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
      break;
  }
}

// ---- host side -------------------------------------------------------------------------------

// Every defined tensor of `ts` is f32, bf16 or f16: the formats these kernels load and store.
inline void check_float(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    const DType d = t->dtype();
    WB_CHECK(d == DType::F32 || d == DType::BF16 || d == DType::F16, op,
             ": CUDA kernel takes f32, bf16 or f16, got ", t->describe());
  }
}

// Calls f with a value of the C++ type holding `dtype` (f32, bf16 or f16; checked by check_float).
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

}  // namespace wanbatch::core::cuda
