// The Wan VAEs' structure on random weights (write_test_vae): loading and detection, prefixes,
// error reports for wrong tensors and sizes, shapes, and the streaming itself: chunks of any
// length give what one chunk gives, nothing depends on later frames, calls are repeatable. The
// comparison with the official numbers is vae_reference_test.cpp.
#include "model/wan/vae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <random>

#include "core/error.h"
#include "core/ops.h"
#include "io/safetensors.h"
#include "model/wan/test_vae.h"
#include "temp_dir_test.h"

namespace wanbatch::model::wan {
namespace {

using core::DType;
using core::Shape;
using core::Tensor;
using Kind = VaeConfig::Kind;
using Weights = std::map<std::string, Tensor>;

const core::Context kCpu = core::Context::cpu();

class WanVaeTest : public testing::TempDirTest {
 protected:
  Weights tiny_weights(Kind kind, uint64_t seed = 7) {
    const std::string path = (dir_ / ("vae" + std::to_string(seed) + ".safetensors")).string();
    write_test_vae(tiny_vae_config(kind), path, seed);
    auto file = io::SafetensorsFile::open(path);
    Weights w;
    for (const std::string& name : file->names()) w.emplace(name, file->tensor(name));
    return w;
  }
};

Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(core::shape_numel(shape)));
  for (float& x : v) x = dist(rng);
  return Tensor::from_vector(v, shape);
}

Tensor decode(WanVae& vae, const Tensor& latents) {
  Tensor video = Tensor::empty(vae.decoded_shape(latents.shape()), DType::F32);
  vae.decode(kCpu, latents, video);
  return video;
}
Tensor encode(WanVae& vae, const Tensor& video) {
  Tensor latents = Tensor::empty(vae.encoded_shape(video.shape()), DType::F32);
  vae.encode(kCpu, video, latents);
  return latents;
}

// Largest |a − b| relative to b's rms.
double relative_difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_floats(), y = b.to_floats();
  EXPECT_EQ(x.size(), y.size());
  double sum_sq = 0.0, worst = 0.0;
  for (float v : y) sum_sq += static_cast<double>(v) * v;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(x[i]) - y[i]));
  }
  return worst / std::sqrt(sum_sq / static_cast<double>(y.size()));
}

// Frames [begin, end) of a [C, T, H, W] tensor.
Tensor frames(const Tensor& x, int64_t begin, int64_t end) {
  Tensor out = Tensor::empty({x.dim(0), end - begin, x.dim(2), x.dim(3)}, DType::F32);
  core::ops::copy_slice(kCpu, x, 1, begin, out, 0, end - begin);
  return out;
}

TEST(WanVaeLayout, OfficialWidthsGiveTheOfficialParameterCounts) {
  // Wan2.1_VAE.pth holds 126,892,531 parameters and Wan2.2_VAE.pth 704,688,668 (194 and 196
  // tensors): counted here from the specs the loader checks against.
  for (const auto& [kind, params, tensors] :
       {std::tuple{Kind::Wan21, int64_t{126892531}, size_t{194}},
        std::tuple{Kind::Wan22, int64_t{704688668}, size_t{196}}}) {
    int64_t total = 0;
    const std::vector<WeightSpec> specs = vae_weight_specs(VaeConfig::official(kind));
    for (const WeightSpec& spec : specs) total += core::shape_numel(spec.shape);
    EXPECT_EQ(total, params) << vae_kind_name(kind);
    EXPECT_EQ(specs.size(), tensors) << vae_kind_name(kind);
  }
}

TEST_F(WanVaeTest, DetectsKindAndWidthsFromTheTensors) {
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const VaeConfig want = tiny_vae_config(kind);
    EXPECT_EQ(vae.kind(), kind);
    EXPECT_EQ(vae.config().dim, want.dim);
    EXPECT_EQ(vae.config().dec_dim, want.dec_dim);
    EXPECT_EQ(vae.latent_channels(), kind == Kind::Wan21 ? 16 : 48);
    const int64_t s = kind == Kind::Wan21 ? 8 : 16;
    EXPECT_EQ(vae.stride(), (std::array<int64_t, 3>{4, s, s}));
  }
}

