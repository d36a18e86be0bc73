// The CUDA runtime services of core/cuda/runtime.h (device count, memory, synchronous copies) and
// the dtype conversion kernels, which reproduce core::convert_elements (core/dtype.cpp) bit for
// bit so that a tensor converted on the GPU equals the same tensor converted on the CPU.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/resources.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

// Scalar conversions: device twins of the functions in core/dtype.cpp, line for line. They work on
// bit patterns rather than through cuda_fp16.h/cuda_bf16.h/cuda_fp8.h intrinsics because those
// replace NaN payloads with a canonical NaN, which the CPU does not, and integer arithmetic cannot
// be changed by -ftz or --use_fast_math.

__device__ __forceinline__ uint16_t float_to_bf16(float value) {
  uint32_t bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN: keep sign and payload, quiet
  }
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even, then truncate
  return static_cast<uint16_t>(bits >> 16);
}

__device__ __forceinline__ float bf16_to_float(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

__device__ __forceinline__ uint16_t float_to_f16(float value) {
  const uint32_t bits = __float_as_uint(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((abs >> 13) & 0x1ffu);
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // ≥ 65520: inf
  if (abs >= 0x38800000u) {                       // normal in f16 (≥ 2^-14)
    const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
  }
  if (abs < 0x33000000u) return sign;  // below 2^-25, half the smallest subnormal: zero
  const uint32_t exponent = abs >> 23;
  const uint32_t significand = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - exponent;  // 14..24
  uint32_t result = significand >> shift;
  const uint32_t remainder = significand & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (remainder > half || (remainder == half && (result & 1u))) ++result;
  return sign | static_cast<uint16_t>(result);
}

__device__ __forceinline__ float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    // mantissa · 2^-24 is zero or a normal fp32, so the product is exact even with -ftz.
    const float magnitude = __fmul_rn(static_cast<float>(mantissa), 0x1p-24f);
    return __uint_as_float(sign | __float_as_uint(magnitude));
  }
  return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

__device__ __forceinline__ uint8_t float_to_f8e4m3(float value) {
  const uint32_t bits = __float_as_uint(value);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7fu;   // NaN
  if (abs >= 0x43e00000u) return sign | 0x7eu;  // ≥ 448 (inf included): saturate
  if (abs < 0x3c800000u) {                      // below 2^-6: subnormal steps of 2^-9
    // rintf rounds half to even like the CPU's nearbyint; an fp32 subnormal input gives 0 on
    // both sides whether or not it is flushed.
    const float steps = rintf(__fmul_rn(__uint_as_float(abs), 512.0f));
    return sign | static_cast<uint8_t>(steps);
  }
  const uint32_t rounded = abs + 0x7ffffu + ((abs >> 20) & 1u);
  const uint32_t exponent = (rounded >> 23) - 120u;
  const uint32_t mantissa = (rounded >> 20) & 0x7u;
  const uint32_t result = (exponent << 3) | mantissa;
  return sign | static_cast<uint8_t>(result > 0x7eu ? 0x7eu : result);
}

__device__ __forceinline__ float f8e4m3_to_float(uint8_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x80u) << 24;
  const uint32_t exponent = (bits >> 3) & 0xfu;
  const uint32_t mantissa = bits & 0x7u;
  // The CPU returns quiet_NaN() (0x7fc00000), negated for 0xff: the sign bit flips, nothing else.
  if (exponent == 0xfu && mantissa == 0x7u) return __uint_as_float(sign | 0x7fc00000u);
  if (exponent == 0) {
    const float magnitude = __fmul_rn(static_cast<float>(mantissa), 0x1p-9f);  // exact
    return __uint_as_float(sign | __float_as_uint(magnitude));
  }
  return __uint_as_float(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

// Floating to integer as core/dtype.cpp defines it: truncation toward zero, saturation at the
// integer's range, NaN → 0.
__device__ __forceinline__ int32_t float_to_i32(float value) {
  if (value != value) return 0;
  if (value <= -2147483648.0f) return INT32_MIN;
  if (value >= 2147483648.0f) return INT32_MAX;
  return static_cast<int32_t>(value);
}

__device__ __forceinline__ int64_t float_to_i64(float value) {
  if (value != value) return 0;
  if (value <= -9223372036854775808.0f) return INT64_MIN;
  if (value >= 9223372036854775808.0f) return INT64_MAX;
  return static_cast<int64_t>(value);
}

// Storage type and fp32 load/store of each dtype, as load_float/store_float in core/dtype.cpp.
template <DType D>
struct Element;
template <>
struct Element<DType::F32> {
  using T = float;
  static __device__ __forceinline__ float load(T v) { return v; }
  static __device__ __forceinline__ T store(float v) { return v; }
};
template <>
struct Element<DType::BF16> {
  using T = uint16_t;
  static __device__ __forceinline__ float load(T v) { return bf16_to_float(v); }
  static __device__ __forceinline__ T store(float v) { return float_to_bf16(v); }
};
template <>
struct Element<DType::F16> {
  using T = uint16_t;
  static __device__ __forceinline__ float load(T v) { return f16_to_float(v); }
  static __device__ __forceinline__ T store(float v) { return float_to_f16(v); }
};
template <>
struct Element<DType::F8E4M3> {
  using T = uint8_t;
  static __device__ __forceinline__ float load(T v) { return f8e4m3_to_float(v); }
  static __device__ __forceinline__ T store(float v) { return float_to_f8e4m3(v); }
};
template <>
struct Element<DType::I32> {
  using T = int32_t;
  // Round to nearest even, as the CPU's int → float conversion in the default rounding mode.
  static __device__ __forceinline__ float load(T v) { return __int2float_rn(v); }
  static __device__ __forceinline__ T store(float v) { return float_to_i32(v); }
};
template <>
struct Element<DType::I64> {
  using T = int64_t;
  static __device__ __forceinline__ float load(T v) { return __ll2float_rn(v); }
  static __device__ __forceinline__ T store(float v) { return float_to_i64(v); }
};

__host__ __device__ constexpr bool is_integer(DType d) {
  return d == DType::I32 || d == DType::I64;
}

template <DType From, DType To>
__global__ void convert_kernel(const typename Element<From>::T* __restrict__ src,
                               typename Element<To>::T* __restrict__ dst, int64_t count) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    if constexpr (is_integer(From) && is_integer(To)) {
      // i64 ↔ i32 directly, not through fp32 (ids must survive): wraps modulo 2^32 like the CPU.
      dst[i] = static_cast<typename Element<To>::T>(src[i]);
    } else {
      dst[i] = Element<To>::store(Element<From>::load(src[i]));
    }
  }
}

