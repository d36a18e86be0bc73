// core::ops Wan fusions (layernorm_modulate, gated_residual, and the two fused residual-then-norm
// ops; wan-spec "DiT forward") against the independent NumPy reference
// (tests/reference/ops_reference.py), for shift/scale/gate of shape [D], [1, D] and [L, D];
// reduced-precision tensors, aliasing and shape errors.
#include <gtest/gtest.h>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// layernorm_modulate: a layer norm over D = 64 (see ops_norm_test.cpp) followed by one
// multiply-add, outputs up to ~5: 2e-5. gated_residual: x + y·gate, two fp32 roundings: 1e-6.
constexpr double kModulateTol = 2e-5;
constexpr double kResidualTol = 1e-6;

const test::Fixture& fx() { return test::ops_fixture(); }

// "vector" [D], "row" [1, D] (one row for every token), "per_token" [L, D] (TI2V).
class ModulationShapeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ModulationShapeTest, LayerNormModulateShiftScale) {
  const std::string n = "layernorm_modulate_" + GetParam();
  const Tensor& want = fx().get(n + ".out");
  Tensor out = empty_like(want);
  ops::layernorm_modulate(Context::cpu(), fx().get(n + ".x"), fx().get(n + ".shift"),
                          fx().get(n + ".scale"), fx().scalar(n + ".eps"), out);
  EXPECT_TRUE(all_close(out, want, kModulateTol, kModulateTol));
}

TEST_P(ModulationShapeTest, GatedResidual) {
  const std::string n = "gated_residual_" + GetParam();
  const Tensor& want = fx().get(n + ".out");
  Tensor out = empty_like(want);
  ops::gated_residual(Context::cpu(), fx().get(n + ".x"), fx().get(n + ".y"), fx().get(n + ".gate"),
                      out);
  EXPECT_TRUE(all_close(out, want, kResidualTol, kResidualTol));
}

TEST_P(ModulationShapeTest, GatedResidualInPlaceWhenOutAliasesX) {
  const std::string n = "gated_residual_" + GetParam();
  Tensor x = fx().copy(n + ".x");
  ops::gated_residual(Context::cpu(), x, fx().get(n + ".y"), fx().get(n + ".gate"), x);
  EXPECT_TRUE(all_close(x, fx().get(n + ".out"), kResidualTol, kResidualTol));
}

TEST_P(ModulationShapeTest, FusionsAcceptBf16) {
  const Context ctx = Context::cpu();
  const std::string m = "layernorm_modulate_" + GetParam();
  const float eps = fx().scalar(m + ".eps");
  const test::OpRun modulate = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::layernorm_modulate(ctx, in[0], in[1], in[2], eps, out);
  };
  EXPECT_TRUE(test::reduced_precision_matches(
      modulate, {fx().get(m + ".x"), fx().get(m + ".shift"), fx().get(m + ".scale")},
      fx().get(m + ".out").shape(), DType::BF16));
  const std::string g = "gated_residual_" + GetParam();
  const test::OpRun residual = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::gated_residual(ctx, in[0], in[1], in[2], out);
  };
  EXPECT_TRUE(test::reduced_precision_matches(
      residual, {fx().get(g + ".x"), fx().get(g + ".y"), fx().get(g + ".gate")},
      fx().get(g + ".out").shape(), DType::BF16));
}

// The residual-then-norm fusion: the stream updated in place (gated_residual's tolerance) and the
// norm of the updated stream (layernorm_modulate's).
TEST_P(ModulationShapeTest, ResidualLayerNormModulate) {
  const std::string n = "residual_layernorm_modulate_" + GetParam();
  Tensor x = fx().copy(n + ".x");
  Tensor out = empty_like(fx().get(n + ".out"));
  ops::residual_layernorm_modulate(Context::cpu(), x, fx().get(n + ".y"), fx().get(n + ".gate"),
                                   fx().get(n + ".shift"), fx().get(n + ".scale"),
                                   fx().scalar(n + ".eps"), out);
  EXPECT_TRUE(all_close(x, fx().get(n + ".x_out"), kResidualTol, kResidualTol));
  EXPECT_TRUE(all_close(out, fx().get(n + ".out"), kModulateTol, kModulateTol));
}

INSTANTIATE_TEST_SUITE_P(Ops, ModulationShapeTest, ::testing::Values("vector", "row", "per_token"),
                         [](const auto& info) { return info.param; });

