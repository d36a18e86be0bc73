// The CUDA VAE ops (core/cuda/conv3d.cpp through cuDNN, core/cuda/vae_ops.cu) against their CPU
// twins, both called through core::ops on fresh random inputs, with every GPU output filled with
// NaN (or a sentinel for integers) before the op runs so that an element it forgets to write
// fails. Data movement (repeat_interleave, upsample_nearest_2x) and channel_affine must be
// bit-identical; the reductions and conv3d have stated tolerances. Every test skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "cuda_test_support.h"

namespace wanbatch::core {
namespace {

using cuda_test::expect_identical;
using cuda_test::label;
using cuda_test::on_gpu;
using cuda_test::poisoned;
using cuda_test::random_tensor;
using cuda_test::ulp_position;

// The shared bound check; here the reference also has the output's dtype.
void expect_within(const Tensor& cpu, const Tensor& gpu, const std::vector<float>& bound,
                   const std::string& what) {
  ASSERT_EQ(cpu.dtype(), gpu.dtype()) << what;
  cuda_test::expect_within(cpu, gpu, bound, what);
}

// atol + rtol·|cpu| per element.
std::vector<float> relative_bound(const Tensor& cpu, float atol, float rtol) {
  std::vector<float> bound = cpu.to_floats();
  for (float& b : bound) b = atol + rtol * std::fabs(b);
  return bound;
}

// 16-bit results at most `ulps` units in the last place apart.
void expect_ulps(const Tensor& cpu, const Tensor& gpu, int32_t ulps, const std::string& what) {
  const Tensor host = gpu.to(Device::cpu());
  ASSERT_EQ(cpu.dtype(), host.dtype()) << what;
  ASSERT_EQ(cpu.shape(), host.shape()) << what;
  ASSERT_EQ(dtype_size(cpu.dtype()), 2u) << what;
  const uint16_t* c = cpu.data<uint16_t>();
  const uint16_t* g = host.data<uint16_t>();
  const std::vector<float> cf = cpu.to_floats(), gf = host.to_floats();
  int64_t failures = 0;
  std::string examples;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const bool nan = std::isnan(gf[i]) != std::isnan(cf[i]);
    if ((nan || std::abs(ulp_position(c[i]) - ulp_position(g[i])) > ulps) && ++failures <= 5) {
      examples += "\n  [" + std::to_string(i) + "] cpu " + std::to_string(cf[i]) + ", gpu " +
                  std::to_string(gf[i]);
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << cpu.numel() << " more than "
                         << ulps << " units in the last place apart" << examples;
}

// ---------------------------------------------------------------------------------- conv3d

struct ConvCase {
  std::string name;
  Shape x;       // [(N,) C, T, H, W]
  Shape weight;  // [O, C, kt, kh, kw]
  ops::Conv3dParams params;
  bool bias = true;
};

ops::Conv3dParams conv_params(std::array<int64_t, 3> stride, std::array<int64_t, 6> padding) {
  ops::Conv3dParams p;
  p.stride = stride;
  p.padding = padding;
  return p;
}

// Stride 1 with the padding of the VAE's causal 3×3×3 (two past frames, one pixel on each side),
// of a per-frame 3×3 (one pixel on each side, none in time), and none.
const ops::Conv3dParams kCausal = conv_params({1, 1, 1}, {2, 0, 1, 1, 1, 1});
const ops::Conv3dParams kSpatialPadding = conv_params({1, 1, 1}, {0, 0, 1, 1, 1, 1});
const ops::Conv3dParams kUnpadded = conv_params({1, 1, 1}, {});

// The VAE's convolutions and the geometry around them: causal 3×3×3 (time padding on the past
// side only, cuDNN cannot express it: the explicit-padding path), 1×1×1 shortcuts, the per-frame
// 3×3 of Resample (symmetric padding: cuDNN's own), ZeroPad2d((0, 1, 0, 1)) with spatial stride 2,
// the stride-2 time conv, a batch of 2 and an all-asymmetric case; channels 3, 12 and 96, odd
// sizes.
std::vector<ConvCase> conv_cases() {
  return {
      {"causal 3x3x3, C 3 → 12", {3, 5, 9, 11}, {12, 3, 3, 3, 3}, kCausal},
      {"causal 3x3x3, C 96 → 12", {96, 4, 12, 14}, {12, 96, 3, 3, 3}, kCausal},
      {"causal 3x3x3, C 96 → 96, larger frame", {96, 3, 32, 46}, {96, 96, 3, 3, 3}, kCausal},
      {"3x3x3 on frames with history, no padding in time",
       {12, 5, 7, 9},
       {96, 12, 3, 3, 3},
       kSpatialPadding},
      {"1x1x1 shortcut, C 12 → 96", {12, 3, 7, 9}, {96, 12, 1, 1, 1}, kUnpadded},
      {"1x1x1, C 96 → 3, no bias", {96, 2, 5, 13}, {3, 96, 1, 1, 1}, kUnpadded, false},
      {"per-frame 3x3 (Resample up)", {12, 2, 10, 14}, {12, 12, 1, 3, 3}, kSpatialPadding},
      {"ZeroPad2d(0,1,0,1) then spatial stride 2",
       {12, 3, 10, 13},
       {12, 12, 1, 3, 3},
       conv_params({1, 2, 2}, {0, 0, 0, 1, 0, 1})},
      {"time stride 2, kernel 3x1x1", {12, 5, 6, 7}, {12, 12, 3, 1, 1}, conv_params({2, 1, 1}, {})},
      {"batched causal", {2, 3, 5, 6, 7}, {12, 3, 3, 3, 3}, kCausal},
      {"asymmetric everywhere, strides (2,2,1), no bias",
       {3, 7, 9, 8},
       {12, 3, 3, 3, 2},
       conv_params({2, 2, 1}, {2, 0, 0, 1, 1, 0}),
       false},
  };
}

// Σ |x|·|w| (+ |bias|) for every output: the scale of the rounding errors of any summation order.
std::vector<float> magnitude_sums(const Tensor& x, const Tensor& w, const Tensor& bias,
                                  const ops::Conv3dParams& params, const Shape& out_shape) {
  auto absolute = [](const Tensor& t) {
    std::vector<float> v = t.to_floats();
    for (float& e : v) e = std::fabs(e);
    return Tensor::from_vector(v, t.shape());
  };
  Tensor sums = Tensor::empty(out_shape, DType::F32);
  ops::conv3d(Context::cpu(), absolute(x), absolute(w), bias.defined() ? absolute(bias) : Tensor(),
              params, sums);
  return sums.to_floats();
}

// Weights scaled like a trained layer's (uniform ±1/sqrt(fan_in)), so outputs stay O(1).
Tensor conv_weight(const Shape& shape, DType dtype, uint32_t seed) {
  const float fan_in = static_cast<float>(shape[1] * shape[2] * shape[3] * shape[4]);
  const float limit = 1.0f / std::sqrt(fan_in);
  return random_tensor(shape, dtype, -limit, limit, seed);
}

// conv3d on the GPU against the CPU for every conv case, inputs and output in `dtype`, each element
// within tolerance·(Σ|x·w| + |b|) + floor.
void expect_conv3d_matches_cpu(DType dtype, float tolerance, float floor, uint32_t seed) {
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  for (const ConvCase& c : conv_cases()) {
    const Tensor x = random_tensor(c.x, dtype, -1.0f, 1.0f, seed++);
    const Tensor w = conv_weight(c.weight, dtype, seed++);
    const Tensor b = c.bias ? random_tensor({c.weight[0]}, dtype, -0.5f, 0.5f, seed++) : Tensor();
    const Shape out_shape = ops::conv3d_output_shape(c.x, c.weight, c.params);
    Tensor expected = Tensor::empty(out_shape, dtype);
    ops::conv3d(cpu, x, w, b, c.params, expected);
    Tensor out = poisoned(gpu, out_shape, dtype);
    ops::conv3d(gpu, on_gpu(x), on_gpu(w), c.bias ? on_gpu(b) : Tensor(), c.params, out);
    gpu.synchronize();
    std::vector<float> bound = magnitude_sums(x, w, b, c.params, out_shape);
    for (float& e : bound) e = tolerance * e + floor;
    expect_within(expected, out, bound,
                  "conv3d " + std::string(dtype_name(dtype)) + " " + c.name + " " + shape_str(c.x));
  }
}

// f32: no TF32 (CUDNN_FMA_MATH), so CPU and GPU differ only by summation order, which with
// K = C·kt·kh·kw ≤ 2592 terms moves a result by a few·sqrt(K)·2⁻²⁴ ≈ 1e-6 of Σ|x·w|, typically;
// 1e-5 of Σ|x·w| + |b| leaves a margin, while TF32 (10-bit mantissa, ~1e-3) would fail at once.
constexpr float kConvF32Tolerance = 1e-5f;

TEST(CudaVaeOps, Conv3dF32MatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  expect_conv3d_matches_cpu(DType::F32, kConvF32Tolerance, 1e-7f, 100);
}

// bf16 in and out, fp32 accumulation on both sides (the CPU converts the same bf16 inputs to
// fp32). Each side rounds its result to bf16 (2⁻⁹ relative at most), the GPU rounds once more
// before adding the bias, and tensor-core algorithms may round split partial sums: four
// half-units of bf16 relative to Σ|x·w| + |b|, 4·2⁻⁹ ≈ 7.8e-3, bound all of that (measured on an
// H200: 1.25 × three half-units in a 1×1×1 shortcut, where the sum is one large product).
constexpr float kConvBf16Tolerance = 8e-3f;

TEST(CudaVaeOps, Conv3dBf16MatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  expect_conv3d_matches_cpu(DType::BF16, kConvBf16Tolerance, 1e-6f, 200);
}

// The same shape twice (the cached plan) and a different one in between give the same results.
TEST(CudaVaeOps, Conv3dCachedPlanIsReusedCorrectly) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const Tensor x = on_gpu(random_tensor({12, 3, 8, 10}, DType::F32, -1.0f, 1.0f, 301));
  const Tensor w = on_gpu(conv_weight({12, 12, 3, 3, 3}, DType::F32, 302));
  const Tensor b = on_gpu(random_tensor({12}, DType::F32, -0.5f, 0.5f, 303));
  const Shape out_shape = ops::conv3d_output_shape(x.shape(), w.shape(), kCausal);
  Tensor first = poisoned(gpu, out_shape, DType::F32);
  ops::conv3d(gpu, x, w, b, kCausal, first);
  const Tensor other_x = on_gpu(random_tensor({12, 2, 6, 6}, DType::F32, -1.0f, 1.0f, 304));
  Tensor other =
      poisoned(gpu, ops::conv3d_output_shape(other_x.shape(), w.shape(), kCausal), DType::F32);
  ops::conv3d(gpu, other_x, w, b, kCausal, other);
  Tensor second = poisoned(gpu, out_shape, DType::F32);
  ops::conv3d(gpu, x, w, b, kCausal, second);
  gpu.synchronize();
  expect_identical(first.to(Device::cpu()), second, "conv3d f32 run twice on one shape");
}

// ---------------------------------------------------------------------- rms_norm_channels

// Both sides sum the squares in double and form x·factor·gamma in double before rounding to
// float and adding the bias in float: only the summation order differs, so f32 results agree to
// an ulp or two (rtol 1e-6 ≈ 8 ulp). 16-bit outputs: at most one unit in the last place (a
// rounding boundary straddled by those ulps).
TEST(CudaVaeOps, RmsNormChannelsMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  uint32_t seed = 400;
  for (const Shape& shape :
       {Shape{3, 5, 9, 11}, Shape{12, 4, 7, 13}, Shape{96, 3, 17, 19}, Shape{96, 33}, Shape{12}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      for (bool with_bias : {true, false}) {
        std::vector<float> values =
            random_tensor(shape, DType::F32, -3.0f, 3.0f, seed++).to_floats();
        // Position 0 all zeros: F.normalize's eps keeps it 0 (no NaN from 0/0).
        const int64_t positions = shape_numel(shape) / shape[0];
        for (int64_t c = 0; c < shape[0]; ++c) values[static_cast<size_t>(c * positions)] = 0.0f;
        Tensor x = Tensor::from_vector(values, shape);
        if (dtype != DType::F32) x = x.to(dtype);
        const Tensor gamma = random_tensor({shape[0]}, DType::F32, 0.5f, 1.5f, seed++);
        const Tensor bias =
            with_bias ? random_tensor({shape[0]}, DType::F32, -0.5f, 0.5f, seed++) : Tensor();
        Tensor expected = Tensor::empty(shape, dtype);
        ops::rms_norm_channels(cpu, x, gamma, bias, expected);
        Tensor out = poisoned(gpu, shape, dtype);
        ops::rms_norm_channels(gpu, on_gpu(x), on_gpu(gamma), with_bias ? on_gpu(bias) : Tensor(),
                               out);
        gpu.synchronize();
        const std::string what =
            label("rms_norm_channels", dtype, shape) + (with_bias ? " with bias" : "");
        if (dtype == DType::F32) {
          expect_within(expected, out, relative_bound(expected, 1e-6f, 1e-6f), what);
        } else {
          expect_ulps(expected, out, 1, what);
        }
      }
    }
  }
  // Mixed: bf16 activations and gamma, f32 output.
  const Shape shape{12, 3, 5, 7};
  const Tensor x = random_tensor(shape, DType::BF16, -2.0f, 2.0f, 450);
  const Tensor gamma = random_tensor({12}, DType::BF16, 0.5f, 1.5f, 451);
  Tensor expected = Tensor::empty(shape, DType::F32);
  ops::rms_norm_channels(cpu, x, gamma, Tensor(), expected);
  Tensor out = poisoned(gpu, shape, DType::F32);
  ops::rms_norm_channels(gpu, on_gpu(x), on_gpu(gamma), Tensor(), out);
  gpu.synchronize();
  expect_within(expected, out, relative_bound(expected, 1e-6f, 1e-6f),
                "rms_norm_channels bf16 → f32");
}

// ------------------------------------------------------------------------- channel_affine

// x·scale + shift in fp32 with two roundings on both sides (no FMA): bit-identical.
TEST(CudaVaeOps, ChannelAffineMatchesCpuExactly) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  uint32_t seed = 500;
  for (const Shape& shape : {Shape{16, 3, 9, 11}, Shape{48, 2, 30, 52}, Shape{3, 7}, Shape{96}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      const Tensor x = random_tensor(shape, dtype, -4.0f, 4.0f, seed++);
      const Tensor scale = random_tensor({shape[0]}, DType::F32, 0.1f, 2.0f, seed++);
      const Tensor shift = random_tensor({shape[0]}, DType::F32, -1.0f, 1.0f, seed++);
      Tensor expected = Tensor::empty(shape, dtype);
      ops::channel_affine(cpu, x, scale, shift, expected);
      Tensor out = poisoned(gpu, shape, dtype);
      const Tensor x_gpu = on_gpu(x), scale_gpu = on_gpu(scale), shift_gpu = on_gpu(shift);
      ops::channel_affine(gpu, x_gpu, scale_gpu, shift_gpu, out);
      // In place (out aliases x), as the latent normalisation runs.
      Tensor in_place = on_gpu(x);
      ops::channel_affine(gpu, in_place, scale_gpu, shift_gpu, in_place);
      gpu.synchronize();
      expect_identical(expected, out, label("channel_affine", dtype, shape));
      expect_identical(expected, in_place, label("channel_affine in place", dtype, shape));
    }
  }
  // Mixed: bf16 in, f32 out, bf16 parameters.
  const Shape shape{48, 2, 6, 10};
  const Tensor x = random_tensor(shape, DType::BF16, -4.0f, 4.0f, 550);
  const Tensor scale = random_tensor({48}, DType::BF16, 0.1f, 2.0f, 551);
  const Tensor shift = random_tensor({48}, DType::BF16, -1.0f, 1.0f, 552);
  Tensor expected = Tensor::empty(shape, DType::F32);
  ops::channel_affine(cpu, x, scale, shift, expected);
  Tensor out = poisoned(gpu, shape, DType::F32);
  ops::channel_affine(gpu, on_gpu(x), on_gpu(scale), on_gpu(shift), out);
  gpu.synchronize();
  expect_identical(expected, out, "channel_affine bf16 → f32");
}

// ---------------------------------------------------------------------- repeat_interleave

// Elements are moved, never converted: bit-identical for every dtype and dimension, including
// runs whose size or alignment forces the narrow copy units.
TEST(CudaVaeOps, RepeatInterleaveMatchesCpuExactly) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  struct Case {
    Shape x;
    int dim;
    int64_t repeats;
  };
  const std::vector<Case> cases = {
      {{3, 5, 7}, 0, 2},    {{3, 5, 7}, 1, 4},  {{3, 5, 7}, 2, 3},   {{3, 5, 7}, -1, 2},
      {{4, 1, 6, 8}, 1, 4}, {{12, 2, 9}, 1, 2}, {{1, 96, 16}, 2, 2}, {{5}, 0, 3},
  };
  uint32_t seed = 600;
  for (const Case& c : cases) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F8E4M3, DType::I64}) {
      Tensor x = random_tensor(c.x, DType::F32, -100.0f, 100.0f, seed++);
      if (dtype != DType::F32) x = x.to(dtype);
      Shape out_shape = c.x;
      const size_t d =
          static_cast<size_t>(c.dim < 0 ? c.dim + static_cast<int>(c.x.size()) : c.dim);
      out_shape[d] *= c.repeats;
      Tensor expected = Tensor::empty(out_shape, dtype);
      ops::repeat_interleave(cpu, x, c.dim, expected);
      Tensor out = poisoned(gpu, out_shape, dtype);
      ops::repeat_interleave(gpu, on_gpu(x), c.dim, out);
      gpu.synchronize();
      expect_identical(expected, out,
                       label("repeat_interleave dim " + std::to_string(c.dim), dtype, c.x));
    }
  }
}