template <DType From, DType To>
void launch_convert(const void* src, void* dst, size_t count, int sm_count, cudaStream_t stream) {
  if constexpr (From == To) {
    throw Error("cuda convert: same-dtype conversion reached a kernel (it is a copy)");
  } else {
    const int64_t n = static_cast<int64_t>(count);
    convert_kernel<From, To><<<grid_blocks(n, sm_count), kThreadsPerBlock, 0, stream>>>(
        static_cast<const typename Element<From>::T*>(src),
        static_cast<typename Element<To>::T*>(dst), n);
    CUDA_CHECK_LAUNCH("convert_kernel");
  }
}

template <DType From>
void launch_convert_from(const void* src, void* dst, DType to, size_t count, int sm_count,
                         cudaStream_t stream) {
  switch (to) {
    case DType::F32:
      return launch_convert<From, DType::F32>(src, dst, count, sm_count, stream);
    case DType::BF16:
      return launch_convert<From, DType::BF16>(src, dst, count, sm_count, stream);
    case DType::F16:
      return launch_convert<From, DType::F16>(src, dst, count, sm_count, stream);
    case DType::F8E4M3:
      return launch_convert<From, DType::F8E4M3>(src, dst, count, sm_count, stream);
    case DType::I32:
      return launch_convert<From, DType::I32>(src, dst, count, sm_count, stream);
    case DType::I64:
      return launch_convert<From, DType::I64>(src, dst, count, sm_count, stream);
  }
  throw Error("cuda convert: unknown destination dtype");
}

