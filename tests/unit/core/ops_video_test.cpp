// The ops the Wan VAEs added (channel-first RMS norm, per-channel affine, clamp, copy_slice,
// repeat_interleave, mean_dim, nearest 2× upsampling) against values worked out by hand or by
// plain loops written here, and conv3d on a frame large enough to be computed in row blocks
// against a direct summation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/ops.h"

namespace wanbatch::core {
namespace {

const Context kCpu = Context::cpu();

// value(i) for i = 0, 1, ...: distinct, exactly representable numbers.
Tensor iota(const Shape& shape, float scale = 1.0f, float offset = 0.0f) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = offset + scale * static_cast<float>(i);
  return Tensor::from_vector(v, shape);
}

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(rng);
  return Tensor::from_vector(v, shape);
}

TEST(Ops, RmsNormChannelsNormalisesOverTheFirstDimension) {
  // x [2, 3]: position p holds (x0, x1) = (3, 4), (0, 0), (−1, 1) → norms 5, 0 (eps), sqrt 2.
  const Tensor x = Tensor::from_vector<float>({3, 0, -1, 4, 0, 1}, {2, 3});
  const Tensor gamma = Tensor::from_vector<float>({1.0f, 2.0f}, {2});
  Tensor out = Tensor::empty({2, 3}, DType::F32);
  ops::rms_norm_channels(kCpu, x, gamma, Tensor(), out);
  const double r2 = std::sqrt(2.0);  // sqrt(C)
  const std::vector<float> got = out.to_floats();
  EXPECT_NEAR(got[0], 3.0 / 5.0 * r2 * 1.0, 1e-6);
  EXPECT_NEAR(got[3], 4.0 / 5.0 * r2 * 2.0, 1e-6);
  EXPECT_EQ(got[1], 0.0f);  // 0 / max(0, 1e-12)
  EXPECT_EQ(got[4], 0.0f);
  EXPECT_NEAR(got[2], -1.0 / r2 * r2, 1e-6);
  EXPECT_NEAR(got[5], 1.0 / r2 * r2 * 2.0, 1e-6);
  // With a bias, and on a 4-D [C, T, H, W] tensor, against a plain loop.
  const Tensor v = random_tensor({5, 2, 3, 4}, 1);
  const Tensor g5 = random_tensor({5}, 2), b5 = random_tensor({5}, 3);
  Tensor o5 = Tensor::empty(v.shape(), DType::F32);
  ops::rms_norm_channels(kCpu, v, g5, b5, o5);
  const float* xv = v.data<float>();
  for (int64_t p = 0; p < 24; ++p) {
    double ss = 0;
    for (int c = 0; c < 5; ++c) ss += xv[c * 24 + p] * xv[c * 24 + p];
    for (int c = 0; c < 5; ++c) {
      const double want = xv[c * 24 + p] / std::sqrt(ss) * std::sqrt(5.0) * g5.data<float>()[c] +
                          b5.data<float>()[c];
      EXPECT_NEAR(o5.data<float>()[c * 24 + p], want, 1e-6);
    }
  }
  Tensor wrong_gamma = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(ops::rms_norm_channels(kCpu, x, wrong_gamma, Tensor(), out), Error);
  EXPECT_THROW(ops::rms_norm_channels(kCpu, x, Tensor(), Tensor(), out), Error);
}

TEST(Ops, ChannelAffineScalesAndShiftsEachChannel) {
  const Tensor x = iota({2, 3});  // 0..5
  const Tensor scale = Tensor::from_vector<float>({2.0f, -1.0f}, {2});
  const Tensor shift = Tensor::from_vector<float>({0.5f, 10.0f}, {2});
  Tensor out = x.clone();
  ops::channel_affine(kCpu, out, scale, shift, out);  // in place
  EXPECT_EQ(out.to_floats(), (std::vector<float>{0.5f, 2.5f, 4.5f, 7.0f, 6.0f, 5.0f}));
  Tensor bad = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(ops::channel_affine(kCpu, x, bad, shift, out), Error);
}

TEST(Ops, ClampBoundsEveryValue) {
  const Tensor x = Tensor::from_vector<float>({-3.0f, -1.0f, 0.25f, 1.0f, 7.0f}, {5});
  Tensor out = Tensor::empty({5}, DType::F32);
  ops::clamp(kCpu, x, -1.0f, 1.0f, out);
  EXPECT_EQ(out.to_floats(), (std::vector<float>{-1.0f, -1.0f, 0.25f, 1.0f, 1.0f}));
  EXPECT_THROW(ops::clamp(kCpu, x, 1.0f, -1.0f, out), Error);
}

