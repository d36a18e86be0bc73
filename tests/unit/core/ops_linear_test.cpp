// core::ops::linear and matmul against the independent NumPy reference
// (tests/reference/ops_reference.py), reduced-precision tensors, and shape errors.
#include <gtest/gtest.h>

#include <string>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// Dot products of length K ≤ 257 with O(1) terms, fp32 against float64: the accumulated rounding
// error is about √K·2^-24·Σ|terms| ≈ 1e-6 (1e-5 if summed naively in one chain), so 1e-4 absolute
// and relative leaves margin while any indexing or transposition error (O(1)) still fails.
constexpr double kAtol = 1e-4;
constexpr double kRtol = 1e-4;

const test::Fixture& fx() { return test::ops_fixture(); }

TEST(Ops, LinearWithBiasOverLeadingDims) {
  const Tensor& want = fx().get("linear_bias.out");  // x [2, 3, 96] → [2, 3, 40]
  Tensor out = empty_like(want);
  ops::linear(Context::cpu(), fx().get("linear_bias.x"), fx().get("linear_bias.weight"),
              fx().get("linear_bias.bias"), out);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

TEST(Ops, LinearWithoutBias) {
  const Tensor& want = fx().get("linear_nobias.out");  // K = 257, not a multiple of a vector width
  Tensor out = empty_like(want);
  ops::linear(Context::cpu(), fx().get("linear_nobias.x"), fx().get("linear_nobias.weight"),
              Tensor(), out);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

void expect_matmul(const std::string& name, bool transpose_b) {
  SCOPED_TRACE(name);
  const Tensor& want = fx().get(name + ".out");
  Tensor out = empty_like(want);
  ops::matmul(Context::cpu(), fx().get(name + ".a"), fx().get(name + ".b"), out, transpose_b);
  EXPECT_TRUE(all_close(out, want, kAtol, kRtol));
}

TEST(Ops, MatmulTwoDimensional) { expect_matmul("matmul_2d", false); }
TEST(Ops, MatmulBatched) { expect_matmul("matmul_batched", false); }
TEST(Ops, MatmulSharesTwoDimensionalBAcrossBatch) { expect_matmul("matmul_shared_b", false); }
TEST(Ops, MatmulTransposeB) { expect_matmul("matmul_transpose_b", true); }
TEST(Ops, MatmulSharedBTransposed) { expect_matmul("matmul_shared_transpose_b", true); }

TEST(Ops, LinearAcceptsBf16AndF16) {
  const Context ctx = Context::cpu();
  const test::OpRun with_bias = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::linear(ctx, in[0], in[1], in[2], out);
  };
  const std::vector<Tensor> inputs = {fx().get("linear_bias.x"), fx().get("linear_bias.weight"),
                                      fx().get("linear_bias.bias")};
  const Shape shape = fx().get("linear_bias.out").shape();
  EXPECT_TRUE(test::reduced_precision_matches(with_bias, inputs, shape, DType::BF16));
  EXPECT_TRUE(test::reduced_precision_matches(with_bias, inputs, shape, DType::F16));
  const test::OpRun no_bias = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::linear(ctx, in[0], in[1], Tensor(), out);
  };
  EXPECT_TRUE(test::reduced_precision_matches(
      no_bias, {fx().get("linear_nobias.x"), fx().get("linear_nobias.weight")},
      fx().get("linear_nobias.out").shape(), DType::BF16));
}

TEST(Ops, LinearMixesBf16InputWithF32Weight) {
  // The DiT keeps some weights in fp32 while activations are bf16 (and the reverse).
  const Context ctx = Context::cpu();
  const Tensor x = fx().get("linear_bias.x").to(DType::BF16);
  const Tensor& w = fx().get("linear_bias.weight");
  const Tensor& b = fx().get("linear_bias.bias");
  Tensor want = empty_like(fx().get("linear_bias.out"));
  ops::linear(ctx, x.to(DType::F32), w, b, want);
  Tensor out = empty_like(want);
  ops::linear(ctx, x, w, b, out);
  EXPECT_TRUE(all_close(out, want, 1e-5, 1e-5));
  const Tensor w16 = w.to(DType::BF16), b16 = b.to(DType::BF16);
  ops::linear(ctx, x.to(DType::F32), w16.to(DType::F32), b16.to(DType::F32), want);
  ops::linear(ctx, x.to(DType::F32), w16, b16, out);  // f32 input, bf16 weight and bias
  EXPECT_TRUE(all_close(out, want, 1e-5, 1e-5));
}

