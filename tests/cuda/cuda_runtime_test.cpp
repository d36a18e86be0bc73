// The CUDA runtime services (core/cuda/runtime.cu, core/cuda/resources.cpp) against the CPU:
// byte-exact copies, dtype conversions bit-identical to core::convert_elements for every dtype
// pair over edge values and exhaustive 8/16-bit patterns, Context creation and the check macros.
// Every test skips itself on a machine without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/cuda/check.h"
#include "core/cuda/resources.h"
#include "core/cuda/runtime.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "cuda_test_support.h"

namespace wanbatch::core {
namespace {

constexpr DType kAllDtypes[] = {DType::F32,    DType::BF16, DType::F16,
                                DType::F8E4M3, DType::I32,  DType::I64};

// A host tensor holding a copy of raw element bytes.
Tensor host_tensor(const void* bytes, int64_t count, DType dtype) {
  Tensor t = Tensor::empty({count}, dtype);
  if (count > 0) std::memcpy(t.raw(), bytes, t.nbytes());
  return t;
}

template <typename T>
Tensor host_tensor(const std::vector<T>& values, DType dtype) {
  return host_tensor(values.data(), static_cast<int64_t>(values.size()), dtype);
}

std::string hex_element(const void* base, DType dtype, int64_t i) {
  const size_t size = dtype_size(dtype);
  const auto* p = static_cast<const unsigned char*>(base) + static_cast<size_t>(i) * size;
  std::string out = "0x";
  char digits[3];
  for (size_t k = size; k-- > 0;) {  // little-endian bytes, most significant first
    std::snprintf(digits, sizeof digits, "%02x", p[k]);
    out += digits;
  }
  return out;
}

// Fails with the first few differing elements (source, CPU and GPU bits) if any byte differs.
void expect_same_elements(const Tensor& source, const Tensor& cpu, const Tensor& gpu,
                          const std::string& what) {
  ASSERT_EQ(cpu.dtype(), gpu.dtype());
  ASSERT_EQ(cpu.numel(), gpu.numel());
  ASSERT_TRUE(gpu.device().is_cpu());
  const std::vector<int64_t> differing = cuda_test::differing_elements(cpu, gpu);
  std::string examples;
  for (size_t k = 0; k < std::min<size_t>(differing.size(), 8); ++k) {
    const int64_t i = differing[k];
    examples += "\n  [" + std::to_string(i) + "] source " +
                hex_element(source.raw(), source.dtype(), i) + ": cpu " +
                hex_element(cpu.raw(), cpu.dtype(), i) + ", gpu " +
                hex_element(gpu.raw(), gpu.dtype(), i);
  }
  EXPECT_EQ(differing.size(), 0u) << what << ": " << differing.size() << " of " << cpu.numel()
                                  << " elements differ" << examples;
}

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// fp32 values where conversions decide something: each representable value of the narrow
// formats, the midpoints between neighbours (round-to-even ties) and the fp32 values just either
// side of them, on both signs; plus named edges and random bit patterns (NaN payloads included).
std::vector<float> f32_edge_values() {
  std::vector<float> v = {
      0.0f, -0.0f, 1.0f, -1.0f, 2.5f, -2.5f, 3.5f, -3.5f, 0.49999997f, 0.5f, 0.9999999f, 3.7f,
      -3.7f, 1e-45f, -1e-45f, std::numeric_limits<float>::denorm_min(),
      std::numeric_limits<float>::min(), std::nextafter(std::numeric_limits<float>::min(), 0.0f),
      std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
      std::numeric_limits<float>::signaling_NaN(), bits_to_float(0x7f800001u),
      bits_to_float(0xffbfffffu), bits_to_float(0x7fc12345u), bits_to_float(0xff812345u),
      // bf16: largest finite, and the tie above it that rounds to inf
      bits_to_float(0x7f7f0000u), bits_to_float(0x7f7f8000u), bits_to_float(0x7f7f7fffu),
      // f16: max finite 65504, the tie 65520 (→ inf), just below it, subnormals and their ties
      65504.0f, 65519.996f, 65520.0f, -65520.0f, 65536.0f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f,
      0x1.8p-24f, 0x1p-14f, 0x1.ff8p-15f, 6e-8f, 3e-8f,
      // f8 e4m3: max 448, overflow that saturates, smallest normal/subnormal and their ties
      448.0f, -448.0f, 447.9f, 464.0f, 480.0f, 1000.0f, 0x1p-6f, 0x1.ep-7f, 0x1.fp-7f, 0x1p-9f,
      0x1p-10f, 0x1.000002p-10f, 0x1.8p-9f, 0x1.4p-8f, 1.0625f, 1.1875f,
      // integer conversions: truncation toward zero, and the edges of i32/i64 and beyond
      16777217.0f, 2147483520.0f, 2147483648.0f, -2147483648.0f, -2147483904.0f, 3e9f, -3e9f,
      9.2233715e18f, -9.2233720e18f, 9.223372e18f, 1e19f, -1e19f, 0.999f, -0.999f, 1.999f, -1.999f};
  auto add_neighbourhoods = [&v](int patterns, float (*to_float)(uint32_t)) {
    for (int p = 0; p + 1 < patterns; ++p) {
      const float value = to_float(static_cast<uint32_t>(p));
      const float next = to_float(static_cast<uint32_t>(p + 1));
      if (!std::isfinite(value) || !std::isfinite(next) || next <= value) continue;
      const float mid = value + (next - value) / 2.0f;  // exact: one bit more than the format
      for (float x : {value, mid, std::nextafter(mid, 0.0f),
                      std::nextafter(mid, std::numeric_limits<float>::infinity())}) {
        v.push_back(x);
        v.push_back(-x);
      }
    }
  };
  add_neighbourhoods(0x7f80, [](uint32_t p) { return bf16_to_float(static_cast<uint16_t>(p)); });
  add_neighbourhoods(0x7c00, [](uint32_t p) { return f16_to_float(static_cast<uint16_t>(p)); });
  add_neighbourhoods(0x7f, [](uint32_t p) { return f8e4m3_to_float(static_cast<uint8_t>(p)); });
  std::mt19937 rng(1234);
  for (int i = 0; i < 200000; ++i) v.push_back(bits_to_float(static_cast<uint32_t>(rng())));
  std::uniform_real_distribution<float> moderate(-600.0f, 600.0f);
  for (int i = 0; i < 20000; ++i) v.push_back(moderate(rng));
  return v;
}

std::vector<int32_t> i32_edge_values() {
  std::vector<int32_t> v = {0,
                            1,
                            -1,
                            7,
                            -7,
                            255,
                            448,
                            449,
                            65504,
                            65520,
                            65536,
                            -65536,
                            16777216,
                            16777217,
                            16777219,
                            -16777217,
                            33554435,
                            std::numeric_limits<int32_t>::max(),
                            std::numeric_limits<int32_t>::min(),
                            std::numeric_limits<int32_t>::max() - 64,
                            std::numeric_limits<int32_t>::min() + 65};
  std::mt19937 rng(99);
  for (int i = 0; i < 50000; ++i) v.push_back(static_cast<int32_t>(rng()));
  std::uniform_int_distribution<int32_t> small(-70000, 70000);
  for (int i = 0; i < 50000; ++i) v.push_back(small(rng));
  return v;
}

std::vector<int64_t> i64_edge_values() {
  std::vector<int64_t> v = {0,
                            1,
                            -1,
                            448,
                            -449,
                            65519,
                            65520,
                            16777217,
                            (int64_t{1} << 31),
                            -(int64_t{1} << 31) - 1,
                            (int64_t{1} << 32) + 5,
                            -(int64_t{1} << 32) - 5,
                            (int64_t{1} << 53) + 1,
                            (int64_t{1} << 62) + (int64_t{1} << 38) + 1,
                            std::numeric_limits<int64_t>::max(),
                            std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max() - 1024};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50000; ++i) v.push_back(static_cast<int64_t>(rng()));
  std::uniform_int_distribution<int64_t> medium(-(int64_t{1} << 40), int64_t{1} << 40);
  for (int i = 0; i < 50000; ++i) v.push_back(medium(rng));
  return v;
}

// Source values of each dtype: every bit pattern of the 8- and 16-bit formats, edge lists of the
// 32- and 64-bit ones.
Tensor conversion_source(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return host_tensor(f32_edge_values(), dtype);
    case DType::BF16:
    case DType::F16: {
      std::vector<uint16_t> all(65536);
      for (uint32_t p = 0; p < all.size(); ++p) all[p] = static_cast<uint16_t>(p);
      return host_tensor(all, dtype);
    }
    case DType::F8E4M3: {
      std::vector<uint8_t> all(256);
      for (uint32_t p = 0; p < all.size(); ++p) all[p] = static_cast<uint8_t>(p);
      return host_tensor(all, dtype);
    }
    case DType::I32:
      return host_tensor(i32_edge_values(), dtype);
    case DType::I64:
      return host_tensor(i64_edge_values(), dtype);
  }
  return {};
}