TEST_F(WanVaeTest, ShapesFollowTheStridesAndSizesAreChecked) {
  WanVae v21(tiny_weights(Kind::Wan21), kCpu);
  EXPECT_EQ(v21.decoded_shape({16, 21, 60, 104}), (Shape{3, 81, 480, 832}));
  EXPECT_EQ(v21.encoded_shape({3, 81, 480, 832}), (Shape{16, 21, 60, 104}));
  EXPECT_EQ(v21.encoded_shape({3, 1, 8, 16}), (Shape{16, 1, 1, 2}));
  EXPECT_THROW(v21.decoded_shape({48, 3, 4, 4}), Error);  // Wan2.2's channels
  EXPECT_THROW(v21.decoded_shape({16, 0, 4, 4}), Error);
  EXPECT_THROW(v21.encoded_shape({3, 80, 480, 832}), Error);  // not 4k + 1 frames
  EXPECT_THROW(v21.encoded_shape({3, 81, 484, 832}), Error);  // height not a multiple of 8
  EXPECT_THROW(v21.encoded_shape({4, 81, 480, 832}), Error);  // not RGB
  EXPECT_THROW(v21.encoded_shape({3, 81, 480}), Error);
  try {
    v21.encoded_shape({3, 80, 480, 832});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("77 or 81"), std::string::npos) << e.what();
  }
  WanVae v22(tiny_weights(Kind::Wan22), kCpu);
  EXPECT_EQ(v22.decoded_shape({48, 31, 44, 80}), (Shape{3, 121, 704, 1280}));
  EXPECT_EQ(v22.encoded_shape({3, 121, 704, 1280}), (Shape{48, 31, 44, 80}));
  EXPECT_THROW(v22.encoded_shape({3, 121, 704, 1288}), Error);  // 8 but not 16
  // Outputs of the wrong shape are refused before any work.
  Tensor latents = random_tensor({16, 2, 1, 1}, 1);
  Tensor wrong = Tensor::empty({3, 4, 8, 8}, DType::F32);
  EXPECT_THROW(v21.decode(kCpu, latents, wrong), Error);
  Tensor video = random_tensor({3, 5, 8, 8}, 2);
  Tensor wrong_latents = Tensor::empty({16, 2, 2, 1}, DType::F32);
  EXPECT_THROW(v21.encode(kCpu, video, wrong_latents), Error);
}

TEST_F(WanVaeTest, ReportsMissingUnexpectedAndMisshapenTensorsTogether) {
  Weights w = tiny_weights(Kind::Wan21);
  EXPECT_NO_THROW(WanVae(w, kCpu));
  w.erase("decoder.middle.1.proj.bias");
  w.emplace("decoder.middle.1.extra.weight", Tensor::zeros({4}, DType::F32));
  w["encoder.head.0.gamma"] = Tensor::zeros({32, 1, 1}, DType::F32);
  try {
    WanVae vae(w, kCpu);
    FAIL() << "loaded inconsistent weights";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const char* part : {"Wan2.1 VAE", "missing (1): decoder.middle.1.proj.bias",
                             "unexpected (1): decoder.middle.1.extra.weight",
                             "encoder.head.0.gamma [32, 1, 1] (expected [32, 1, 1, 1])"}) {
      EXPECT_NE(what.find(part), std::string::npos) << part << " in: " << what;
    }
  }
  EXPECT_THROW(WanVae(Weights{{"foo.weight", Tensor::zeros({1}, DType::F32)}}, kCpu), Error);
  // Wan2.1 blocks with 48 latent channels: the constants do not exist.
  Weights z48 = tiny_weights(Kind::Wan21);
  z48["decoder.conv1.weight"] = Tensor::zeros({32, 48, 3, 3, 3}, DType::F32);
  EXPECT_THROW(WanVae(z48, kCpu), Error);
}