// Waits for everything queued on `device`, on every stream: the synchronous entry points below
// must see the results of ops queued on a Context's (non-blocking) stream, and ops queued after
// them must see their results.
void synchronize_device(int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

int multiprocessor_count(int device) {
  int count = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

}  // namespace

void convert_async(const void* src, DType from, void* dst, DType to, size_t count, int sm_count,
                   cudaStream_t stream) {
  if (count == 0) return;
  if (from == to) {
    CUDA_CHECK(
        cudaMemcpyAsync(dst, src, count * dtype_size(from), cudaMemcpyDeviceToDevice, stream));
    return;
  }
  switch (from) {
    case DType::F32:
      return launch_convert_from<DType::F32>(src, dst, to, count, sm_count, stream);
    case DType::BF16:
      return launch_convert_from<DType::BF16>(src, dst, to, count, sm_count, stream);
    case DType::F16:
      return launch_convert_from<DType::F16>(src, dst, to, count, sm_count, stream);
    case DType::F8E4M3:
      return launch_convert_from<DType::F8E4M3>(src, dst, to, count, sm_count, stream);
    case DType::I32:
      return launch_convert_from<DType::I32>(src, dst, to, count, sm_count, stream);
    case DType::I64:
      return launch_convert_from<DType::I64>(src, dst, to, count, sm_count, stream);
  }
  throw Error("cuda convert: unknown source dtype");
}

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error state to carry into later calls
    return 0;
  }
  return count;
}

// --- Device memory: a caching, stream-ordered pool per device ---
//
// Storage has no stream: a tensor may be freed (its last owner gone on the host) while kernels
// that read it are still queued. cudaFree was safe because it synchronizes the device, but that
// costs a round trip per freed temporary. cudaFreeAsync(p, s) instead makes the memory reusable
// once stream s reaches that point, which is safe exactly when every use of p is ordered before it
// on s. Our ops all run on their Context's stream, and the NCCL communicator joins its stream
// back into that stream after each collective (parallel/nccl_comm.h), so:
//  - with exactly one Context stream registered on the device (the normal case: one Context per
//    device per process), allocation and release are both queued on that stream with
//    cudaMallocAsync/cudaFreeAsync: no synchronization at all, and the pool (its release threshold
//    raised to "never") hands the same memory out again;
//  - with none or several (tests, tools), which stream used the memory is unknown, so release
//    first synchronizes the device (what cudaFree did) and allocation waits for its own ordering
//    point (the legacy stream) before returning memory any stream may use. Still no cudaMalloc.
// The synchronous copies and conversions of this file synchronize the device before and after,
// so they are ordered with both modes. A Context's Resources synchronizes its stream before
// unregistering it, so memory ordered on it is never handed to the other mode with work pending.
namespace {

struct AllocatorState {
  std::mutex mutex;
  std::unordered_map<int, std::vector<cudaStream_t>> streams;
  std::unordered_map<int, cudaMemPool_t> pools;  // configured default pools, by device
  std::unordered_map<int, size_t> allocations;   // allocate() calls that returned memory
};

// Never destroyed: tensors held by static objects may be released during exit, after the
// destructors of function-local statics have run.
AllocatorState& allocator_state() {
  static AllocatorState* state = new AllocatorState;
  return *state;
}

// The device's default pool, configured to keep freed memory (first use only). Under the mutex.
cudaMemPool_t pool_of(AllocatorState& state, int device) {
  const auto found = state.pools.find(device);
  if (found != state.pools.end()) return found->second;
  int supported = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device));
  WB_CHECK(supported, "cuda:", device, " does not support stream-ordered memory pools");
  cudaMemPool_t pool = nullptr;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t keep = UINT64_MAX;  // never give freed memory back to the driver on synchronization
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  state.pools.emplace(device, pool);
  return pool;
}

// The one registered stream of `device`, or null when there are none or several. Under the mutex.
cudaStream_t ordering_stream(AllocatorState& state, int device) {
  const auto found = state.streams.find(device);
  if (found == state.streams.end() || found->second.size() != 1) return nullptr;
  return found->second.front();
}

size_t pool_attribute(int device, cudaMemPoolAttr attribute) {
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  DeviceGuard guard(device);
  uint64_t value = 0;
  CUDA_CHECK(cudaMemPoolGetAttribute(pool_of(state, device), attribute, &value));
  return static_cast<size_t>(value);
}

}  // namespace