Tensor cpu_convert(const Tensor& source, DType to) {
  Tensor out = Tensor::empty(source.shape(), to);
  convert_elements(source.raw(), source.dtype(), out.raw(), to,
                   static_cast<size_t>(source.numel()));
  return out;
}

TEST(CudaRuntime, HostDeviceRoundTripKeepsEveryByte) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(42);
  for (DType dtype : kAllDtypes) {
    // An odd element count, so no copy happens to be a multiple of any transfer granule.
    const int64_t count = 100003;
    std::vector<unsigned char> bytes(static_cast<size_t>(count) * dtype_size(dtype));
    for (auto& b : bytes) b = static_cast<unsigned char>(rng());
    const Tensor host = host_tensor(bytes.data(), count, dtype);
    const Tensor device = host.to(Device::cuda(0));
    EXPECT_TRUE(device.device().is_cuda());
    const Tensor device_copy = device.clone();  // device-to-device
    const Tensor back = device_copy.to(Device::cpu());
    ASSERT_EQ(back.nbytes(), bytes.size());
    EXPECT_EQ(std::memcmp(back.raw(), bytes.data(), bytes.size()), 0) << dtype_name(dtype);
  }
}

TEST(CudaRuntime, CopyIntoDeviceSliceWritesOnlyThoseRows) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  std::vector<float> base(6 * 5), rows(2 * 5);
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<float>(i) + 0.25f;
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = -static_cast<float>(i) - 0.5f;
  Tensor device = Tensor::from_vector(base, {6, 5}).to(Device::cuda(0));
  Tensor middle = device.slice(3, 5);  // a view at a byte offset into the device storage
  middle.copy_from(Tensor::from_vector(rows, {2, 5}));
  const std::vector<float> result = device.to_floats();
  for (size_t i = 0; i < base.size(); ++i) {
    const bool in_slice = i >= 15 && i < 25;
    EXPECT_EQ(result[i], in_slice ? rows[i - 15] : base[i]) << "element " << i;
  }
}