TEST_F(WanVaeTest, StripsDistributionPrefixesAndIgnoresOtherModels) {
  const Weights plain = tiny_weights(Kind::Wan22);
  Weights prefixed;
  for (const auto& [name, t] : plain)
    prefixed.emplace("first_stage_model." + name, t.to(DType::BF16));
  prefixed.emplace("model.diffusion_model.head.head.weight", Tensor::zeros({2, 2}, DType::F32));
  WanVae a(plain, kCpu);
  WanVae b(prefixed, kCpu);
  EXPECT_EQ(b.kind(), Kind::Wan22);
  // bf16 weights load as their fp32 values: the same as plain weights rounded to bf16.
  Weights rounded;
  for (const auto& [name, t] : plain) rounded.emplace(name, t.to(DType::BF16));
  WanVae c(rounded, kCpu);
  const Tensor latents = random_tensor({48, 2, 1, 1}, 3, -2.0f, 2.0f);
  EXPECT_EQ(decode(b, latents).to_floats(), decode(c, latents).to_floats());
  Weights vae_prefix;
  for (const auto& [name, t] : plain) vae_prefix.emplace("vae." + name, t);
  EXPECT_EQ(WanVae(vae_prefix, kCpu).kind(), Kind::Wan22);
}

TEST_F(WanVaeTest, DecodesIntoTheClampedRangeAndEncodesBack) {
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const int64_t z = vae.latent_channels();
    const Tensor latents = random_tensor({z, 3, 2, 3}, 4, -2.0f, 2.0f);
    const Tensor video = decode(vae, latents);
    const std::vector<float> v = video.to_floats();
    int clamped = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x));
      ASSERT_LE(std::fabs(x), 1.0f);
      clamped += std::fabs(x) == 1.0f;
    }
    EXPECT_LT(clamped, static_cast<int>(v.size() / 4)) << "random weights should stay O(1)";
    const Tensor back = encode(vae, video);
    EXPECT_EQ(back.shape(), latents.shape());
    for (float x : back.to_floats()) ASSERT_TRUE(std::isfinite(x));
  }
}

// The first latent frame goes alone, as in the official code; after it any chunk length gives
// the same frames as one chunk (each conv's history is exactly the frames before the chunk).
TEST_F(WanVaeTest, ChunkLengthDoesNotChangeTheResult) {
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const int64_t z = vae.latent_channels(), s = vae.stride()[1];
    const Tensor latents = random_tensor({z, 5, 2, 2}, 5, -2.0f, 2.0f);
    const Tensor one_by_one = decode(vae, latents);
    vae.set_chunks(2, 4);
    const Tensor pairs = decode(vae, latents);
    vae.set_chunks(4, 4);
    const Tensor whole = decode(vae, latents);
    // Identical per-frame arithmetic; only GEMM blocking over more rows may differ.
    EXPECT_LT(relative_difference(pairs, one_by_one), 1e-6) << vae_kind_name(kind);
    EXPECT_LT(relative_difference(whole, one_by_one), 1e-6) << vae_kind_name(kind);

    const Tensor video = random_tensor({3, 13, 2 * s, s}, 6);
    vae.set_chunks(1, 4);
    const Tensor by_four = encode(vae, video);
    vae.set_chunks(1, 8);
    const Tensor by_eight = encode(vae, video);
    vae.set_chunks(1, 12);
    const Tensor at_once = encode(vae, video);
    EXPECT_LT(relative_difference(by_eight, by_four), 1e-6) << vae_kind_name(kind);
    EXPECT_LT(relative_difference(at_once, by_four), 1e-6) << vae_kind_name(kind);
  }
  WanVae vae(tiny_weights(Kind::Wan21), kCpu);
  EXPECT_THROW(vae.set_chunks(0, 4), Error);
  EXPECT_THROW(vae.set_chunks(1, 6), Error);
}

