// The cuBLASLt GEMM ops (core/cuda/gemm.cpp: linear, linear_gelu_tanh, matmul) against their CPU
// twins, both called through core::ops on fresh random inputs, with GPU outputs poisoned with NaN
// before every run. The CPU reference is fp32 on the very values the GPU sees (bf16/f16 inputs are
// rounded first, then widened exactly), so the only differences are the order of the fp32
// accumulation, the final rounding to the output dtype and, for the fused op, cuBLASLt's GELU.
// Every test skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/cuda/ops.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "cuda_test_support.h"

namespace wanbatch::core {
namespace {

// Accumulation error bound, relative to Σ|a_i·b_i| (the dot product's magnitude, not its possibly
// cancelled value). Products of bf16/f16 values are exact in fp32, so both sides differ only in how
// they sum K fp32 terms: each addition rounds by at most 2^-24 of a partial sum bounded by
// Σ|terms|, and with random signs the errors grow like √K·2^-24 ≈ 2.4e-6 for K = 1536 (the largest
// K here), on either side. 1e-5 leaves 4× margin for f32 (cuBLASLt's CUDA-core FFMA kernels round
// correctly) while still catching TF32 (its 2^-11 input rounding gives ~1e-4 at K = 40);
// tensor cores (bf16/f16) are documented to truncate rather than round inside their fp32
// adders, which biases the error, hence 2e-5 for them.
constexpr double kAccumF32 = 1e-5;
constexpr double kAccumReduced = 2e-5;
// cuBLASLt's GELU epilogue (tanh approximation) may use the hardware tanh approximation, whose
// relative error is about 2^-11: 0.5·x·(1 + tanh u) then errs by up to ~2.5e-4·|x|. 1e-3·|x| of
// the pre-activation x leaves 4× margin; a wrong formula (exact-erf GELU differs by up to ~5e-3·|x|
// near |x| = 2, a missing bias or GELU by O(1)) still fails. GELU's slope is at most 1.13, so the
// GEMM's own error passes through scaled by at most that (1.2 below).
constexpr double kGeluApprox = 1e-3;

double accumulation_bound(DType input) { return input == DType::F32 ? kAccumF32 : kAccumReduced; }

// Rounding the fp32 result to the output dtype moves it by at most half a unit in the last place:
// 2^-p·|v| with p significant bits (bf16 8, f16 11); where cuBLASLt cannot fuse the epilogue, the
// GEMM computes in fp32 and rounds once too. The small absolute term covers f16's subnormal
// range, where the spacing stops shrinking (2^-24 there).
double rounding_bound(DType out) {
  switch (out) {
    case DType::BF16:
      return std::ldexp(1.0, -8);
    case DType::F16:
      return std::ldexp(1.0, -11);
    default:
      return 0.0;
  }
}
double absolute_bound(DType out) { return out == DType::F16 ? 1e-7 : 1e-30; }

const Device kGpu = Device::cuda(0);

using cuda_test::expect_within;
using cuda_test::on_gpu;
using cuda_test::poisoned;
using cuda_test::random_tensor;

// Weights scaled so a dot product over K has variance ~1/3, like a trained layer's activations:
// the GELU sees the interesting range [-3, 3] instead of its linear tails.
Tensor random_weight(const Shape& shape, int64_t k, DType dtype, uint32_t seed) {
  const float a = std::sqrt(3.0f / static_cast<float>(std::max<int64_t>(k, 1)));
  return random_tensor(shape, dtype, -a, a, seed);
}

Tensor widened(const Tensor& t) { return t.defined() ? t.to(DType::F32) : Tensor(); }

Tensor abs_of(const Tensor& t) {
  if (!t.defined()) return Tensor();
  std::vector<float> v = t.to_floats();
  for (float& f : v) f = std::fabs(f);
  return Tensor::from_vector(v, t.shape());
}

// The bound for a plain GEMM result: accumulation (relative to the magnitude `mag` = the same GEMM
// on absolute values) plus the output rounding.
std::vector<double> gemm_bound(const Tensor& ref, const Tensor& mag, DType input, DType out) {
  const std::vector<float> r = ref.to_floats(), m = mag.to_floats();
  std::vector<double> bound(r.size());
  for (size_t i = 0; i < r.size(); ++i) {
    bound[i] = accumulation_bound(input) * m[i] + rounding_bound(out) * std::fabs(r[i]) +
               absolute_bound(out);
  }
  return bound;
}

std::string name(DType d) { return std::string(dtype_name(d)); }

struct LinearShape {
  Shape lead;  // x is lead + [in]
  int64_t in, out;
};
// m = 1, odd m, leading dims [2, 5], odd K and N (leading dimensions not a multiple of 8), a
// mid-size one, and a Wan-shaped projection (1.3B: dim 1536).
const std::vector<LinearShape> kLinearShapes = {
    {{1}, 40, 24},  {{37}, 40, 24},  {{2, 5}, 40, 24},
    {{37}, 33, 17}, {{64}, 256, 96}, {{1024}, 1536, 1536},
};

struct Combo {
  DType in, out, bias;
  bool with_bias;
};
// Every supported combination: inputs f32, bf16 or f16; output f32 or the input dtype; bias none,
// the input dtype, or f32 with an f32 output.
std::vector<Combo> supported_combos() {
  std::vector<Combo> combos;
  for (DType in : {DType::F32, DType::BF16, DType::F16}) {
    std::vector<DType> outs = {in};
    if (in != DType::F32) outs.push_back(DType::F32);
    for (DType out : outs) {
      combos.push_back({in, out, in, false});
      if (out == DType::F32) combos.push_back({in, out, DType::F32, true});
      if (in != DType::F32) combos.push_back({in, out, in, true});
    }
  }
  return combos;
}

TEST(CudaGemm, LinearMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  uint32_t seed = 100;
  for (const LinearShape& s : kLinearShapes) {
    Shape x_shape = s.lead, out_shape = s.lead;
    x_shape.push_back(s.in);
    out_shape.push_back(s.out);
    for (const Combo& c : supported_combos()) {
      const std::string what = "linear " + shape_str(x_shape) + " → " + shape_str(out_shape) +
                               ", " + name(c.in) + " in, " + name(c.out) + " out, " +
                               (c.with_bias ? name(c.bias) + " bias" : "no bias");
      SCOPED_TRACE(what);
      const Tensor x = random_tensor(x_shape, c.in, -1.0f, 1.0f, seed++);
      const Tensor w = random_weight({s.out, s.in}, s.in, c.in, seed++);
      const Tensor b = c.with_bias ? random_tensor({s.out}, c.bias, -1.0f, 1.0f, seed++) : Tensor();
      Tensor ref = Tensor::empty(out_shape, DType::F32);
      Tensor mag = Tensor::empty(out_shape, DType::F32);
      ops::linear(cpu, widened(x), widened(w), widened(b), ref);
      ops::linear(cpu, abs_of(x), abs_of(w), abs_of(b), mag);
      Tensor out = poisoned(gpu, out_shape, c.out);
      ops::linear(gpu, on_gpu(x), on_gpu(w), on_gpu(b), out);
      expect_within(ref, out, gemm_bound(ref, mag, c.in, c.out), what);
    }
  }
}

// Steady state: the plan (descriptors, algorithm) is cached per problem, and the bias pointer is
// written into the cached descriptor at each call. New inputs and a new bias each time must give
// each call's own result.
TEST(CudaGemm, RepeatedLinearUsesEachCallsBias) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (uint32_t call = 0; call < 3; ++call) {
    SCOPED_TRACE("call " + std::to_string(call));
    const Tensor x = random_tensor({96, 128}, DType::BF16, -1.0f, 1.0f, 300 + call);
    const Tensor w = random_weight({64, 128}, 128, DType::BF16, 310 + call);
    const Tensor b = random_tensor({64}, DType::BF16, -1.0f, 1.0f, 320 + call);
    Tensor ref = Tensor::empty({96, 64}, DType::F32), mag = Tensor::empty({96, 64}, DType::F32);
    ops::linear(cpu, widened(x), widened(w), widened(b), ref);
    ops::linear(cpu, abs_of(x), abs_of(w), abs_of(b), mag);
    Tensor out = poisoned(gpu, {96, 64}, DType::BF16);
    ops::linear(gpu, on_gpu(x), on_gpu(w), on_gpu(b), out);
    expect_within(ref, out, gemm_bound(ref, mag, DType::BF16, DType::BF16), "repeated linear");
  }
}

// A row slice of a larger tensor starts 80 bytes into its storage (16-byte, not 256-byte,
// aligned): the plan must be chosen for that alignment, not cuBLASLt's default assumption.
TEST(CudaGemm, LinearOnRowSliceWithSmallerAlignment) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  const Tensor full = random_tensor({38, 40}, DType::BF16, -1.0f, 1.0f, 400);
  const Tensor x = full.slice(1, 38);  // [37, 40]
  const Tensor w = random_weight({24, 40}, 40, DType::BF16, 401);
  const Tensor b = random_tensor({24}, DType::BF16, -1.0f, 1.0f, 402);
  Tensor ref = Tensor::empty({37, 24}, DType::F32), mag = Tensor::empty({37, 24}, DType::F32);
  ops::linear(cpu, widened(x), widened(w), widened(b), ref);
  ops::linear(cpu, abs_of(x), abs_of(w), abs_of(widened(b)), mag);
  const Tensor x_gpu = on_gpu(full).slice(1, 38);
  for (DType out_dtype : {DType::BF16, DType::F32}) {
    Tensor out = poisoned(gpu, {37, 24}, out_dtype);
    ops::linear(gpu, x_gpu, on_gpu(w), on_gpu(b), out);
    expect_within(ref, out, gemm_bound(ref, mag, DType::BF16, out_dtype),
                  "linear on a row slice, " + name(out_dtype) + " out");
  }
}