TEST(CudaRuntime, EmptyTensorsCopyAndConvert) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Tensor device = Tensor::empty({0, 7}, DType::BF16, Device::cuda(0));
  EXPECT_EQ(device.numel(), 0);
  EXPECT_EQ(device.to(DType::F32).numel(), 0);
  EXPECT_EQ(device.to(Device::cpu()).numel(), 0);
}

TEST(CudaRuntime, ZerosOnDeviceAreZero) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Tensor zeros = Tensor::zeros({33, 17}, DType::F16, Device::cuda(0));
  for (float v : zeros.to_floats()) ASSERT_EQ(v, 0.0f);
}

// Tensor::to(DType) on a CUDA tensor runs cuda::convert; it must give the CPU's bits exactly.
TEST(CudaRuntime, ConversionsMatchCpuBitForBit) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (DType from : kAllDtypes) {
    const Tensor source = conversion_source(from);
    const Tensor device_source = source.to(Device::cuda(0));
    for (DType to : kAllDtypes) {
      const Tensor expected = cpu_convert(source, to);
      const Tensor actual = device_source.to(to).to(Device::cpu());
      expect_same_elements(source, expected, actual,
                           std::string(dtype_name(from)) + " → " + std::string(dtype_name(to)));
    }
  }
}

// The same conversions through ops::cast, which queues them on the context's own stream.
TEST(CudaRuntime, CastOpMatchesCpuBitForBit) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  for (DType from : kAllDtypes) {
    const Tensor source = conversion_source(from);
    const Tensor device_source = source.to(Device::cuda(0));
    for (DType to : kAllDtypes) {
      Tensor device_out = Tensor::empty(source.shape(), to, Device::cuda(0));
      ops::cast(gpu, device_source, device_out);
      gpu.synchronize();
      expect_same_elements(
          source, cpu_convert(source, to), device_out.to(Device::cpu()),
          "cast " + std::string(dtype_name(from)) + " → " + std::string(dtype_name(to)));
    }
  }
}

