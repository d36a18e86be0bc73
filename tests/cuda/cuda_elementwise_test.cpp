// The CUDA element-wise ops (core/cuda/elementwise.cu) against their CPU twins, both called through
// core::ops on random inputs: bit-exact for cast, fill, add, mul and scale (IEEE fp32 arithmetic
// and round-to-nearest-even stores are the same on both sides), stated tolerances for gelu_tanh
// and silu (the GPU evaluates them in fp32, the CPU in double). Every test skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "cuda_test_support.h"

namespace wanbatch::core {
namespace {

constexpr DType kFloatDtypes[] = {DType::F32, DType::BF16, DType::F16};

using cuda_test::expect_identical;
using cuda_test::label;
using cuda_test::on_gpu;
using cuda_test::random_tensor;
using cuda_test::ulp_position;

// For the transcendental ops. f32: |gpu − cpu| ≤ atol + rtol·|cpu|. bf16/f16: the fp32 results
// differ by far less than the 16-bit format's spacing, so after rounding they are equal or, when
// they straddle a rounding boundary, one unit in the last place apart; or both are within atol
// (far tails: there the CPU's 1 + tanh(u), even in double, cancels to a few bits or to zero, while
// the GPU's x·sigmoid(2u) keeps its precision, so their tiny results may differ by many units).
// Straddling is rare, so where |cpu| ≥ 1e-3 at least 99% must be bit-identical (a wrong rounding
// mode would miss about half).
void expect_close(const Tensor& cpu, const Tensor& gpu, float atol, float rtol,
                  const std::string& what) {
  const Tensor host = gpu.to(Device::cpu());
  ASSERT_EQ(cpu.dtype(), host.dtype()) << what;
  ASSERT_EQ(cpu.shape(), host.shape()) << what;
  const int64_t n = cpu.numel();
  int64_t failures = 0;
  std::string examples;
  if (cpu.dtype() == DType::F32) {
    const float* c = cpu.data<float>();
    const float* g = host.data<float>();
    double worst = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double error = std::fabs(static_cast<double>(g[i]) - c[i]);
      worst = std::max(worst, error / (atol + rtol * std::fabs(c[i])));
      if (!(error <= atol + rtol * std::fabs(c[i])) && ++failures <= 5) {
        examples += "\n  [" + std::to_string(i) + "] cpu " + std::to_string(c[i]) + ", gpu " +
                    std::to_string(g[i]);
      }
    }
    EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << n << " outside atol " << atol
                           << " + rtol " << rtol << " (worst at " << worst << " of the bound)"
                           << examples;
    return;
  }
  const uint16_t* c = cpu.data<uint16_t>();
  const uint16_t* g = host.data<uint16_t>();
  const std::vector<float> cf = cpu.to_floats(), gf = host.to_floats();
  int64_t exact = 0, significant = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t distance = std::abs(ulp_position(c[i]) - ulp_position(g[i]));
    if (std::fabs(cf[i]) >= 1e-3f) {
      ++significant;
      if (distance == 0) ++exact;
    }
    if (distance > 1 && !(std::fabs(gf[i] - cf[i]) <= atol) && ++failures <= 5) {
      examples += "\n  [" + std::to_string(i) + "] cpu " + std::to_string(cf[i]) + ", gpu " +
                  std::to_string(gf[i]);
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << n
                         << " more than one unit in the last place apart and beyond atol " << atol
                         << examples;
  EXPECT_GE(static_cast<double>(exact), 0.99 * static_cast<double>(significant))
      << what << ": only " << exact << " of " << significant << " results ≥ 1e-3 bit-identical";
}

// Shapes for the binary ops: b equal to a, and b a trailing part of a (broadcast). The last one
// is larger than one pass of the grid-stride loop on an H100/H200 (132 SMs · 16 blocks · 256).
struct BinaryCase {
  Shape a, b;
};
const std::vector<BinaryCase> kBinaryCases = {
    {{3, 37, 129}, {3, 37, 129}},
    {{3, 37, 129}, {129}},
    {{3, 37, 129}, {37, 129}},
    {{1200, 1000}, {1000}},
};

TEST(CudaElementwise, AddAndMulMatchCpuExactly) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  uint32_t seed = 1;
  for (DType dtype : kFloatDtypes) {
    for (const BinaryCase& c : kBinaryCases) {
      const Tensor a = random_tensor(c.a, dtype, -4.0f, 4.0f, seed++);
      const Tensor b = random_tensor(c.b, dtype, -4.0f, 4.0f, seed++);
      const Tensor a_gpu = on_gpu(a), b_gpu = on_gpu(b);
      for (const bool is_add : {true, false}) {
        Tensor out_cpu = Tensor::empty(c.a, dtype);
        Tensor out_gpu = Tensor::empty(c.a, dtype, Device::cuda(0));
        if (is_add) {
          ops::add(cpu, a, b, out_cpu);
          ops::add(gpu, a_gpu, b_gpu, out_gpu);
        } else {
          ops::mul(cpu, a, b, out_cpu);
          ops::mul(gpu, a_gpu, b_gpu, out_gpu);
        }
        gpu.synchronize();
        expect_identical(out_cpu, out_gpu, label(is_add ? "add" : "mul", dtype, c.a, c.b));
      }
    }
  }
}

TEST(CudaElementwise, AddIntoItsFirstOperandMatchesCpu) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (DType dtype : kFloatDtypes) {
    const Tensor a = random_tensor({64, 320}, dtype, -2.0f, 2.0f, 11);
    const Tensor b = random_tensor({320}, dtype, -2.0f, 2.0f, 12);
    Tensor expected = Tensor::empty(a.shape(), dtype);
    ops::add(cpu, a, b, expected);
    Tensor residual = on_gpu(a);  // out aliases a: the residual-stream update
    ops::add(gpu, residual, on_gpu(b), residual);
    gpu.synchronize();
    expect_identical(expected, residual, label("add in place", dtype, a.shape(), b.shape()));
  }
}