TEST(CudaGemm, LinearGeluTanhMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  const std::vector<LinearShape> shapes = {{{37}, 40, 24}, {{2, 5}, 64, 96}, {{1024}, 1536, 1536}};
  const std::vector<Combo> combos = {
      {DType::F32, DType::F32, DType::F32, true},    {DType::F32, DType::F32, DType::F32, false},
      {DType::BF16, DType::BF16, DType::BF16, true}, {DType::BF16, DType::F32, DType::BF16, true},
      {DType::BF16, DType::F32, DType::F32, true},   {DType::BF16, DType::BF16, DType::BF16, false},
      {DType::F16, DType::F16, DType::F16, true},
  };
  uint32_t seed = 500;
  for (const LinearShape& s : shapes) {
    Shape x_shape = s.lead, out_shape = s.lead;
    x_shape.push_back(s.in);
    out_shape.push_back(s.out);
    for (const Combo& c : combos) {
      const std::string what = "linear_gelu_tanh " + shape_str(x_shape) + " → " +
                               shape_str(out_shape) + ", " + name(c.in) + " in, " + name(c.out) +
                               " out, " + (c.with_bias ? name(c.bias) + " bias" : "no bias");
      SCOPED_TRACE(what);
      const Tensor x = random_tensor(x_shape, c.in, -1.0f, 1.0f, seed++);
      const Tensor w = random_weight({s.out, s.in}, s.in, c.in, seed++);
      const Tensor b = c.with_bias ? random_tensor({s.out}, c.bias, -1.0f, 1.0f, seed++) : Tensor();
      Tensor pre = Tensor::empty(out_shape, DType::F32);
      Tensor ref = Tensor::empty(out_shape, DType::F32);
      Tensor mag = Tensor::empty(out_shape, DType::F32);
      ops::linear(cpu, widened(x), widened(w), widened(b), pre);
      ops::linear_gelu_tanh(cpu, widened(x), widened(w), widened(b), ref);
      ops::linear(cpu, abs_of(x), abs_of(w), abs_of(b), mag);
      const std::vector<float> p = pre.to_floats(), r = ref.to_floats(), m = mag.to_floats();
      std::vector<double> bound(r.size());
      for (size_t i = 0; i < r.size(); ++i) {
        bound[i] = 1.2 * accumulation_bound(c.in) * m[i] + kGeluApprox * std::fabs(p[i]) +
                   rounding_bound(c.out) * std::fabs(r[i]) + absolute_bound(c.out);
      }
      Tensor out = poisoned(gpu, out_shape, c.out);
      ops::linear_gelu_tanh(gpu, on_gpu(x), on_gpu(w), on_gpu(b), out);
      expect_within(ref, out, bound, what);
    }
  }
}