// Causal in time: a frame's output depends only on the frames up to it, so decoding a prefix of
// the latents gives a prefix of the video and encoding a prefix of the video a prefix of the
// latents. Also checks that each call starts from a clean history.
TEST_F(WanVaeTest, OutputsAreCausalAndCallsRepeatable) {
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const int64_t z = vae.latent_channels(), s = vae.stride()[1];
    const Tensor latents = random_tensor({z, 4, 1, 2}, 8, -2.0f, 2.0f);
    const Tensor full = decode(vae, latents);
    const Tensor prefix = decode(vae, frames(latents, 0, 2));  // frames 0..4 of the video
    EXPECT_EQ(prefix.to_floats(), frames(full, 0, 5).to_floats()) << vae_kind_name(kind);
    EXPECT_EQ(decode(vae, latents).to_floats(), full.to_floats()) << "a second call";

    const Tensor video = random_tensor({3, 9, s, s}, 9);
    const Tensor all = encode(vae, video);
    const Tensor first = encode(vae, frames(video, 0, 5));
    EXPECT_EQ(first.to_floats(), frames(all, 0, 2).to_floats()) << vae_kind_name(kind);
    // One frame (an image, as I2V and TI2V encode it) is one latent frame, and back.
    EXPECT_EQ(encode(vae, frames(video, 0, 1)).to_floats(), frames(all, 0, 1).to_floats());
    EXPECT_EQ(decode(vae, frames(latents, 0, 1)).to_floats(), frames(full, 0, 1).to_floats());
    EXPECT_EQ(encode(vae, video).to_floats(), all.to_floats()) << "a second call";
    // A different spatial size in between reallocates the histories and scratch.
    const Tensor bigger = random_tensor({z, 2, 2, 3}, 10);
    EXPECT_EQ(decode(vae, bigger).shape(), vae.decoded_shape(bigger.shape()));
    EXPECT_EQ(decode(vae, latents).to_floats(), full.to_floats()) << "after another size";
  }
}

// bf16 inputs are read as their values.
TEST_F(WanVaeTest, AcceptsReducedPrecisionInputs) {
  WanVae vae(tiny_weights(Kind::Wan21), kCpu);
  const Tensor latents = random_tensor({16, 2, 1, 1}, 12).to(DType::BF16);
  EXPECT_EQ(decode(vae, latents).to_floats(), decode(vae, latents.to(DType::F32)).to_floats());
  const Tensor video = random_tensor({3, 5, 8, 8}, 13).to(DType::BF16);
  EXPECT_EQ(encode(vae, video).to_floats(), encode(vae, video.to(DType::F32)).to_floats());
}

// ---------------------------------------------------------------- spatial tiling

// Largest |a − b|.
double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_floats(), y = b.to_floats();
  EXPECT_EQ(x.size(), y.size());
  double worst = 0.0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(x[i]) - y[i]));
  }
  return worst;
}

