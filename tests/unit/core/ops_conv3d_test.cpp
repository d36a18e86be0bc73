// core::ops::conv3d and conv3d_output_shape against the independent NumPy reference
// (tests/reference/ops_reference.py): the DiT patch embedding (kernel = stride = (1, 2, 2)), a
// causal VAE-style conv (t padding (2, 0)) on a batched [N, C, T, H, W] input, asymmetric padding
// with uneven strides and no bias; reduced-precision tensors and shape errors.
#include <gtest/gtest.h>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// Each output sums C·kt·kh·kw ≤ 81 products of O(1) inputs and ~0.2 weights (outputs up to ~6):
// fp32 accumulation error ~1e-6. 5e-5 absolute and relative: a padding side swapped, a flipped
// kernel or a stride applied on the wrong axis is off by O(1).
constexpr double kTol = 5e-5;

const test::Fixture& fx() { return test::ops_fixture(); }

ops::Conv3dParams params_of(const std::string& n) {
  const auto s = fx().ints(n + ".stride");
  const auto p = fx().ints(n + ".padding");
  ops::Conv3dParams params;
  for (size_t i = 0; i < 3; ++i) params.stride[i] = s.at(i);
  for (size_t i = 0; i < 6; ++i) params.padding[i] = p.at(i);
  return params;
}

Tensor bias_of(const std::string& n) {
  return fx().has(n + ".bias") ? fx().get(n + ".bias") : Tensor();
}

void expect_case(const std::string& n) {
  SCOPED_TRACE(n);
  const Tensor& want = fx().get(n + ".out");
  Tensor out = empty_like(want);
  ops::conv3d(Context::cpu(), fx().get(n + ".x"), fx().get(n + ".weight"), bias_of(n), params_of(n),
              out);
  EXPECT_TRUE(all_close(out, want, kTol, kTol));
}

TEST(Ops, Conv3dPatchEmbeddingStride122) {
  expect_case("conv3d_patch");  // [4, 3, 8, 10] → [6, 3, 4, 5]
}

TEST(Ops, Conv3dCausalTimePaddingBatched) {
  expect_case("conv3d_causal_batched");  // [2, 3, 5, 6, 7], kernel 3³, pad (2,0,1,1,1,1)
}

TEST(Ops, Conv3dAsymmetricPaddingUnevenStrideWithoutBias) {
  expect_case("conv3d_asymmetric_nobias");  // pad (2,0,0,1,1,0), stride (2,2,1)
}

TEST(Ops, Conv3dOutputShapeFollowsPaddingAndStride) {
  for (const std::string n :
       {"conv3d_patch", "conv3d_causal_batched", "conv3d_asymmetric_nobias"}) {
    EXPECT_EQ(ops::conv3d_output_shape(fx().get(n + ".x").shape(), fx().get(n + ".weight").shape(),
                                       params_of(n)),
              fx().get(n + ".out").shape())
        << n;
  }
}

TEST(Ops, Conv3dAcceptsBf16) {
  const Context ctx = Context::cpu();
  for (const std::string n : {"conv3d_patch", "conv3d_causal_batched"}) {
    const ops::Conv3dParams params = params_of(n);
    const test::OpRun run = [&](const std::vector<Tensor>& in, Tensor& out) {
      ops::conv3d(ctx, in[0], in[1], in[2], params, out);
    };
    EXPECT_TRUE(test::reduced_precision_matches(
        run, {fx().get(n + ".x"), fx().get(n + ".weight"), fx().get(n + ".bias")},
        fx().get(n + ".out").shape(), DType::BF16))
        << n;
  }
}

TEST(Ops, Conv3dRejectsWrongChannelCountOrShapes) {
  const Context ctx = Context::cpu();
  const ops::Conv3dParams params;  // stride 1, no padding
  Tensor x = Tensor::zeros({4, 3, 6, 6}, DType::F32);
  Tensor w = Tensor::zeros({5, 4, 1, 3, 3}, DType::F32);
  Tensor out = Tensor::empty({5, 3, 4, 4}, DType::F32);
  ops::conv3d(ctx, x, w, Tensor(), params, out);  // the well-formed call works
  Tensor w_channels = Tensor::zeros({5, 3, 1, 3, 3}, DType::F32);
  EXPECT_THROW(ops::conv3d(ctx, x, w_channels, Tensor(), params, out), Error) << "C 4 vs 3";
  Tensor xb = Tensor::zeros({2, 3, 3, 6, 6}, DType::F32);  // batched, C 3
  Tensor outb = Tensor::empty({2, 5, 3, 4, 4}, DType::F32);
  EXPECT_THROW(ops::conv3d(ctx, xb, w, Tensor(), params, outb), Error) << "batched C 3 vs 4";
  Tensor bad_bias = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(ops::conv3d(ctx, x, w, bad_bias, params, out), Error) << "bias [O]";
  Tensor bad_out = Tensor::empty({5, 3, 5, 5}, DType::F32);
  EXPECT_THROW(ops::conv3d(ctx, x, w, Tensor(), params, bad_out), Error) << "out shape";
}

}  // namespace
}  // namespace wanbatch::core