TEST(Ops, MatmulAcceptsBf16) {
  const Context ctx = Context::cpu();
  const test::OpRun run = [&](const std::vector<Tensor>& in, Tensor& out) {
    ops::matmul(ctx, in[0], in[1], out, true);
  };
  EXPECT_TRUE(test::reduced_precision_matches(
      run, {fx().get("matmul_transpose_b.a"), fx().get("matmul_transpose_b.b")},
      fx().get("matmul_transpose_b.out").shape(), DType::BF16));
}

// The fused op is defined as linear then gelu_tanh; on the CPU both run in fp32 and the result is
// rounded once, so the match is exact, with and without bias and for a bf16 output.
TEST(Ops, LinearGeluTanhIsLinearThenGelu) {
  const Context ctx = Context::cpu();
  const Tensor& x = fx().get("linear_bias.x");  // [2, 3, 96]
  const Tensor& w = fx().get("linear_bias.weight");
  for (const Tensor& bias : {fx().get("linear_bias.bias"), Tensor()}) {
    for (DType out_dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(std::string(bias.defined() ? "bias, " : "no bias, ") +
                   std::string(dtype_name(out_dtype)) + " out");
      Tensor pre = empty_like(fx().get("linear_bias.out"));
      ops::linear(ctx, x, w, bias, pre);
      Tensor want = empty_like(pre, out_dtype);
      ops::gelu_tanh(ctx, pre, want);
      Tensor out = empty_like(pre, out_dtype);
      ops::linear_gelu_tanh(ctx, x, w, bias, out);
      EXPECT_TRUE(all_close(out, want, 0.0, 0.0));
    }
  }
  Tensor bad_out = Tensor::empty({2, 3, 41}, DType::F32);
  EXPECT_THROW(ops::linear_gelu_tanh(ctx, x, w, Tensor(), bad_out), Error);
}

TEST(Ops, LinearRejectsWrongInnerDim) {
  Tensor x = Tensor::zeros({5, 24}, DType::F32);
  Tensor w = Tensor::zeros({8, 25}, DType::F32);
  Tensor out = Tensor::empty({5, 8}, DType::F32);
  EXPECT_THROW(ops::linear(Context::cpu(), x, w, Tensor(), out), Error);
}

TEST(Ops, LinearRejectsWrongBiasOrOutputShape) {
  Tensor x = Tensor::zeros({2, 5, 24}, DType::F32);
  Tensor w = Tensor::zeros({8, 24}, DType::F32);
  Tensor bad_bias = Tensor::zeros({7}, DType::F32);
  Tensor out = Tensor::empty({2, 5, 8}, DType::F32);
  EXPECT_THROW(ops::linear(Context::cpu(), x, w, bad_bias, out), Error);
  Tensor bad_out = Tensor::empty({2, 5, 9}, DType::F32);
  EXPECT_THROW(ops::linear(Context::cpu(), x, w, Tensor(), bad_out), Error);
  Tensor wrong_rows = Tensor::empty({3, 5, 8}, DType::F32);
  EXPECT_THROW(ops::linear(Context::cpu(), x, w, Tensor(), wrong_rows), Error);
}

TEST(Ops, MatmulRejectsMismatchedShapes) {
  const Context ctx = Context::cpu();
  Tensor a = Tensor::zeros({2, 3, 4}, DType::F32);
  Tensor out = Tensor::empty({2, 3, 6}, DType::F32);
  Tensor inner = Tensor::zeros({2, 5, 6}, DType::F32);  // K 5 ≠ 4
  EXPECT_THROW(ops::matmul(ctx, a, inner, out), Error);
  Tensor batch = Tensor::zeros({3, 4, 6}, DType::F32);  // B 3 ≠ 2
  EXPECT_THROW(ops::matmul(ctx, a, batch, out), Error);
  Tensor b = Tensor::zeros({2, 4, 6}, DType::F32);
  EXPECT_THROW(ops::matmul(ctx, a, b, out, /*transpose_b=*/true), Error);  // [B, N, K] expected
  Tensor bad_out = Tensor::empty({2, 3, 7}, DType::F32);
  EXPECT_THROW(ops::matmul(ctx, a, b, bad_out), Error);
}

}  // namespace
}  // namespace wanbatch::core
