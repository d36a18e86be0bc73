// core::ops element-wise ops (cast, fill, gelu_tanh, silu, softmax, add, mul, scale) against the
// independent NumPy reference (tests/reference/ops_reference.py), reduced-precision tensors,
// aliasing and shape errors.
#include <gtest/gtest.h>

#include <cmath>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// add, mul and scale of fp32 values are one correctly rounded fp32 operation, which is exactly
// what the float64 reference rounded to fp32 gives: 1e-6 only absorbs a fused multiply-add.
constexpr double kArithTol = 1e-6;
// Activations: a few fp32 roundings through tanh/exp (~1e-7 relative), outputs up to 100; the
// tanh form of GELU cancels in 1 + tanh(·) for negative inputs, costing ~1e-7 absolute.
constexpr double kActivationAtol = 1e-5;
constexpr double kActivationRtol = 1e-5;
// Softmax: exp of fp32 arguments (the max-shifted arguments are exact near the max) and a sum of
// ≤ 37 terms; outputs ≤ 1.
constexpr double kSoftmaxAtol = 1e-6;
constexpr double kSoftmaxRtol = 2e-5;

const test::Fixture& fx() { return test::ops_fixture(); }

TEST(Ops, CastConvertsToOutputDtype) {
  const Context ctx = Context::cpu();
  const Tensor& x = fx().get("activation.x");
  Tensor bf = empty_like(x, DType::BF16);
  ops::cast(ctx, x, bf);
  EXPECT_TRUE(all_close(bf, x.to(DType::BF16), 0, 0));  // the same rounding as dtype.h
  Tensor back = empty_like(x);
  ops::cast(ctx, bf, back);
  EXPECT_TRUE(all_close(back, x.to(DType::BF16), 0, 0));  // widening is exact
  Tensor copy = empty_like(x);
  ops::cast(ctx, x, copy);
  EXPECT_TRUE(all_close(copy, x, 0, 0));
  Tensor flat = Tensor::empty({x.numel()}, DType::F16);  // same element count, other shape
  ops::cast(ctx, x, flat);
  EXPECT_TRUE(all_close(flat, x.to(DType::F16).reshape({x.numel()}), 0, 0));
  Tensor wrong = Tensor::empty({x.numel() + 1}, DType::F32);
  EXPECT_THROW(ops::cast(ctx, x, wrong), Error);
}

TEST(Ops, FillSetsEveryElement) {
  for (DType d : {DType::F32, DType::BF16, DType::F16}) {
    Tensor t = Tensor::empty({3, 5}, d);
    ops::fill(Context::cpu(), t, -2.5f);
    for (float v : t.to_floats()) EXPECT_EQ(v, -2.5f) << dtype_name(d);
  }
}

TEST(Ops, GeluTanhApproximation) {
  const Tensor& want = fx().get("gelu_tanh.out");  // inputs in [-8, 8] and ±20, ±60, ±100
  Tensor out = empty_like(want);
  ops::gelu_tanh(Context::cpu(), fx().get("activation.x"), out);
  EXPECT_TRUE(all_close(out, want, kActivationAtol, kActivationRtol));
}

TEST(Ops, SiluStaysFiniteForLargeInputs) {
  const Tensor& want = fx().get("silu.out");
  Tensor out = empty_like(want);
  ops::silu(Context::cpu(), fx().get("activation.x"), out);
  EXPECT_TRUE(all_close(out, want, kActivationAtol, kActivationRtol));
}

TEST(Ops, SoftmaxIsStableForLargeValues) {
  // Rows: N(0, 3), +1000, −1000, uniform [−50, 200], constant, nearly constant.
  const Tensor& want = fx().get("softmax_rows.out");
  Tensor out = empty_like(want);
  ops::softmax(Context::cpu(), fx().get("softmax_rows.x"), out);
  EXPECT_TRUE(all_close(out, want, kSoftmaxAtol, kSoftmaxRtol));
}

TEST(Ops, SoftmaxOverLastDimOf3d) {
  const Tensor& want = fx().get("softmax_3d.out");
  Tensor out = empty_like(want);
  ops::softmax(Context::cpu(), fx().get("softmax_3d.x"), out);
  EXPECT_TRUE(all_close(out, want, kSoftmaxAtol, kSoftmaxRtol));
}

// b of shape [3, 4, 5] (same), [4, 5] and [5] (broadcast over a's leading dimensions).
class BroadcastTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BroadcastTest, AddBroadcastsTrailingShape) {
  const std::string n = "add_" + GetParam();
  const Tensor& want = fx().get(n + ".out");
  Tensor out = empty_like(want);
  ops::add(Context::cpu(), fx().get(n + ".a"), fx().get(n + ".b"), out);
  EXPECT_TRUE(all_close(out, want, kArithTol, kArithTol));
}