TEST(Ops, CopySliceConcatenatesAndNarrowsAlongAnyDimension) {
  // Concatenate a [2, 1, 2] and a [2, 3, 2] along dimension 1 into [2, 4, 2].
  const Tensor a = iota({2, 1, 2}, 1.0f, 100.0f);
  const Tensor b = iota({2, 3, 2});
  Tensor cat = Tensor::empty({2, 4, 2}, DType::F32);
  ops::copy_slice(kCpu, a, 1, 0, cat, 0, 1);
  ops::copy_slice(kCpu, b, 1, 0, cat, 1, 3);
  EXPECT_EQ(cat.to_floats(), (std::vector<float>{100, 101, 0, 1, 2, 3, 4, 5,  //
                                                 102, 103, 6, 7, 8, 9, 10, 11}));
  // Narrow: entries 2..3 of dimension 1, and the last column (dimension −1).
  Tensor mid = Tensor::empty({2, 2, 2}, DType::F32);
  ops::copy_slice(kCpu, cat, 1, 2, mid, 0, 2);
  EXPECT_EQ(mid.to_floats(), (std::vector<float>{2, 3, 4, 5, 8, 9, 10, 11}));
  Tensor last = Tensor::empty({2, 4, 1}, DType::F32);
  ops::copy_slice(kCpu, cat, -1, 1, last, 0, 1);
  EXPECT_EQ(last.to_floats(), (std::vector<float>{101, 1, 3, 5, 103, 7, 9, 11}));
  // Raw elements of any dtype; dtypes and the other dimensions must agree; no running past ends.
  Tensor bf = Tensor::empty({2, 2, 2}, DType::BF16);
  ops::copy_slice(kCpu, cat.to(DType::BF16), 1, 2, bf, 0, 2);
  EXPECT_EQ(bf.to_floats(), mid.to_floats());
  EXPECT_THROW(ops::copy_slice(kCpu, cat, 1, 2, bf, 0, 2), Error);
  EXPECT_THROW(ops::copy_slice(kCpu, cat, 1, 3, mid, 0, 2), Error);
  Tensor other = Tensor::empty({3, 2, 2}, DType::F32);
  EXPECT_THROW(ops::copy_slice(kCpu, cat, 1, 0, other, 0, 2), Error);
  EXPECT_THROW(ops::copy_slice(kCpu, cat, 3, 0, mid, 0, 1), Error);
}

TEST(Ops, RepeatInterleaveRepeatsEachEntryInARow) {
  const Tensor x = iota({2, 2, 3});  // x[a][b][c] = 6a + 3b + c
  Tensor out = Tensor::empty({2, 6, 3}, DType::F32);
  ops::repeat_interleave(kCpu, x, 1, out);  // out[a][j][c] = x[a][j / 3][c]
  for (int a = 0; a < 2; ++a)
    for (int j = 0; j < 6; ++j)
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(out.data<float>()[(a * 6 + j) * 3 + c], 6.0f * a + 3.0f * (j / 3) + c);
  Tensor lead = Tensor::empty({4, 2, 3}, DType::F32);
  ops::repeat_interleave(kCpu, x, 0, lead);
  EXPECT_EQ(lead.slice(1, 2).to_floats(), x.slice(0, 1).to_floats());
  EXPECT_EQ(lead.slice(2, 3).to_floats(), x.slice(1, 2).to_floats());
  Tensor uneven = Tensor::empty({2, 5, 3}, DType::F32);
  EXPECT_THROW(ops::repeat_interleave(kCpu, x, 1, uneven), Error);
}

TEST(Ops, MeanDimAveragesOneDimension) {
  const Tensor x = iota({2, 3, 2});  // [[0 1][2 3][4 5]], [[6 7][8 9][10 11]]
  Tensor out = Tensor::empty({2, 2}, DType::F32);
  ops::mean_dim(kCpu, x, 1, out);
  EXPECT_EQ(out.to_floats(), (std::vector<float>{2, 3, 8, 9}));
  Tensor first = Tensor::empty({3, 2}, DType::F32);
  ops::mean_dim(kCpu, x, 0, first);
  EXPECT_EQ(first.to_floats(), (std::vector<float>{3, 4, 5, 6, 7, 8}));
  Tensor last = Tensor::empty({2, 3}, DType::F32);
  ops::mean_dim(kCpu, x, -1, last);
  EXPECT_EQ(last.to_floats(), (std::vector<float>{0.5f, 2.5f, 4.5f, 6.5f, 8.5f, 10.5f}));
  EXPECT_THROW(ops::mean_dim(kCpu, x, 1, first), Error);
}