// ------------------------------------------------------------------------------- mean_dim

// Summed in double on both sides and rounded once to float: only the order of the double sum
// differs, far below a float ulp, so results agree to within an ulp (rtol 1e-6). 16-bit: one
// unit in the last place.
TEST(CudaVaeOps, MeanDimMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  struct Case {
    Shape x;
    int dim;
  };
  const std::vector<Case> cases = {
      {{3, 5, 7}, 0},      {{3, 5, 7}, 1}, {{3, 5, 7}, 2},   {{12, 4, 9, 11}, 1},
      {{96, 3, 1000}, -1}, {{7, 4099}, 1}, {{2, 96, 33}, 0}, {{13}, 0},
  };
  uint32_t seed = 700;
  for (const Case& c : cases) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      const Tensor x = random_tensor(c.x, dtype, -2.0f, 3.0f, seed++);
      Shape out_shape = c.x;
      const int d = c.dim < 0 ? c.dim + static_cast<int>(c.x.size()) : c.dim;
      out_shape.erase(out_shape.begin() + d);
      Tensor expected = Tensor::empty(out_shape, dtype);
      ops::mean_dim(cpu, x, c.dim, expected);
      Tensor out = poisoned(gpu, out_shape, dtype);
      ops::mean_dim(gpu, on_gpu(x), c.dim, out);
      gpu.synchronize();
      const std::string what = label("mean_dim dim " + std::to_string(c.dim), dtype, c.x);
      if (dtype == DType::F32) {
        expect_within(expected, out, relative_bound(expected, 1e-7f, 1e-6f), what);
      } else {
        expect_ulps(expected, out, 1, what);
      }
    }
  }
}