TEST(CudaContext, InvalidDeviceIndexThrows) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const int count = cuda_device_count();
  EXPECT_THROW(Context::cuda(count), Error);
  EXPECT_THROW(Context::cuda(-1), Error);
  try {
    Context::cuda(count + 3);
    FAIL() << "Context::cuda(" << count + 3 << ") did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(count + 3)), std::string::npos)
        << "message should name the index: " << e.what();
  }
}

TEST(CudaContext, HoldsStreamHandlesAndWorkspaceOfItsDevice) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  EXPECT_TRUE(cuda_built());
  EXPECT_EQ(cuda::device_count(), cuda_device_count());
  const int last = cuda_device_count() - 1;  // the last device, to catch a device mix-up
  const Context ctx = Context::cuda(last);
  EXPECT_EQ(ctx.device(), Device::cuda(last));
  const cuda::Resources* r = ctx.cuda_resources();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->device(), last);
  EXPECT_GT(r->sm_count(), 0);
  EXPECT_NE(r->stream(), nullptr);
  EXPECT_NE(r->cublaslt(), nullptr);
  EXPECT_NE(r->cudnn(), nullptr);
  EXPECT_NE(r->workspace(), nullptr);
  EXPECT_GE(r->workspace_bytes(), size_t{32} << 20);
  cudaPointerAttributes attributes{};
  ASSERT_EQ(cudaPointerGetAttributes(&attributes, r->workspace()), cudaSuccess);
  EXPECT_EQ(attributes.device, last);
  cudaStream_t bound = nullptr;
  ASSERT_EQ(cudnnGetStream(r->cudnn(), &bound), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(bound, r->stream());
  unsigned int flags = 0;
  ASSERT_EQ(cudaStreamGetFlags(r->stream(), &flags), cudaSuccess);
  EXPECT_EQ(flags & cudaStreamNonBlocking, static_cast<unsigned>(cudaStreamNonBlocking));
  EXPECT_NO_THROW(ctx.synchronize());
  // Copies of a context share its resources, so ops on either queue on the same stream.
  const Context copy = ctx;
  EXPECT_EQ(copy.cuda_resources(), r);
  EXPECT_EQ(Context::cpu().cuda_resources(), nullptr);
  EXPECT_NO_THROW(Context::cpu().synchronize());
}

TEST(CudaContext, DeviceMemoryLandsOnTheRequestedDevice) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (int d = 0; d < cuda_device_count(); ++d) {
    void* p = cuda::allocate(4096, d);
    cudaPointerAttributes attributes{};
    ASSERT_EQ(cudaPointerGetAttributes(&attributes, p), cudaSuccess);
    EXPECT_EQ(attributes.device, d);
    EXPECT_EQ(attributes.type, cudaMemoryTypeDevice);
    cuda::release(p, d);
  }
  EXPECT_EQ(cuda::allocate(0, 0), nullptr);
  EXPECT_THROW(cuda::allocate(16, cuda_device_count()), Error);
}

