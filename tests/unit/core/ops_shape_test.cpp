// permute, sinusoidal_embedding and gelu_erf against values worked out by hand or from closed
// forms (these ops joined after the NumPy fixture was made).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/ops.h"

namespace wanbatch::core {
namespace {

const Context kCpu = Context::cpu();

TEST(Ops, PermuteReordersEveryIndex) {
  // x[a][b][c] = 100a + 10b + c; out = x permuted (2, 0, 1): out[c][a][b] = x[a][b][c].
  std::vector<float> values;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c) values.push_back(100.0f * a + 10.0f * b + c);
  const Tensor x = Tensor::from_vector(values, {2, 3, 4});
  Tensor out = Tensor::empty({4, 2, 3}, DType::F32);
  ops::permute(kCpu, x, {2, 0, 1}, out);
  for (int c = 0; c < 4; ++c)
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 3; ++b)
        EXPECT_EQ(out.data<float>()[(c * 2 + a) * 3 + b], 100.0f * a + 10.0f * b + c);
  Tensor bf = Tensor::empty({4, 2, 3}, DType::BF16);
  ops::permute(kCpu, x.to(DType::BF16), {2, 0, 1}, bf);  // moves raw elements of any dtype
  EXPECT_EQ(bf.to_floats(), out.to_floats());
  Tensor wrong = Tensor::empty({2, 4, 3}, DType::F32);
  EXPECT_THROW(ops::permute(kCpu, x, {2, 0, 1}, wrong), Error);
  EXPECT_THROW(ops::permute(kCpu, x, {0, 0, 1}, out), Error);
}

TEST(Ops, SinusoidalEmbeddingIsCosinesThenSines) {
  const Tensor t = Tensor::from_vector<float>({0.0f, 3.0f}, {2});
  Tensor out = Tensor::empty({2, 8}, DType::F32);
  ops::sinusoidal_embedding(kCpu, t, out);
  const float* row0 = out.data<float>();
  const float* row1 = row0 + 8;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(row0[i], 1.0f);                      // cos(0)
    EXPECT_EQ(row0[4 + i], 0.0f);                  // sin(0)
    const double f = std::pow(10000.0, -i / 4.0);  // frequencies 1, 0.1, 0.01, 0.001
    EXPECT_NEAR(row1[i], std::cos(3.0 * f), 1e-7);
    EXPECT_NEAR(row1[4 + i], std::sin(3.0 * f), 1e-7);
  }
  EXPECT_NEAR(row1[1], 0.955336489125606, 1e-7);  // cos(0.3)
}

TEST(Ops, LinearCombinationSumsInDoubleAndRoundsOnce) {
  const Tensor a = Tensor::from_vector<float>({1.0f, 2.0f, 1e8f}, {3});
  const Tensor b = Tensor::from_vector<float>({0.5f, -4.0f, 1.0f}, {3});
  Tensor out = Tensor::empty({3}, DType::F32);
  // 2·1 + 0.25·0.5, 2·2 − 1, and 2e8 + 0.25 − 2e8 = 0.25 only if nothing is rounded in between.
  Tensor c = Tensor::from_vector<float>({0.0f, 0.0f, -1e8f}, {3});
  ops::linear_combination(kCpu, {2.0, 0.25, 2.0}, {&a, &b, &c}, out);
  EXPECT_EQ(out.to_floats(), (std::vector<float>{2.125f, 3.0f, 0.25f}));
  // out may be one of the inputs.
  Tensor x = a.clone();
  ops::linear_combination(kCpu, {-1.0, 1.0}, {&x, &b}, x);
  EXPECT_EQ(x.to_floats(), (std::vector<float>{-0.5f, -6.0f, 1.0f - 1e8f}));
  EXPECT_THROW(ops::linear_combination(kCpu, {1.0}, {&a, &b}, out), Error);
  Tensor wrong = Tensor::empty({2}, DType::F32);
  EXPECT_THROW(ops::linear_combination(kCpu, {1.0}, {&a}, wrong), Error);
}

TEST(Ops, GeluErfMatchesClosedForm) {
  const Tensor x = Tensor::from_vector<float>({0.0f, 1.0f, -1.0f, 3.0f}, {4});
  Tensor out = Tensor::empty({4}, DType::F32);
  ops::gelu_erf(kCpu, x, out);
  // x·Φ(x) with Φ the standard normal CDF: Φ(1) = 0.841344746..., Φ(3) = 0.998650101...
  EXPECT_EQ(out.data<float>()[0], 0.0f);
  EXPECT_NEAR(out.data<float>()[1], 0.8413447460685429, 1e-7);
  EXPECT_NEAR(out.data<float>()[2], -0.15865525393145707, 1e-7);
  EXPECT_NEAR(out.data<float>()[3], 2.9959503059051097, 1e-6);
}

}  // namespace
}  // namespace wanbatch::core