void* allocate(size_t bytes, int device) {
  if (bytes == 0) return nullptr;  // an empty tensor needs no memory; release(nullptr) is a no-op
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);  // also keeps the ordering stream registered
  DeviceGuard guard(device);
  const cudaMemPool_t pool = pool_of(state, device);
  cudaStream_t ordered = ordering_stream(state, device);
  const cudaStream_t stream = ordered ? ordered : cudaStreamLegacy;
  void* pointer = nullptr;
  cudaError_t status = cudaMallocAsync(&pointer, bytes, stream);
  if (status == cudaErrorMemoryAllocation) {
    // The pool's cache may hold enough memory in pieces of the wrong sizes: wait until every
    // pending free has happened, give the cache back to the driver, and try once more.
    cudaGetLastError();
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    status = cudaMallocAsync(&pointer, bytes, stream);
  }
  if (status != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    uint64_t in_tensors = 0;
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &in_tensors);
    cudaGetLastError();
    throw make_error("cuda:", device, ": cannot allocate ", bytes, " bytes (", free_bytes >> 20,
                     " MiB free of ", total_bytes >> 20, " MiB; ",
                     static_cast<size_t>(in_tensors) >> 20,
                     " MiB in tensors): ", cudaGetErrorString(status));
  }
  // Unordered mode: the memory must be usable from any stream once we return.
  if (!ordered) CUDA_CHECK(cudaStreamSynchronize(stream));
  ++state.allocations[device];
  return pointer;
}

void release(void* pointer, int device) {
  // Called from Storage's destructor, so it must not throw (errors are dropped: the runtime may be
  // shutting down at exit, and a broken context is reported by the next checked call anyway).
  if (pointer == nullptr) return;
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  with_device_noexcept(device, [&] {
    if (cudaStream_t ordered = ordering_stream(state, device)) {
      cudaFreeAsync(pointer, ordered);
    } else {
      // Unknown users on unknown streams: let everything queued finish first, like cudaFree.
      cudaDeviceSynchronize();
      cudaFreeAsync(pointer, cudaStreamLegacy);
    }
  });
}

size_t current_device_bytes(int device) {
  return pool_attribute(device, cudaMemPoolAttrUsedMemCurrent);
}

size_t peak_device_bytes(int device) { return pool_attribute(device, cudaMemPoolAttrUsedMemHigh); }

size_t reserved_device_bytes(int device) {
  return pool_attribute(device, cudaMemPoolAttrReservedMemCurrent);
}

size_t device_allocation_count(int device) {
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  const auto found = state.allocations.find(device);
  return found == state.allocations.end() ? 0 : found->second;
}

void reset_peak_device_bytes(int device) {
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  DeviceGuard guard(device);
  uint64_t zero = 0;  // the only value accepted: the high mark restarts from current use
  CUDA_CHECK(cudaMemPoolSetAttribute(pool_of(state, device), cudaMemPoolAttrUsedMemHigh, &zero));
}

void register_stream(int device, cudaStream_t stream) {
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.streams[device].push_back(stream);
}

void unregister_stream(int device, cudaStream_t stream) noexcept {
  auto& state = allocator_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  auto& list = state.streams[device];
  const auto found = std::find(list.begin(), list.end(), stream);
  if (found != list.end()) list.erase(found);
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
  // Synchronous in the strong sense: the device(s) are idle before (so the copy sees what ops
  // queued on any stream wrote) and after (cudaMemcpy alone returns early for device-to-device
  // copies and pageable host-to-device ones, and ops on a non-blocking stream would not wait).
  // Whole-tensor copies happen at load and save time, where the cost of this does not matter.
  if (src_device.is_cuda() && dst_device.is_cuda() && src_device.index != dst_device.index) {
    synchronize_device(src_device.index);
    synchronize_device(dst_device.index);
    CUDA_CHECK(cudaMemcpyPeer(dst, dst_device.index, src, src_device.index, bytes));
    synchronize_device(src_device.index);
    synchronize_device(dst_device.index);
    return;
  }
  const int device = dst_device.is_cuda() ? dst_device.index : src_device.index;
  const cudaMemcpyKind kind = src_device.is_cpu()   ? cudaMemcpyHostToDevice
                              : dst_device.is_cpu() ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
  DeviceGuard guard(device);
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
  CUDA_CHECK(cudaDeviceSynchronize());
}

void convert(const void* src, DType from, void* dst, DType to, size_t count, int device) {
  if (count == 0) return;
  DeviceGuard guard(device);
  // Synchronous like copy(), for the same reasons; the legacy default stream carries the kernel.
  CUDA_CHECK(cudaDeviceSynchronize());
  convert_async(src, from, dst, to, count, multiprocessor_count(device), cudaStreamLegacy);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace wanbatch::core::cuda
