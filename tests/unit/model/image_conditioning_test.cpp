// The I2V and TI2V image conditions against the independent NumPy reference
// (tests/reference/image_conditioning_reference.py): the frame mask exactly as image2video.py
// builds it, I2V's y (mask + the reference Wan2.1 VAE's encode of the image followed by zero
// frames) and TI2V's first-frame latent (the reference Wan2.2 VAE's encode of the image).
#include "model/wan/image_conditioning.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "reference_match.h"

namespace wanbatch::model::wan {
namespace {

using core::Tensor;

std::shared_ptr<io::SafetensorsFile> reference() {
  return io::SafetensorsFile::open(testing::fixture_path("image_conditioning.safetensors"));
}

WanVae load_reference_vae(const std::string& name, const core::Context& ctx) {
  auto file = io::SafetensorsFile::open(testing::fixture_path(name + ".weights.safetensors"));
  std::map<std::string, Tensor> weights;
  for (const std::string& n : file->names()) weights.emplace(n, file->tensor(n));
  return WanVae(weights, ctx);
}

// The VAE test's tolerance (vae_reference_test.cpp): fp32 against float64 through ~40
// convolutions, 1e-4 relative to each value plus the rms.
constexpr double kVaeTolerance = 1e-4;

TEST(I2vMask, EqualsTheOfficialConstruction) {
  const auto file = reference();
  for (const auto& c : nlohmann::json::parse(file->metadata().at("masks"))) {
    const int64_t frames = c[0], h = c[1], w = c[2];
    SCOPED_TRACE(frames);
    const Tensor mask = i2v_mask(frames, h, w);
    const Tensor want = file->tensor("mask_" + std::to_string(frames) + "_" + std::to_string(h) +
                                     "_" + std::to_string(w));
    ASSERT_EQ(mask.shape(), want.shape());
    EXPECT_EQ(mask.to_floats(), want.to_floats());  // zeros and ones: exact
  }
  EXPECT_THROW(i2v_mask(8, 2, 2), Error);  // not 4k + 1 frames
  EXPECT_THROW(i2v_mask(5, 0, 2), Error);
}

TEST(I2vCondition, MatchesTheMaskAndTheReferenceEncode) {
  const auto file = reference();
  const core::Context ctx = core::Context::cpu();
  WanVae vae = load_reference_vae("vae21", ctx);
  const Tensor image = file->tensor("i2v.image");
  for (const int64_t frames : nlohmann::json::parse(file->metadata().at("i2v_frames"))) {
    SCOPED_TRACE(frames);
    const Tensor want = file->tensor("i2v_" + std::to_string(frames) + ".y");
    const Tensor y = i2v_condition(ctx, vae, image, frames);
    ASSERT_EQ(y.shape(), want.shape());
    EXPECT_EQ(y.slice(0, 4).to_floats(), want.slice(0, 4).to_floats());
    EXPECT_TRUE(testing::matches_reference(y.slice(4, y.dim(0)).to_floats(),
                                           want.slice(4, want.dim(0)).to_floats(), kVaeTolerance));
  }
  // Frame counts and sizes the VAE cannot take are errors.
  EXPECT_THROW(i2v_condition(ctx, vae, image, 8), Error);
  EXPECT_THROW(i2v_condition(ctx, vae, Tensor::zeros({3, 12, 24}, core::DType::F32), 5), Error);
  EXPECT_THROW(i2v_condition(ctx, vae, Tensor::zeros({1, 16, 24}, core::DType::F32), 5), Error);
}

TEST(Ti2vFirstFrame, MatchesTheReferenceEncode) {
  const auto file = reference();
  const core::Context ctx = core::Context::cpu();
  WanVae vae = load_reference_vae("vae22", ctx);
  const Tensor want = file->tensor("ti2v.z");
  const Tensor z = ti2v_first_frame(ctx, vae, file->tensor("ti2v.image"));
  ASSERT_EQ(z.shape(), want.shape());
  EXPECT_TRUE(testing::matches_reference(z.to_floats(), want.to_floats(), kVaeTolerance));
}

}  // namespace
}  // namespace wanbatch::model::wan