TEST(VaeTiling, SpansCoverTheAxisAndTheirWeightsSumToOne) {
  for (const int64_t stride : {int64_t{8}, int64_t{16}}) {
    for (const VaeTiling tiling :
         {VaeTiling{}, VaeTiling{6, 2}, VaeTiling{5, 0}, VaeTiling{3, 1}}) {
      for (int64_t size = 1; size <= 3 * tiling.tile + 2; ++size) {
        SCOPED_TRACE(::testing::Message() << "stride " << stride << ", tile " << tiling.tile
                                          << ", overlap " << tiling.overlap << ", size " << size);
        const std::vector<VaeTileSpan> spans = vae_tile_spans(size, tiling, stride);
        std::vector<double> sum(static_cast<size_t>(size * stride), 0.0);
        for (size_t i = 0; i < spans.size(); ++i) {
          const VaeTileSpan& span = spans[i];
          ASSERT_EQ(span.begin, static_cast<int64_t>(i) * (tiling.tile - tiling.overlap));
          // A border tile is smaller, but longer than the overlap.
          if (spans.size() > 1) {
            ASSERT_GT(span.size, tiling.overlap);
          }
          ASSERT_LE(span.size, tiling.tile);
          ASSERT_LE(span.begin + span.size, size);
          ASSERT_EQ(span.weights.size(), static_cast<size_t>(span.size * stride));
          for (size_t j = 0; j < span.weights.size(); ++j) {
            ASSERT_GT(span.weights[j], 0.0f);
            sum[static_cast<size_t>(span.begin * stride) + j] += span.weights[j];
          }
        }
        EXPECT_EQ(spans.back().begin + spans.back().size, size);
        EXPECT_EQ(spans.size() == 1, size <= tiling.tile);
        // Each weight is a double rounded to float once: the two that meet differ from a sum of
        // 1 by at most an ulp of 1.
        for (double total : sum) ASSERT_NEAR(total, 1.0, 1e-7);
      }
    }
  }
  // The ramp over an 8-pixel overlap: (j + ½)/8 rising into the right tile.
  const std::vector<VaeTileSpan> spans = vae_tile_spans(5, VaeTiling{3, 1}, 8);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].weights[16], 1.0f - 0.0625f);
  EXPECT_EQ(spans[1].weights[0], 0.0625f);
  EXPECT_EQ(spans[1].weights[7], 0.9375f);
  EXPECT_EQ(spans[1].weights[8], 1.0f);
}

