// core::ops::rope_3d (wan-spec "DiT forward", 3D RoPE) against the independent NumPy reference
// (tests/reference/ops_reference.py, angles in float64 as the official rope_params/rope_apply):
// head_dim 128, grid f=3 h=4 w=6 with 2 heads, Ulysses slices at a token_offset, sequence padding
// copied unchanged, a 480p-size grid deep into the sequence; aliasing, bf16 and shape errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/unit/core/fixture.h"

namespace wanbatch::core {
namespace {

using test::all_close;
using test::empty_like;

// Each output is one complex multiply of O(1) values by a unit rotation. Angles reach ~50 rad
// (w = 51 at frequency 1 in the large grid); forming them in fp32 costs ~50·2^-24 ≈ 3e-6 rad, and
// |x| ≤ ~4, so up to ~1.5e-5 even without float64 angles. 5e-5 absolute and relative: a wrong
// frequency split, pair layout or (f, h, w) decomposition is off by O(1).
constexpr double kTol = 5e-5;

const test::Fixture& fx() { return test::ops_fixture(); }

ops::RopeGrid grid_of(const std::string& n) {
  const auto g = fx().ints(n + ".grid");
  return {g.at(0), g.at(1), g.at(2)};
}

int64_t offset_of(const std::string& n) { return fx().ints(n + ".token_offset").at(0); }

Tensor run_case(const std::string& n) {
  Tensor out = empty_like(fx().get(n + ".out"));
  ops::rope_3d(Context::cpu(), fx().get(n + ".x"), grid_of(n), offset_of(n), out);
  return out;
}

TEST(Ops, Rope3dRotatesWholeSequenceAndCopiesPaddingTokens) {
  const std::string n = "rope_full_padded";  // 72 real tokens + 6 padding, [78, 2, 128]
  const Tensor out = run_case(n);
  EXPECT_TRUE(all_close(out, fx().get(n + ".out"), kTol, kTol));
  const int64_t real = 3 * 4 * 6;
  EXPECT_TRUE(
      all_close(out.slice(real, out.dim(0)), fx().get(n + ".x").slice(real, out.dim(0)), 0, 0))
      << "padding tokens must be copied bit for bit";
}

TEST(Ops, Rope3dUlyssesSliceUsesGlobalPositions) {
  const std::string n = "rope_rank_slice";  // tokens 24..47 of 72
  EXPECT_TRUE(all_close(run_case(n), fx().get(n + ".out"), kTol, kTol));
}

TEST(Ops, Rope3dLastRankSliceEndsInPadding) {
  const std::string n = "rope_rank_tail";  // tokens 60..79: 60..71 real, 72..79 padding
  const Tensor out = run_case(n);
  EXPECT_TRUE(all_close(out, fx().get(n + ".out"), kTol, kTol));
  EXPECT_TRUE(all_close(out.slice(12, 20), fx().get(n + ".x").slice(12, 20), 0, 0));
}

TEST(Ops, Rope3dLargeGridDeepOffset) {
  const std::string n = "rope_large_grid";  // grid 21×30×52, tokens 30000..30015, 1 head
  EXPECT_TRUE(all_close(run_case(n), fx().get(n + ".out"), kTol, kTol));
}

TEST(Ops, Rope3dSlicesAgreeWithWholeSequence) {
  // Splitting the sequence across ranks (offsets 0, 26, 52; the last slice holds the padding)
  // gives exactly the rows of the whole-sequence result.
  const std::string n = "rope_full_padded";
  const Tensor& x = fx().get(n + ".x");
  Tensor whole = empty_like(x);
  ops::rope_3d(Context::cpu(), x, grid_of(n), 0, whole);
  for (int64_t begin = 0; begin < x.dim(0); begin += 26) {
    const Tensor part = x.slice(begin, begin + 26);
    Tensor out = empty_like(part);
    ops::rope_3d(Context::cpu(), part, grid_of(n), begin, out);
    EXPECT_TRUE(all_close(out, whole.slice(begin, begin + 26), 1e-6, 1e-6)) << "offset " << begin;
  }
}

TEST(Ops, Rope3dInPlaceWhenOutAliasesX) {
  for (const std::string n : {"rope_full_padded", "rope_rank_tail"}) {
    Tensor x = fx().copy(n + ".x");
    ops::rope_3d(Context::cpu(), x, grid_of(n), offset_of(n), x);
    EXPECT_TRUE(all_close(x, fx().get(n + ".out"), kTol, kTol)) << n;
  }
}

TEST(Ops, Rope3dAcceptsBf16) {
  const Context ctx = Context::cpu();
  for (const std::string n : {"rope_full_padded", "rope_rank_tail"}) {
    const test::OpRun run = [&](const std::vector<Tensor>& in, Tensor& out) {
      ops::rope_3d(ctx, in[0], grid_of(n), offset_of(n), out);
    };
    EXPECT_TRUE(test::reduced_precision_matches(run, {fx().get(n + ".x")},
                                                fx().get(n + ".out").shape(), DType::BF16))
        << n;
  }
}

// rms_norm_rope (the rmsnorm_rope fusion) is defined as rms_norm over each token's H·D channels
// followed by rope_3d, with the intermediate in fp32; on the CPU it must equal that composition
// bit for bit, padding tokens normalised but not rotated, in place too.
Tensor random_rows(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& v : values) v = uniform(rng);
  return Tensor::from_vector(values, shape);
}

TEST(Ops, RmsNormRopeEqualsRmsNormThenRope) {
  const Context ctx = Context::cpu();
  const int64_t tokens = 40, heads = 3, head_dim = 128, width = heads * head_dim;
  const ops::RopeGrid grid{2, 3, 5};  // 30 real tokens; from offset 5, tokens 25..39 are padding
  const int64_t offset = 5;
  const Tensor x = random_rows({tokens, heads, head_dim}, 1);
  const Tensor weight = random_rows({width}, 2);
  for (const bool with_weight : {true, false}) {
    const Tensor w = with_weight ? weight : Tensor();
    Tensor normed = Tensor::empty({tokens, width}, DType::F32);
    ops::rms_norm(ctx, x.reshape({tokens, width}), w, 1e-6f, normed);
    Tensor expected = empty_like(x);
    ops::rope_3d(ctx, normed.reshape({tokens, heads, head_dim}), grid, offset, expected);
    Tensor out = empty_like(x);
    ops::rms_norm_rope(ctx, x, w, 1e-6f, grid, offset, out);
    EXPECT_TRUE(all_close(out, expected, 0, 0)) << (with_weight ? "weighted" : "no weight");
    EXPECT_TRUE(all_close(out.slice(25, tokens),
                          normed.reshape({tokens, heads, head_dim}).slice(25, tokens), 0, 0))
        << "padding tokens are normalised, not rotated";
    Tensor inplace = x.clone();
    ops::rms_norm_rope(ctx, inplace, w, 1e-6f, grid, offset, inplace);
    EXPECT_TRUE(all_close(inplace, expected, 0, 0)) << "in place";
  }
  // bf16 in and out: the fp32 result rounded once.
  const Tensor x16 = x.to(DType::BF16);
  Tensor out16 = Tensor::empty(x.shape(), DType::BF16);
  ops::rms_norm_rope(ctx, x16, weight, 1e-6f, grid, offset, out16);
  Tensor ref = empty_like(x);
  ops::rms_norm_rope(ctx, x16.to(DType::F32), weight, 1e-6f, grid, offset, ref);
  EXPECT_TRUE(all_close(out16, ref, 1e-6, 1.0 / 256)) << "bf16: within one rounding (2^-8)";
}

TEST(Ops, RmsNormRopeRejectsPerHeadWeight) {
  Tensor x = Tensor::zeros({10, 2, 128}, DType::F32);
  Tensor out = Tensor::empty({10, 2, 128}, DType::F32);
  const Tensor per_head = Tensor::zeros({128}, DType::F32);
  EXPECT_THROW(ops::rms_norm_rope(Context::cpu(), x, per_head, 1e-6f, {2, 2, 2}, 0, out), Error);
  Tensor odd = Tensor::zeros({10, 2, 7}, DType::F32);
  EXPECT_THROW(ops::rms_norm_rope(Context::cpu(), odd, Tensor(), 1e-6f, {2, 2, 2}, 0, odd), Error);
}

TEST(Ops, Rope3dRejectsOutputOfOtherShape) {
  Tensor x = Tensor::zeros({10, 2, 128}, DType::F32);
  Tensor bad = Tensor::empty({10, 2, 64}, DType::F32);
  EXPECT_THROW(ops::rope_3d(Context::cpu(), x, {2, 2, 2}, 0, bad), Error);
  Tensor short_out = Tensor::empty({9, 2, 128}, DType::F32);
  EXPECT_THROW(ops::rope_3d(Context::cpu(), x, {2, 2, 2}, 0, short_out), Error);
}

}  // namespace
}  // namespace wanbatch::core