TEST(Ops, GatedResidualKeepsFp32StreamWithBf16Branch) {
  // The DiT's residual stream is fp32 while the attention/FFN branch output may be bf16
  // (wan-spec "DiT forward"): x f32, y bf16, gate f32, out aliasing x.
  const std::string n = "gated_residual_per_token";
  const Tensor y = fx().get(n + ".y").to(DType::BF16);
  Tensor want = empty_like(fx().get(n + ".out"));
  ops::gated_residual(Context::cpu(), fx().get(n + ".x"), y.to(DType::F32), fx().get(n + ".gate"),
                      want);
  Tensor x = fx().copy(n + ".x");
  ops::gated_residual(Context::cpu(), x, y, fx().get(n + ".gate"), x);
  EXPECT_EQ(x.dtype(), DType::F32);
  EXPECT_TRUE(all_close(x, want, kResidualTol, kResidualTol));
}

// The affine variant, with a [D] gate and with no gate (a plain sum): a layer norm with weight and
// bias over D = 64, as layernorm_modulate's tolerance.
TEST(Ops, ResidualLayerNorm) {
  for (const std::string tag : {"gated", "sum"}) {
    const std::string n = "residual_layer_norm_" + tag;
    Tensor x = fx().copy(n + ".x");
    Tensor out = empty_like(fx().get(n + ".out"));
    const Tensor gate = tag == "gated" ? fx().get(n + ".gate") : Tensor();
    ops::residual_layer_norm(Context::cpu(), x, fx().get(n + ".y"), gate, fx().get(n + ".weight"),
                             fx().get(n + ".bias"), fx().scalar(n + ".eps"), out);
    EXPECT_TRUE(all_close(x, fx().get(n + ".x_out"), kResidualTol, kResidualTol)) << tag;
    EXPECT_TRUE(all_close(out, fx().get(n + ".out"), kModulateTol, kModulateTol)) << tag;
  }
}

// The stream is the f32 residual (the kernels update it in place as f32), and out is written while
// x and y are read, so it may not overlap them.
TEST(Ops, ResidualNormsRejectBf16StreamAndOverlappingOut) {
  const Context ctx = Context::cpu();
  Tensor x = Tensor::zeros({6, 16}, DType::F32);
  Tensor y = Tensor::zeros({6, 16}, DType::F32);
  Tensor out = Tensor::empty({6, 16}, DType::F32);
  Tensor row = Tensor::zeros({16}, DType::F32);
  Tensor x16 = Tensor::zeros({6, 16}, DType::BF16);
  EXPECT_THROW(ops::residual_layernorm_modulate(ctx, x16, y, row, row, row, 1e-6f, out), Error);
  EXPECT_THROW(ops::residual_layer_norm(ctx, x16, y, row, row, row, 1e-6f, out), Error);
  EXPECT_THROW(ops::residual_layernorm_modulate(ctx, x, y, row, row, row, 1e-6f, x), Error);
  EXPECT_THROW(ops::residual_layer_norm(ctx, x, y, Tensor(), row, row, 1e-6f, y), Error);
  Tensor bad_gate = Tensor::zeros({15}, DType::F32);
  EXPECT_THROW(ops::residual_layer_norm(ctx, x, y, bad_gate, row, row, 1e-6f, out), Error);
  EXPECT_THROW(ops::residual_layernorm_modulate(ctx, x, y, Tensor(), bad_gate, row, 1e-6f, out),
               Error);
}

TEST(Ops, FusionsRejectMismatchedModulationShapes) {
  const Context ctx = Context::cpu();
  Tensor x = Tensor::zeros({6, 16}, DType::F32);
  Tensor out = Tensor::empty({6, 16}, DType::F32);
  Tensor good = Tensor::zeros({16}, DType::F32);
  for (const Shape& bad_shape : {Shape{15}, Shape{1, 15}, Shape{2, 16}, Shape{7, 16}}) {
    Tensor bad = Tensor::zeros(bad_shape, DType::F32);
    EXPECT_THROW(ops::layernorm_modulate(ctx, x, bad, good, 1e-6f, out), Error)
        << shape_str(bad_shape);
    EXPECT_THROW(ops::layernorm_modulate(ctx, x, good, bad, 1e-6f, out), Error)
        << shape_str(bad_shape);
    EXPECT_THROW(ops::gated_residual(ctx, x, x, bad, out), Error) << shape_str(bad_shape);
  }
  Tensor y = Tensor::zeros({5, 16}, DType::F32);
  EXPECT_THROW(ops::gated_residual(ctx, x, y, good, out), Error);
  Tensor bad_out = Tensor::empty({6, 17}, DType::F32);
  EXPECT_THROW(ops::layernorm_modulate(ctx, x, good, good, 1e-6f, bad_out), Error);
  EXPECT_THROW(ops::gated_residual(ctx, x, x, good, bad_out), Error);
}

}  // namespace
}  // namespace wanbatch::core