TEST(VaeTiling, PixelSettingsAreCheckedAndConverted) {
  auto tiling = [](std::optional<int64_t> tile, std::optional<int64_t> overlap, int64_t stride) {
    const VaeTiling t = vae_tiling_from_pixels(tile, overlap, stride);
    return std::pair{t.tile, t.overlap};
  };
  EXPECT_EQ(tiling(std::nullopt, std::nullopt, 8), std::pair(int64_t{32}, int64_t{8}));
  EXPECT_EQ(tiling(std::nullopt, std::nullopt, 16), std::pair(int64_t{32}, int64_t{8}));
  EXPECT_EQ(tiling(512, std::nullopt, 8), std::pair(int64_t{64}, int64_t{16}));  // a quarter
  EXPECT_EQ(tiling(48, std::nullopt, 16), std::pair(int64_t{3}, int64_t{0}));    // 12 → 0
  EXPECT_EQ(tiling(256, 0, 16), std::pair(int64_t{16}, int64_t{0}));
  EXPECT_EQ(tiling(256, 120, 8), std::pair(int64_t{32}, int64_t{15}));
  for (const auto& [tile, overlap, stride, message] :
       {std::tuple{std::optional<int64_t>(250), std::optional<int64_t>(), 8, "tile size 250 px"},
        std::tuple{std::optional<int64_t>(0), std::optional<int64_t>(), 8, "tile size 0 px"},
        std::tuple{std::optional<int64_t>(256), std::optional<int64_t>(), 24, "tile size 256 px"},
        std::tuple{std::optional<int64_t>(256), std::optional<int64_t>(60), 8, "overlap 60 px"},
        std::tuple{std::optional<int64_t>(256), std::optional<int64_t>(-8), 8, "overlap -8 px"},
        std::tuple{std::optional<int64_t>(256), std::optional<int64_t>(128), 8, "half the tile"},
        std::tuple{std::optional<int64_t>(), std::optional<int64_t>(256), 16, "half the tile"}}) {
    try {
      vae_tiling_from_pixels(tile, overlap, stride);
      ADD_FAILURE() << "accepted " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

TEST_F(WanVaeTest, TilingSettingsAreChecked) {
  WanVae vae(tiny_weights(Kind::Wan21), kCpu);
  EXPECT_FALSE(vae.tiling().has_value());
  EXPECT_THROW(vae.set_tiling(VaeTiling{0, 0}), Error);
  EXPECT_THROW(vae.set_tiling(VaeTiling{8, 4}), Error);  // 2·overlap must be below the tile
  EXPECT_THROW(vae.set_tiling(VaeTiling{8, -1}), Error);
  EXPECT_FALSE(vae.tiling().has_value()) << "a refused setting is not kept";
  vae.set_tiling(VaeTiling{8, 3});
  EXPECT_EQ(vae.tiling()->tile, 8);
  vae.set_tiling(std::nullopt);
  EXPECT_FALSE(vae.tiling().has_value());
}

// A latent frame no larger than one tile (in both directions) is decoded untiled.
TEST_F(WanVaeTest, TiledDecodeWithinOneTileIsUntiled) {
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const int64_t z = vae.latent_channels();
    for (const Shape& shape : {Shape{z, 2, 3, 4}, Shape{z, 1, 4, 4}}) {
      const Tensor latents = random_tensor(shape, 20, -2.0f, 2.0f);
      vae.set_tiling(std::nullopt);
      const Tensor untiled = decode(vae, latents);
      vae.set_tiling(VaeTiling{4, 1});
      EXPECT_EQ(decode(vae, latents).to_floats(), untiled.to_floats()) << vae_kind_name(kind);
    }
  }
}

// Where one tile alone has weight 1 (away from its overlaps), the tiled video is that tile's
// latents decoded on their own, bit for bit: each tile starts from fresh caches (two latent frames
// here, so the temporal caches are used) and lands in its place. 7 × 9 latent pixels in tiles of
// 4 overlapping by 1: rows [0, 4) [3, 7), columns [0, 4) [3, 7) [6, 9), the last ones smaller;
// checked for the corner tile and the one in the second row and column.
TEST_F(WanVaeTest, TiledDecodeKeepsEachTileWhereItAloneCounts) {
  const VaeTiling tiling{4, 1};
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const int64_t z = vae.latent_channels(), s = vae.stride()[1];
    const Tensor latents = random_tensor({z, 2, 7, 9}, 23, -2.0f, 2.0f);
    vae.set_tiling(tiling);
    const Tensor tiled = decode(vae, latents);
    vae.set_tiling(std::nullopt);
    const std::vector<VaeTileSpan> rows = vae_tile_spans(7, tiling, s);
    const std::vector<VaeTileSpan> columns = vae_tile_spans(9, tiling, s);
    ASSERT_EQ(rows.size(), 2u);
    ASSERT_EQ(columns.size(), 3u);
    for (const size_t i : {size_t{0}, size_t{1}}) {
      const VaeTileSpan &row = rows[i], &column = columns[i];
      Tensor band = Tensor::empty({z, 2, row.size, 9}, DType::F32);
      core::ops::copy_slice(kCpu, latents, 2, row.begin, band, 0, row.size);
      Tensor tile_latents = Tensor::empty({z, 2, row.size, column.size}, DType::F32);
      core::ops::copy_slice(kCpu, band, 3, column.begin, tile_latents, 0, column.size);
      const Tensor alone = decode(vae, tile_latents);
      const std::vector<float> a = alone.to_floats(), t = tiled.to_floats();
      const int64_t th = alone.dim(2), tw = alone.dim(3), height = tiled.dim(2);
      const int64_t width = tiled.dim(3), top = row.begin * s, left = column.begin * s;
      int64_t compared = 0;
      for (int64_t p = 0; p < 3 * alone.dim(1); ++p) {
        for (int64_t y = 0; y < th; ++y) {
          for (int64_t x = 0; x < tw; ++x) {
            if (row.weights[y] != 1.0f || column.weights[x] != 1.0f) continue;
            ASSERT_EQ(t[static_cast<size_t>((p * height + top + y) * width + left + x)],
                      a[static_cast<size_t>((p * th + y) * tw + x)])
                << vae_kind_name(kind) << " tile " << i << ", plane " << p << ", y " << y << ", x "
                << x;
            ++compared;
          }
        }
      }
      EXPECT_GT(compared, 0);
    }
  }
}

// Frames spanning several tiles: 11 × 14 latent pixels in tiles of 6 overlapping by 2 (rows 6, 6,
// 3; columns 6, 6, 6). Not exact: every output pixel depends on latents ~17 pixels away through
// the convolutions and on the whole frame through the middle attention, and a tile sees only
// itself. These tiles are small against that reach, so the difference is large: measured mean
// |diff| 0.080 (Wan2.1) and 0.057 (Wan2.2) of the [−1, 1] range, largest 0.73 and 0.47 (with the
// official widths and the default tiles the mean is 0.007–0.012, see vae.h). The bounds leave 50%
// on top of the measurement and catch gross mistakes (garbage or a shifted frame); the blending
// itself is checked exactly by the tests before and after this one.
TEST_F(WanVaeTest, TiledDecodeIsCloseToUntiled) {
  for (Kind kind : {Kind::Wan21, Kind::Wan22}) {
    WanVae vae(tiny_weights(kind), kCpu);
    const int64_t z = vae.latent_channels();
    const Tensor latents = random_tensor({z, 1, 11, 14}, 21, -2.0f, 2.0f);
    const Tensor untiled = decode(vae, latents);
    vae.set_tiling(VaeTiling{6, 2});
    const Tensor tiled = decode(vae, latents);
    ASSERT_EQ(tiled.shape(), untiled.shape());
    const std::vector<float> a = tiled.to_floats(), b = untiled.to_floats();
    double sum = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_LE(std::fabs(a[i]), 1.0f);
      sum += std::fabs(static_cast<double>(a[i]) - b[i]);
    }
    const double mean = sum / static_cast<double>(a.size());
    std::printf("%s, tiles 6/2 over 11x14 latents: max |diff| %.3g, mean %.3g\n",
                vae_kind_name(kind).c_str(), max_abs_difference(tiled, untiled), mean);
    EXPECT_GT(mean, 0.0) << "tiles see less context: some difference is expected";
    EXPECT_LT(mean, kind == Kind::Wan21 ? 0.12 : 0.085) << vae_kind_name(kind);
  }
}