struct MatmulCase {
  Shape a, b;
  bool transpose_b;
};
// 2-D; batched; b shared by the batch (2-D b with 3-D a); each with b transposed or not; and one
// larger batched case.
const std::vector<MatmulCase> kMatmulCases = {
    {{37, 40}, {40, 24}, false},         {{37, 40}, {24, 40}, true},
    {{3, 37, 40}, {3, 40, 24}, false},   {{3, 37, 40}, {3, 24, 40}, true},
    {{3, 37, 40}, {40, 24}, false},      {{3, 37, 40}, {24, 40}, true},
    {{1, 16, 33}, {1, 33, 17}, false},   {{4, 128, 256}, {4, 96, 256}, true},
    {{2, 64, 128}, {2, 128, 96}, false},
};

TEST(CudaGemm, MatmulMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  const std::vector<std::pair<DType, DType>> dtypes = {{DType::F32, DType::F32},
                                                       {DType::BF16, DType::BF16},
                                                       {DType::BF16, DType::F32},
                                                       {DType::F16, DType::F16}};
  uint32_t seed = 700;
  for (const MatmulCase& mc : kMatmulCases) {
    const int64_t k = mc.a.back();
    const int64_t n = mc.transpose_b ? mc.b[mc.b.size() - 2] : mc.b.back();
    Shape out_shape = mc.a;
    out_shape.back() = n;
    for (const auto& [in, out_dtype] : dtypes) {
      const std::string what = "matmul " + shape_str(mc.a) + " · " + shape_str(mc.b) +
                               (mc.transpose_b ? "ᵀ" : "") + ", " + name(in) + " in, " +
                               name(out_dtype) + " out";
      SCOPED_TRACE(what);
      const Tensor a = random_tensor(mc.a, in, -1.0f, 1.0f, seed++);
      const Tensor b = random_weight(mc.b, k, in, seed++);
      Tensor ref = Tensor::empty(out_shape, DType::F32);
      Tensor mag = Tensor::empty(out_shape, DType::F32);
      ops::matmul(cpu, widened(a), widened(b), ref, mc.transpose_b);
      ops::matmul(cpu, abs_of(a), abs_of(b), mag, mc.transpose_b);
      Tensor out = poisoned(gpu, out_shape, out_dtype);
      ops::matmul(gpu, on_gpu(a), on_gpu(b), out, mc.transpose_b);
      expect_within(ref, out, gemm_bound(ref, mag, in, out_dtype), what);
    }
  }
}