TEST(CudaElementwise, MixedDtypesMatchCpuExactly) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  struct Mix {
    DType a, b, out;
  };
  for (const Mix& m :
       {Mix{DType::BF16, DType::F32, DType::F32}, Mix{DType::F32, DType::BF16, DType::BF16},
        Mix{DType::F16, DType::BF16, DType::F32}}) {
    const Tensor a = random_tensor({5, 77, 96}, m.a, -3.0f, 3.0f, 21);
    const Tensor b = random_tensor({96}, m.b, -3.0f, 3.0f, 22);
    Tensor out_cpu = Tensor::empty(a.shape(), m.out);
    Tensor out_gpu = Tensor::empty(a.shape(), m.out, Device::cuda(0));
    ops::mul(cpu, a, b, out_cpu);
    ops::mul(gpu, on_gpu(a), on_gpu(b), out_gpu);
    gpu.synchronize();
    expect_identical(out_cpu, out_gpu,
                     "mul " + std::string(dtype_name(m.a)) + " × " + std::string(dtype_name(m.b)) +
                         " → " + std::string(dtype_name(m.out)));
  }
  const Tensor x = random_tensor({3001}, DType::F32, -100.0f, 100.0f, 23);
  Tensor scaled_cpu = Tensor::empty(x.shape(), DType::BF16);
  Tensor scaled_gpu = Tensor::empty(x.shape(), DType::BF16, Device::cuda(0));
  ops::scale(cpu, x, 0.3f, scaled_cpu);
  ops::scale(gpu, on_gpu(x), 0.3f, scaled_gpu);
  gpu.synchronize();
  expect_identical(scaled_cpu, scaled_gpu, "scale f32 → bf16");
}

TEST(CudaElementwise, ScaleMatchesCpuExactly) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (DType dtype : kFloatDtypes) {
    const Tensor x = random_tensor({517, 2053}, dtype, -50.0f, 50.0f, 31);
    const Tensor x_gpu = on_gpu(x);
    for (float factor : {0.37f, -3.5f, 1e-3f, 1.0f / 3.0f}) {
      Tensor out_cpu = Tensor::empty(x.shape(), dtype);
      Tensor out_gpu = Tensor::empty(x.shape(), dtype, Device::cuda(0));
      ops::scale(cpu, x, factor, out_cpu);
      ops::scale(gpu, x_gpu, factor, out_gpu);
      gpu.synchronize();
      expect_identical(out_cpu, out_gpu,
                       label("scale by " + std::to_string(factor), dtype, x.shape()));
    }
  }
}

// The activations: the CPU computes in double and rounds once; the GPU computes in fp32 with
// expf (≤ 2 ulp) and a few roundings. Where |result| > 0.1 the argument of exp is small (< 4),
// so the GPU is within ~1e-6 relative: rtol 1e-5 leaves a margin of 10. In the far negative
// tails exp's argument reaches ~50 and its rounding costs up to ~1e-5 relative, but those results
// are below 1e-3 in magnitude (gelu(-8) ≈ -4e-21), far inside atol 1e-6.
constexpr float kActivationAtol = 1e-6f;
constexpr float kActivationRtol = 1e-5f;

TEST(CudaElementwise, GeluTanhMatchesCpuWithinTolerance) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (DType dtype : kFloatDtypes) {
    const Tensor x = random_tensor({517, 2053}, dtype, -8.0f, 8.0f, 41);
    Tensor out_cpu = Tensor::empty(x.shape(), dtype);
    Tensor out_gpu = Tensor::empty(x.shape(), dtype, Device::cuda(0));
    ops::gelu_tanh(cpu, x, out_cpu);
    ops::gelu_tanh(gpu, on_gpu(x), out_gpu);
    gpu.synchronize();
    expect_close(out_cpu, out_gpu, kActivationAtol, kActivationRtol,
                 label("gelu_tanh", dtype, x.shape()));
  }
}