TEST_P(BroadcastTest, MulBroadcastsTrailingShape) {
  const std::string n = "mul_" + GetParam();
  const Tensor& want = fx().get(n + ".out");
  Tensor out = empty_like(want);
  ops::mul(Context::cpu(), fx().get(n + ".a"), fx().get(n + ".b"), out);
  EXPECT_TRUE(all_close(out, want, kArithTol, kArithTol));
}

TEST_P(BroadcastTest, AddAndMulWriteInPlaceWhenOutAliasesA) {
  for (const std::string op : {"add_", "mul_"}) {
    const std::string n = op + GetParam();
    Tensor a = fx().copy(n + ".a");
    if (op == "add_") {
      ops::add(Context::cpu(), a, fx().get(n + ".b"), a);
    } else {
      ops::mul(Context::cpu(), a, fx().get(n + ".b"), a);
    }
    EXPECT_TRUE(all_close(a, fx().get(n + ".out"), kArithTol, kArithTol)) << n;
  }
}

TEST_P(BroadcastTest, AddAndMulAcceptBf16) {
  const Context ctx = Context::cpu();
  for (const std::string op : {"add_", "mul_"}) {
    const std::string n = op + GetParam();
    const test::OpRun run = [&](const std::vector<Tensor>& in, Tensor& out) {
      if (op == "add_") {
        ops::add(ctx, in[0], in[1], out);
      } else {
        ops::mul(ctx, in[0], in[1], out);
      }
    };
    EXPECT_TRUE(test::reduced_precision_matches(run, {fx().get(n + ".a"), fx().get(n + ".b")},
                                                fx().get(n + ".out").shape(), DType::BF16))
        << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, BroadcastTest, ::testing::Values("same", "trailing2", "trailing1"),
                         [](const auto& info) { return info.param; });

TEST(Ops, ScaleMultipliesByFactor) {
  const Tensor& want = fx().get("scale.out");
  Tensor out = empty_like(want);
  ops::scale(Context::cpu(), fx().get("scale.x"), fx().scalar("scale.factor"), out);
  EXPECT_TRUE(all_close(out, want, kArithTol, kArithTol));
}

TEST(Ops, ActivationsAndScaleAcceptBf16) {
  const Context ctx = Context::cpu();
  const Tensor& x = fx().get("activation.x");
  const test::OpRun gelu = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::gelu_tanh(ctx, in[0], out);
  };
  const test::OpRun silu = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::silu(ctx, in[0], out);
  };
  const test::OpRun scale = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::scale(ctx, in[0], -0.37f, out);
  };
  const test::OpRun softmax = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::softmax(ctx, in[0], out);
  };
  EXPECT_TRUE(test::reduced_precision_matches(gelu, {x}, x.shape(), DType::BF16));
  EXPECT_TRUE(test::reduced_precision_matches(silu, {x}, x.shape(), DType::BF16));
  EXPECT_TRUE(test::reduced_precision_matches(silu, {x}, x.shape(), DType::F16));
  EXPECT_TRUE(test::reduced_precision_matches(scale, {x}, x.shape(), DType::BF16));
  const Tensor& s = fx().get("softmax_rows.x");
  EXPECT_TRUE(test::reduced_precision_matches(softmax, {s}, s.shape(), DType::BF16));
}

TEST(Ops, AddAndMulRejectNonTrailingOrMismatchedShapes) {
  const Context ctx = Context::cpu();
  Tensor a = Tensor::zeros({3, 4, 5}, DType::F32);
  Tensor out = Tensor::empty({3, 4, 5}, DType::F32);
  for (const Shape& b_shape : {Shape{4}, Shape{3, 4}, Shape{2, 4, 5}, Shape{2, 3, 4, 5}}) {
    Tensor b = Tensor::zeros(b_shape, DType::F32);
    EXPECT_THROW(ops::add(ctx, a, b, out), Error) << shape_str(b_shape);
    EXPECT_THROW(ops::mul(ctx, a, b, out), Error) << shape_str(b_shape);
  }
  Tensor b = Tensor::zeros({5}, DType::F32);
  Tensor bad_out = Tensor::empty({3, 4, 6}, DType::F32);
  EXPECT_THROW(ops::add(ctx, a, b, bad_out), Error);
  EXPECT_THROW(ops::mul(ctx, a, b, bad_out), Error);
}

TEST(Ops, UnaryOpsRejectOutputOfOtherShape) {
  const Context ctx = Context::cpu();
  Tensor x = Tensor::zeros({4, 6}, DType::F32);
  Tensor bad = Tensor::empty({4, 7}, DType::F32);
  EXPECT_THROW(ops::gelu_tanh(ctx, x, bad), Error);
  EXPECT_THROW(ops::silu(ctx, x, bad), Error);
  EXPECT_THROW(ops::softmax(ctx, x, bad), Error);
  EXPECT_THROW(ops::scale(ctx, x, 2.0f, bad), Error);
}

}  // namespace
}  // namespace wanbatch::core