TEST(CudaGemm, RejectsUnsupportedDtypeCombinations) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const Tensor x16 = Tensor::zeros({4, 8}, DType::BF16, kGpu);
  const Tensor x32 = Tensor::zeros({4, 8}, DType::F32, kGpu);
  const Tensor w16 = Tensor::zeros({6, 8}, DType::BF16, kGpu);
  const Tensor w32 = Tensor::zeros({6, 8}, DType::F32, kGpu);
  const Tensor b_f16 = Tensor::zeros({6}, DType::F16, kGpu);
  Tensor out16 = Tensor::empty({4, 6}, DType::BF16, kGpu);
  Tensor out32 = Tensor::empty({4, 6}, DType::F32, kGpu);
  EXPECT_THROW(ops::linear(gpu, x16, w32, Tensor(), out32), Error);  // mixed operands
  EXPECT_THROW(ops::linear(gpu, x32, w32, Tensor(), out16), Error);  // f32 in, bf16 out
  EXPECT_THROW(ops::linear(gpu, x16, w16, b_f16, out16), Error);     // f16 bias, bf16 x
  const Tensor b_f32 = Tensor::zeros({6}, DType::F32, kGpu);
  EXPECT_THROW(ops::linear(gpu, x16, w16, b_f32, out16), Error);  // f32 bias, bf16 out
  EXPECT_THROW(ops::linear_gelu_tanh(gpu, x16, w32, Tensor(), out16), Error);
  const Tensor b16 = Tensor::zeros({8, 6}, DType::BF16, kGpu);
  EXPECT_THROW(ops::matmul(gpu, x32, b16, out32), Error);
}

// The benchmark helper runs and gives a plausible figure (the ceiling itself is measured by
// `wanbatch bench`); printed for the record.
TEST(CudaGemm, BenchmarkReportsThroughput) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const double tflops = cuda::benchmark_gemm_tflops(gpu, 4096, 4096, 4096, 10);
  std::cout << "bf16 GEMM 4096×4096×4096: " << tflops << " TFLOP/s\n";
  EXPECT_TRUE(std::isfinite(tflops));
  EXPECT_GT(tflops, 1.0);
}

}  // namespace
}  // namespace wanbatch::core
