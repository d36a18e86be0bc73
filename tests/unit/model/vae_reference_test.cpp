// The Wan VAEs against the independent NumPy reference (tests/reference/vae_reference.py): random
// Wan2.1 and Wan2.2 VAEs at reduced widths under the official tensor names, a decode of normalised
// latents (clamped) and an encode of a clip, computed in float64 with the official chunked cache.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "fixture_path.h"
#include "io/safetensors.h"
#include "model/wan/vae.h"
#include "reference_match.h"

namespace wanbatch::model::wan {
namespace {

using core::Tensor;

std::map<std::string, Tensor> read_all(const io::SafetensorsFile& file) {
  std::map<std::string, Tensor> tensors;
  for (const std::string& name : file.names()) tensors.emplace(name, file.tensor(name));
  return tensors;
}

// 1e-4 relative to each value plus the output's rms: the fp32 network against float64 through
// ~40 convolutions; a wrong padding side, channel order or cache rule is off by O(1).
constexpr double kTolerance = 1e-4;

void expect_matches(const std::string& name, VaeConfig::Kind kind) {
  auto weights = io::SafetensorsFile::open(testing::fixture_path(name + ".weights.safetensors"));
  auto io = io::SafetensorsFile::open(testing::fixture_path(name + ".io.safetensors"));
  const core::Context ctx = core::Context::cpu();
  WanVae vae(read_all(*weights), ctx);
  EXPECT_EQ(vae.kind(), kind);

  const Tensor latents = io->tensor("latents");
  const Tensor want_video = io->tensor("video");
  Tensor video = Tensor::empty(vae.decoded_shape(latents.shape()), core::DType::F32);
  ASSERT_EQ(video.shape(), want_video.shape());
  auto start = std::chrono::steady_clock::now();
  vae.decode(ctx, latents, video);
  const double decode_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto decoded =
      testing::matches_reference(video.to_floats(), want_video.to_floats(), kTolerance);
  EXPECT_TRUE(decoded) << name << " decode";

  const Tensor video_in = io->tensor("video_in");
  const Tensor want_latents = io->tensor("latents_out");
  Tensor got_latents = Tensor::empty(vae.encoded_shape(video_in.shape()), core::DType::F32);
  ASSERT_EQ(got_latents.shape(), want_latents.shape());
  start = std::chrono::steady_clock::now();
  vae.encode(ctx, video_in, got_latents);
  const double encode_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto encoded =
      testing::matches_reference(got_latents.to_floats(), want_latents.to_floats(), kTolerance);
  EXPECT_TRUE(encoded) << name << " encode";
  std::printf("%s: decode %.3f s (%s), encode %.3f s (%s)\n", name.c_str(), decode_s,
              decoded.message(), encode_s, encoded.message());
}

TEST(WanVaeReference, Wan21DecodeAndEncodeMatch) {
  expect_matches("vae21", VaeConfig::Kind::Wan21);
}
TEST(WanVaeReference, Wan22DecodeAndEncodeMatch) {
  expect_matches("vae22", VaeConfig::Kind::Wan22);
}

}  // namespace
}  // namespace wanbatch::model::wan
