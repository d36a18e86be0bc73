// core::ops::attention against the independent NumPy reference (tests/reference/ops_reference.py):
// default and custom scale, Dv ≠ D, Lq ≠ Lk, k_lens masking (a batch entry with every key masked
// gets zeros), additive bias [H, Lq, Lk]; reduced-precision tensors and shape errors.
#include <gtest/gtest.h>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// Scores are fp32 dot products over D ≤ 16 (|score| up to ~15, error ~1e-6), softmax over ≤ 9
// keys, and a weighted sum of O(1) values: the output error is a few 1e-6. 2e-5 absolute and
// relative still fails a wrong scale, a mask off by one key or a bias applied per batch.
constexpr double kTol = 2e-5;

const test::Fixture& fx() { return test::ops_fixture(); }

ops::AttentionOptions options_for(const std::string& n) {
  ops::AttentionOptions options;
  if (fx().has(n + ".scale")) options.scale = fx().scalar(n + ".scale");
  if (fx().has(n + ".k_lens")) options.k_lens = fx().ints(n + ".k_lens");
  if (fx().has(n + ".bias")) options.bias = fx().get(n + ".bias");
  return options;
}

Tensor run_case(const std::string& n) {
  Tensor out = empty_like(fx().get(n + ".out"));
  ops::attention(Context::cpu(), fx().get(n + ".q"), fx().get(n + ".k"), fx().get(n + ".v"), out,
                 options_for(n));
  return out;
}

TEST(Ops, AttentionDefaultScaleWithMoreKeysThanQueries) {
  // q [2, 5, 3, 16], k/v [2, 7, 3, 16], scale 1/√16.
  EXPECT_TRUE(all_close(run_case("attention_basic"), fx().get("attention_basic.out"), kTol, kTol));
}

TEST(Ops, AttentionCustomScaleAndValueDimOtherThanHeadDim) {
  // D 16, Dv 8, scale 0.3.
  const std::string n = "attention_scale_dv";
  EXPECT_TRUE(all_close(run_case(n), fx().get(n + ".out"), kTol, kTol));
}

TEST(Ops, AttentionMasksKeysBeyondKLensAndZeroesFullyMaskedQueries) {
  // k_lens {8 (all), 3, 0 (every key masked)}.
  const std::string n = "attention_k_lens";
  const Tensor out = run_case(n);
  EXPECT_TRUE(all_close(out, fx().get(n + ".out"), kTol, kTol));
  for (float v : out.select(2).to_floats()) ASSERT_EQ(v, 0.0f);  // exact zeros, not NaN
}

TEST(Ops, AttentionMaskedKeysDoNotInfluenceOutput) {
  // Changing the keys and values that k_lens masks must not change anything.
  const std::string n = "attention_k_lens";
  Tensor k = fx().copy(n + ".k"), v = fx().copy(n + ".v");
  const auto k_lens = fx().ints(n + ".k_lens");
  for (int64_t b = 0; b < k.dim(0); ++b) {
    Tensor kb = k.select(b), vb = v.select(b);
    for (int64_t j = k_lens[static_cast<size_t>(b)]; j < k.dim(1); ++j) {
      Tensor kj = kb.slice(j, j + 1), vj = vb.slice(j, j + 1);
      ops::fill(Context::cpu(), kj, 1e4f);
      ops::fill(Context::cpu(), vj, -1e4f);
    }
  }
  Tensor out = empty_like(fx().get(n + ".out"));
  ops::attention(Context::cpu(), fx().get(n + ".q"), k, v, out, options_for(n));
  EXPECT_TRUE(all_close(out, fx().get(n + ".out"), kTol, kTol));
}

TEST(Ops, AttentionAddsBiasPerHead) {
  const std::string n = "attention_bias";  // bias [3, 5, 6], shared by the batch
  EXPECT_TRUE(all_close(run_case(n), fx().get(n + ".out"), kTol, kTol));
}

TEST(Ops, AttentionCombinesBiasAndKLens) {
  const std::string n = "attention_bias_k_lens";  // bias [2, 3, 6], k_lens {4, 6}, Dv 4
  EXPECT_TRUE(all_close(run_case(n), fx().get(n + ".out"), kTol, kTol));
}

TEST(Ops, AttentionAcceptsBf16) {
  const Context ctx = Context::cpu();
  for (const std::string n : {"attention_basic", "attention_k_lens", "attention_bias_k_lens"}) {
    const ops::AttentionOptions options = options_for(n);  // bias stays fp32
    const test::OpRun run = [&](const std::vector<Tensor>& in, Tensor& out) {
      ops::attention(ctx, in[0], in[1], in[2], out, options);
    };
    EXPECT_TRUE(test::reduced_precision_matches(
        run, {fx().get(n + ".q"), fx().get(n + ".k"), fx().get(n + ".v")},
        fx().get(n + ".out").shape(), DType::BF16))
        << n;
  }
}

TEST(Ops, AttentionRejectsMismatchedShapes) {
  const Context ctx = Context::cpu();
  auto zeros = [](const Shape& s) { return Tensor::zeros(s, DType::F32); };
  const Tensor q = zeros({2, 5, 3, 16}), k = zeros({2, 7, 3, 16}), v = zeros({2, 7, 3, 8});
  Tensor out = Tensor::empty({2, 5, 3, 8}, DType::F32);
  ops::attention(ctx, q, k, v, out);  // the well-formed call works
  EXPECT_THROW(ops::attention(ctx, q, zeros({2, 7, 2, 16}), zeros({2, 7, 2, 8}), out), Error)
      << "heads 3 vs 2";
  EXPECT_THROW(ops::attention(ctx, q, zeros({2, 7, 3, 12}), v, out), Error) << "head dim";
  EXPECT_THROW(ops::attention(ctx, q, k, zeros({2, 6, 3, 8}), out), Error) << "k/v length";
  EXPECT_THROW(ops::attention(ctx, q, zeros({1, 7, 3, 16}), zeros({1, 7, 3, 8}), out), Error)
      << "batch";
  Tensor bad_out = Tensor::empty({2, 5, 3, 16}, DType::F32);
  EXPECT_THROW(ops::attention(ctx, q, k, v, bad_out), Error) << "out Dv";
  ops::AttentionOptions bad_bias;
  bad_bias.bias = zeros({3, 5, 6});
  EXPECT_THROW(ops::attention(ctx, q, k, v, out, bad_bias), Error) << "bias [H, Lq, Lk]";
  ops::AttentionOptions bad_lens;
  bad_lens.k_lens = {7, 7, 7};
  EXPECT_THROW(ops::attention(ctx, q, k, v, out, bad_lens), Error) << "one k_len per batch entry";
}

}  // namespace
}  // namespace wanbatch::core
