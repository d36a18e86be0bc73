// core::ops::layer_norm and rms_norm against the independent NumPy reference
// (tests/reference/ops_reference.py), reduced-precision tensors, and shape errors.
#include <gtest/gtest.h>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// Row reductions over D ≤ 128 in fp32 against float64: mean, variance and rsqrt each carry a few
// 2^-24 relative errors, and outputs are O(1..6), so the error is ~1e-6; 2e-5 absolute and
// relative leaves margin and catches a misplaced eps, an unbiased variance (a D/(D−1) factor,
// ≥ 0.2% here) or a missing mean.
constexpr double kAtol = 2e-5;
constexpr double kRtol = 2e-5;

const test::Fixture& fx() { return test::ops_fixture(); }

TEST(Ops, LayerNormWithAffine) {
  const Tensor& want = fx().get("layer_norm_affine.out");  // [4, 6, 64], mean 3, std 2
  Tensor out = empty_like(want);
  ops::layer_norm(Context::cpu(), fx().get("layer_norm_affine.x"),
                  fx().get("layer_norm_affine.weight"), fx().get("layer_norm_affine.bias"),
                  fx().scalar("layer_norm_affine.eps"), out);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

TEST(Ops, LayerNormWithoutAffineAddsEpsInsideSqrt) {
  const Tensor& want = fx().get("layer_norm_plain.out");  // eps 0.05 against a variance of 0.09
  Tensor out = empty_like(want);
  ops::layer_norm(Context::cpu(), fx().get("layer_norm_plain.x"), Tensor(), Tensor(),
                  fx().scalar("layer_norm_plain.eps"), out);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

TEST(Ops, LayerNormStableForLargeMean) {
  // Rows of mean 50 and unit spread (the DiT residual stream has channels far from zero): a
  // one-pass E[x²] − E[x]² variance in fp32 loses about 1e-3 of it; a two-pass (or Welford) one
  // stays within the usual tolerance. 1e-4 separates the two.
  const Tensor& want = fx().get("layer_norm_large_mean.out");
  Tensor out = empty_like(want);
  ops::layer_norm(Context::cpu(), fx().get("layer_norm_large_mean.x"), Tensor(), Tensor(),
                  fx().scalar("layer_norm_large_mean.eps"), out);
  EXPECT_TRUE(all_close(out, want, 1e-4, 1e-4));
}

TEST(Ops, RmsNormWithWeight) {
  const Tensor& want = fx().get("rms_norm_weight.out");  // [2, 5, 96]
  Tensor out = empty_like(want);
  ops::rms_norm(Context::cpu(), fx().get("rms_norm_weight.x"), fx().get("rms_norm_weight.weight"),
                fx().scalar("rms_norm_weight.eps"), out);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

TEST(Ops, RmsNormWithoutWeightAddsEpsInsideSqrt) {
  const Tensor& want = fx().get("rms_norm_plain.out");  // eps 0.01 against a mean square of 0.04
  Tensor out = empty_like(want);
  ops::rms_norm(Context::cpu(), fx().get("rms_norm_plain.x"), Tensor(),
                fx().scalar("rms_norm_plain.eps"), out);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

TEST(Ops, NormsAcceptBf16) {
  const Context ctx = Context::cpu();
  const float eps = fx().scalar("layer_norm_affine.eps");
  const test::OpRun layer = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::layer_norm(ctx, in[0], in[1], in[2], eps, out);
  };
  EXPECT_TRUE(test::reduced_precision_matches(
      layer,
      {fx().get("layer_norm_affine.x"), fx().get("layer_norm_affine.weight"),
       fx().get("layer_norm_affine.bias")},
      fx().get("layer_norm_affine.out").shape(), DType::BF16));
  const test::OpRun rms = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::rms_norm(ctx, in[0], in[1], eps, out);
  };
  EXPECT_TRUE(test::reduced_precision_matches(
      rms, {fx().get("rms_norm_weight.x"), fx().get("rms_norm_weight.weight")},
      fx().get("rms_norm_weight.out").shape(), DType::BF16));
}

TEST(Ops, NormsRejectMismatchedWeightOrOutput) {
  const Context ctx = Context::cpu();
  Tensor x = Tensor::zeros({3, 16}, DType::F32);
  Tensor out = Tensor::empty({3, 16}, DType::F32);
  Tensor bad = Tensor::zeros({15}, DType::F32);
  Tensor good = Tensor::zeros({16}, DType::F32);
  EXPECT_THROW(ops::layer_norm(ctx, x, bad, good, 1e-6f, out), Error);
  EXPECT_THROW(ops::layer_norm(ctx, x, good, bad, 1e-6f, out), Error);
  EXPECT_THROW(ops::rms_norm(ctx, x, bad, 1e-6f, out), Error);
  Tensor bad_out = Tensor::empty({3, 15}, DType::F32);
  EXPECT_THROW(ops::layer_norm(ctx, x, Tensor(), Tensor(), 1e-6f, bad_out), Error);
  EXPECT_THROW(ops::rms_norm(ctx, x, Tensor(), 1e-6f, bad_out), Error);
}

}  // namespace
}  // namespace wanbatch::core