// The check macros throw wanbatch::Error naming the call and the library's own error text.
TEST(CudaCheck, MessagesNameCallAndLibraryError) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(nothing thrown)";
  };
  const std::string cuda_message =
      message_of([] { CUDA_CHECK(cudaSetDevice(cuda_device_count() + 5)); });
  EXPECT_NE(cuda_message.find("cudaSetDevice"), std::string::npos) << cuda_message;
  EXPECT_NE(cuda_message.find("cudaErrorInvalidDevice"), std::string::npos) << cuda_message;
  EXPECT_NE(cuda_message.find("cuda_runtime_test.cpp:"), std::string::npos) << cuda_message;
  const std::string cublas_message = message_of([] {
    const cublasStatus_t status = CUBLAS_STATUS_INVALID_VALUE;
    CUBLAS_CHECK(status);
  });
  EXPECT_NE(cublas_message.find(": status failed"), std::string::npos) << cublas_message;
  EXPECT_NE(cublas_message.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos)
      << cublas_message;
  const std::string cudnn_message = message_of([] {
    const cudnnStatus_t status = CUDNN_STATUS_BAD_PARAM;
    CUDNN_CHECK(status);
  });
  EXPECT_NE(cudnn_message.find(": status failed"), std::string::npos) << cudnn_message;
  EXPECT_NE(cudnn_message.find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << cudnn_message;
}

// The caching pool (runtime.cu): allocating and freeing the same size over and over while the
// memory is still used by queued kernels gives correct data, leaves nothing allocated, and
// reuses memory instead of growing (peak tracking).
TEST(CudaAllocator, RepeatedAllocationsOfOneSizeReuseMemory) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context ctx = Context::cuda(0);
  ctx.synchronize();
  constexpr int64_t kFloats = int64_t{8} << 20;  // 32 MiB
  constexpr size_t kBytes = static_cast<size_t>(kFloats) * sizeof(float);
  cuda::reset_peak_device_bytes(0);
  const size_t before = cuda::current_device_bytes(0);
  EXPECT_GE(cuda::peak_device_bytes(0), before);
  for (int i = 0; i < 500; ++i) {
    Tensor t = Tensor::empty({kFloats}, DType::F32, Device::cuda(0));
    ops::fill(ctx, t, static_cast<float>(i));  // queued; t is released before it runs
  }
  Tensor last = Tensor::empty({kFloats}, DType::F32, Device::cuda(0));
  ops::fill(ctx, last, 7.5f);
  Tensor doubled = Tensor::empty({kFloats}, DType::F32, Device::cuda(0));
  ops::scale(ctx, last, 2.0f, doubled);
  ctx.synchronize();
  const std::vector<float> values = doubled.to_floats();
  for (int64_t i = 0; i < kFloats; i += 65537) ASSERT_EQ(values[i], 15.0f) << "element " << i;
  EXPECT_EQ(cuda::current_device_bytes(0), before + 2 * kBytes);
  // A freed block is handed out again: the peak is the two live tensors (a few more blocks of
  // slack in case the pool counts a stream-ordered free late), never the 500 allocations.
  EXPECT_GE(cuda::peak_device_bytes(0), before + 2 * kBytes);
  EXPECT_LE(cuda::peak_device_bytes(0), before + 8 * kBytes);
  last = Tensor();
  doubled = Tensor();
  ctx.synchronize();
  EXPECT_EQ(cuda::current_device_bytes(0), before);
}

// With two Contexts on the device nobody knows which stream used a tensor, so release
// synchronizes: data written on one context's stream survives the other's allocations.
TEST(CudaAllocator, TwoContextsOnOneDeviceKeepDataIntact) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context first = Context::cuda(0);
  const Context second = Context::cuda(0);
  constexpr int64_t kFloats = int64_t{1} << 20;
  Tensor kept = Tensor::empty({kFloats}, DType::F32, Device::cuda(0));
  ops::fill(first, kept, 3.0f);
  for (int i = 0; i < 50; ++i) {
    Tensor scratch = Tensor::empty({kFloats}, DType::F32, Device::cuda(0));
    ops::fill(second, scratch, -1.0f);
  }
  first.synchronize();
  second.synchronize();
  const std::vector<float> values = kept.to_floats();
  for (int64_t i = 0; i < kFloats; i += 4099) ASSERT_EQ(values[i], 3.0f) << "element " << i;
}

}  // namespace
}  // namespace wanbatch::core