TEST(CudaElementwise, SiluMatchesCpuWithinTolerance) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (DType dtype : kFloatDtypes) {
    const Tensor x = random_tensor({517, 2053}, dtype, -12.0f, 12.0f, 51);
    Tensor out_cpu = Tensor::empty(x.shape(), dtype);
    Tensor out_gpu = Tensor::empty(x.shape(), dtype, Device::cuda(0));
    ops::silu(cpu, x, out_cpu);
    ops::silu(gpu, on_gpu(x), out_gpu);
    gpu.synchronize();
    expect_close(out_cpu, out_gpu, kActivationAtol, kActivationRtol,
                 label("silu", dtype, x.shape()));
  }
  // A mixed pair: bf16 in, f32 out (the fp32 result is compared before any rounding).
  const Tensor x = random_tensor({4099}, DType::BF16, -12.0f, 12.0f, 52);
  Tensor out_cpu = Tensor::empty(x.shape(), DType::F32);
  Tensor out_gpu = Tensor::empty(x.shape(), DType::F32, Device::cuda(0));
  ops::silu(cpu, x, out_cpu);
  ops::silu(gpu, on_gpu(x), out_gpu);
  gpu.synchronize();
  expect_close(out_cpu, out_gpu, kActivationAtol, kActivationRtol, "silu bf16 → f32");
}

TEST(CudaElementwise, FillMatchesCpuExactlyForEveryDtype) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::I32, DType::I64}) {
    for (float value : {0.1f, -3.7f, 1e6f, 500.0f, -0.0f, 1e-6f}) {
      Tensor out_cpu = Tensor::empty({1001, 3}, dtype);
      Tensor out_gpu = Tensor::empty({1001, 3}, dtype, Device::cuda(0));
      ops::fill(cpu, out_cpu, value);
      ops::fill(gpu, out_gpu, value);
      gpu.synchronize();
      expect_identical(out_cpu, out_gpu, label("fill " + std::to_string(value), dtype, {1001, 3}));
    }
  }
}

TEST(CudaElementwise, CastMatchesCpuExactly) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (DType from : kFloatDtypes) {
    const Tensor x = random_tensor({33, 1025}, from, -600.0f, 600.0f, 61);
    const Tensor x_gpu = on_gpu(x);
    for (DType to : {DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::I32, DType::I64}) {
      Tensor out_cpu = Tensor::empty(x.shape(), to);
      Tensor out_gpu = Tensor::empty(x.shape(), to, Device::cuda(0));
      ops::cast(cpu, x, out_cpu);
      ops::cast(gpu, x_gpu, out_gpu);
      gpu.synchronize();
      expect_identical(
          out_cpu, out_gpu,
          "cast " + std::string(dtype_name(from)) + " → " + std::string(dtype_name(to)));
    }
  }
}

// Ops queued back to back on the context's stream, with no synchronization in between, must see
// each other's results: fill → cast → add → mul → scale → silu, compared at the end only.
TEST(CudaElementwise, ChainedOpsOnOneStreamMatchCpu) {
  if (wanbatch::core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  const Shape shape = {257, 1031};
  const Tensor x = random_tensor(shape, DType::F32, -3.0f, 3.0f, 71);
  const Tensor row = random_tensor({1031}, DType::BF16, -1.0f, 1.0f, 72);

  auto run = [&](const Context& ctx, Device device) {
    Tensor filled = Tensor::empty(shape, DType::BF16, device);
    Tensor cast = Tensor::empty(shape, DType::BF16, device);
    Tensor sum = Tensor::empty(shape, DType::BF16, device);
    Tensor out = Tensor::empty(shape, DType::BF16, device);
    const Tensor x_here = x.to(device), row_here = row.to(device);
    ops::fill(ctx, filled, 0.75f);
    ops::cast(ctx, x_here, cast);
    ops::add(ctx, cast, filled, sum);
    ops::mul(ctx, sum, row_here, sum);
    ops::scale(ctx, sum, -1.5f, sum);
    ops::silu(ctx, sum, out);
    ctx.synchronize();
    return std::pair<Tensor, Tensor>(sum, out);
  };
  const auto [sum_cpu, out_cpu] = run(cpu, Device::cpu());
  const auto [sum_gpu, out_gpu] = run(gpu, Device::cuda(0));
  expect_identical(sum_cpu, sum_gpu, "fill, cast, add, mul, scale (bf16)");
  expect_close(out_cpu, out_gpu, kActivationAtol, kActivationRtol, "then silu (bf16)");
}

}  // namespace
}  // namespace wanbatch::core