TEST(Ops, UpsampleNearest2xRepeatsPixels) {
  const Tensor x = iota({2, 2, 3});  // two 2×3 planes
  Tensor out = Tensor::empty({2, 4, 6}, DType::F32);
  ops::upsample_nearest_2x(kCpu, x, out);
  for (int p = 0; p < 2; ++p)
    for (int y = 0; y < 4; ++y)
      for (int i = 0; i < 6; ++i)
        EXPECT_EQ(out.data<float>()[(p * 4 + y) * 6 + i], 6.0f * p + 3.0f * (y / 2) + i / 2);
  Tensor wrong = Tensor::empty({2, 4, 3}, DType::F32);
  EXPECT_THROW(ops::upsample_nearest_2x(kCpu, x, wrong), Error);
}

// A frame whose column buffer exceeds the kernel's block (36 channels · 27 taps · 96·96 positions
// is 9M floats, over the 8M block), and a strided one with one-sided padding, against direct sums
// in double.
TEST(Ops, Conv3dLargeFramesInRowBlocksMatchDirectSum) {
  const int64_t c = 36, t = 3, h = 96, w = 96, o = 3;
  const Tensor x = random_tensor({c, t, h, w}, 11);
  const Tensor weight = random_tensor({o, c, 3, 3, 3}, 12);
  const Tensor bias = random_tensor({o}, 13);
  for (const bool strided : {false, true}) {
    ops::Conv3dParams params;
    params.padding = strided ? std::array<int64_t, 6>{2, 0, 0, 1, 0, 1}
                             : std::array<int64_t, 6>{2, 0, 1, 1, 1, 1};
    if (strided) params.stride = {1, 2, 2};
    const Shape shape = ops::conv3d_output_shape(x.shape(), weight.shape(), params);
    Tensor out = Tensor::empty(shape, DType::F32);
    ops::conv3d(kCpu, x, weight, bias, params, out);
    const float* xv = x.data<float>();
    const float* wv = weight.data<float>();
    double worst = 0.0;
    std::mt19937 rng(strided ? 5 : 6);
    for (int sample = 0; sample < 400; ++sample) {  // random output positions, edges included
      const int64_t oi = rng() % o, to = rng() % shape[1];
      const int64_t yo = sample < 8 ? (sample % 2) * (shape[2] - 1) : rng() % shape[2];
      const int64_t xo = sample < 8 ? (sample / 2 % 2) * (shape[3] - 1) : rng() % shape[3];
      double sum = bias.data<float>()[oi];
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t dt = 0; dt < 3; ++dt)
          for (int64_t dy = 0; dy < 3; ++dy)
            for (int64_t dx = 0; dx < 3; ++dx) {
              const int64_t ti = to + dt - params.padding[0];
              const int64_t yi = yo * params.stride[1] + dy - params.padding[2];
              const int64_t xi = xo * params.stride[2] + dx - params.padding[4];
              if (ti < 0 || ti >= t || yi < 0 || yi >= h || xi < 0 || xi >= w) continue;
              sum += static_cast<double>(wv[(((oi * c + ci) * 3 + dt) * 3 + dy) * 3 + dx]) *
                     xv[((ci * t + ti) * h + yi) * w + xi];
            }
      const float got = out.data<float>()[((oi * shape[1] + to) * shape[2] + yo) * shape[3] + xo];
      worst = std::max(worst, std::fabs(got - sum));
    }
    // ~1000 products of O(1) values summed in fp32: errors ~1e-5.
    EXPECT_LT(worst, 2e-4) << (strided ? "strided" : "stride 1");
  }
}

// 1×1×1 kernels (the VAE's shortcuts and latent convs) take a path without columns; batched too.
TEST(Ops, Conv3dPointwiseIsAChannelMatrixProduct) {
  const Tensor x = random_tensor({2, 4, 3, 5, 6}, 21);
  const Tensor weight = random_tensor({3, 4, 1, 1, 1}, 22);
  const Tensor bias = random_tensor({3}, 23);
  Tensor out = Tensor::empty({2, 3, 3, 5, 6}, DType::F32);
  ops::conv3d(kCpu, x, weight, bias, {}, out);
  const float* xv = x.data<float>();
  const int64_t positions = 3 * 5 * 6;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t o = 0; o < 3; ++o)
      for (int64_t p = 0; p < positions; ++p) {
        double sum = bias.data<float>()[o];
        for (int64_t c = 0; c < 4; ++c) {
          sum += static_cast<double>(weight.data<float>()[o * 4 + c]) *
                 xv[(n * 4 + c) * positions + p];
        }
        EXPECT_NEAR(out.data<float>()[(n * 3 + o) * positions + p], sum, 1e-5);
      }
}

}  // namespace
}  // namespace wanbatch::core