// A decoder whose output does not depend on its input (head conv weights zero, bias per channel):
// every tile decodes to the same constant frames, so any pixel's blend is that constant when its
// weights sum to 1, whatever the tile layout (border tiles, both directions, no overlap).
TEST_F(WanVaeTest, TiledDecodeOfAConstantDecoderIsThatConstant) {
  Weights w = tiny_weights(Kind::Wan21);
  const Tensor head = w.at("decoder.head.2.weight");
  w["decoder.head.2.weight"] = Tensor::zeros(head.shape(), DType::F32);
  w["decoder.head.2.bias"] = Tensor::from_vector(std::vector<float>{0.3f, -0.7f, 0.55f}, {3});
  WanVae vae(w, kCpu);
  const Tensor latents = random_tensor({16, 1, 9, 13}, 22, -2.0f, 2.0f);
  const Tensor untiled = decode(vae, latents);
  for (const VaeTiling tiling : {VaeTiling{4, 1}, VaeTiling{5, 2}, VaeTiling{8, 0}}) {
    vae.set_tiling(tiling);
    // The weights are floats summing to 1 within an ulp, and up to four tiles' products add up
    // at a corner: a few ulps of the values.
    EXPECT_LT(max_abs_difference(decode(vae, latents), untiled), 1e-6)
        << "tile " << tiling.tile << ", overlap " << tiling.overlap;
  }
}

}  // namespace
}  // namespace wanbatch::model::wan