// -------------------------------------------------------------------- upsample_nearest_2x

// Pure copies: bit-identical, also when converting bf16 → f32 (exact).
TEST(CudaVaeOps, UpsampleNearest2xMatchesCpuExactly) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context cpu = Context::cpu();
  const Context gpu = Context::cuda(0);
  uint32_t seed = 800;
  for (const Shape& shape :
       {Shape{3, 5, 7, 9}, Shape{96, 2, 13, 17}, Shape{12, 1, 1}, Shape{4, 6}}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      const Tensor x = random_tensor(shape, dtype, -5.0f, 5.0f, seed++);
      Shape out_shape = shape;
      out_shape[out_shape.size() - 2] *= 2;
      out_shape.back() *= 2;
      Tensor expected = Tensor::empty(out_shape, dtype);
      ops::upsample_nearest_2x(cpu, x, expected);
      Tensor out = poisoned(gpu, out_shape, dtype);
      ops::upsample_nearest_2x(gpu, on_gpu(x), out);
      gpu.synchronize();
      expect_identical(expected, out, label("upsample_nearest_2x", dtype, shape));
    }
  }
  const Tensor x = random_tensor({12, 2, 5, 7}, DType::BF16, -5.0f, 5.0f, 850);
  Tensor expected = Tensor::empty({12, 2, 10, 14}, DType::F32);
  ops::upsample_nearest_2x(cpu, x, expected);
  Tensor out = poisoned(gpu, {12, 2, 10, 14}, DType::F32);
  ops::upsample_nearest_2x(gpu, on_gpu(x), out);
  gpu.synchronize();
  expect_identical(expected, out, "upsample_nearest_2x bf16 → f32");
}

}  // namespace
}  // namespace wanbatch::core
