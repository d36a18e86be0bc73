// Wan DiT layout and variant detection: every preset's tensor list is detected back as the same
// configuration and the right variant name, and incomplete or foreign checkpoints are named.
#include "model/wan/config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {
namespace {

std::map<std::string, core::Shape> shapes_of(const DitConfig& config) {
  std::map<std::string, core::Shape> shapes;
  for (const WeightSpec& spec : dit_weight_specs(config)) shapes[spec.name] = spec.shape;
  return shapes;
}

TEST(DitConfig, DetectsEveryPresetBack) {
  for (const std::string& name : preset_names()) {
    const DitConfig expected = preset(name);
    const DitConfig got = detect(shapes_of(expected), expected.num_heads);
    EXPECT_EQ(got.dim, expected.dim) << name;
    EXPECT_EQ(got.ffn_dim, expected.ffn_dim) << name;
    EXPECT_EQ(got.num_layers, expected.num_layers) << name;
    EXPECT_EQ(got.in_dim, expected.in_dim) << name;
    EXPECT_EQ(got.out_dim, expected.out_dim) << name;
    EXPECT_EQ(got.text_dim, expected.text_dim) << name;
    EXPECT_EQ(got.freq_dim, expected.freq_dim) << name;
    EXPECT_EQ(got.image_branch, expected.image_branch) << name;
    EXPECT_EQ(got.num_heads, expected.num_heads) << name;
  }
}

TEST(DitConfig, NamesTheReleasedVariants) {
  EXPECT_EQ(detect(shapes_of(preset("wan2.1-t2v-1.3b"))).variant, "Wan2.1 T2V-1.3B");
  EXPECT_EQ(detect(shapes_of(preset("wan2.1-i2v-14b"))).variant, "Wan2.1 I2V-14B");
  EXPECT_EQ(detect(shapes_of(preset("wan2.2-i2v-a14b"))).variant, "Wan2.2 I2V-A14B expert");
  EXPECT_EQ(detect(shapes_of(preset("wan2.2-ti2v-5b"))).variant, "Wan2.2 TI2V-5B");
  // A T2V-A14B expert and Wan2.1 T2V-14B have identical tensors: say so rather than guess.
  EXPECT_EQ(detect(shapes_of(preset("wan2.2-t2v-a14b"))).variant,
            "Wan2.1 T2V-14B or Wan2.2 T2V-A14B expert");
  // Heads default to dim / 128 for the real models.
  EXPECT_EQ(detect(shapes_of(preset("wan2.2-ti2v-5b"))).num_heads, 24);
}

TEST(DitConfig, ReportsMissingUnexpectedAndMisshapenTensors) {
  auto shapes = shapes_of(preset("tiny-t2v"));
  shapes.erase("blocks.1.ffn.0.bias");
  shapes["blocks.0.extra.weight"] = {3};
  shapes["head.head.bias"] = {5};
  try {
    detect(shapes, 4);
    FAIL() << "accepted a broken checkpoint";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("1 missing: blocks.1.ffn.0.bias"), std::string::npos) << message;
    EXPECT_NE(message.find("1 unexpected: blocks.0.extra.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("head.head.bias [5] (expected [64])"), std::string::npos) << message;
  }
  EXPECT_THROW(detect({{"encoder.weight", {4, 4}}}), Error);
  EXPECT_THROW(detect(shapes_of(preset("tiny-t2v")), 5), Error);  // 64 does not split into 5 heads
}

TEST(DitConfig, StripsDistributionPrefixes) {
  EXPECT_EQ(strip_dit_prefix("model.diffusion_model.blocks.0.ffn.0.weight"), "blocks.0.ffn.0.weight");
  EXPECT_EQ(strip_dit_prefix("diffusion_model.head.head.bias"), "head.head.bias");
  EXPECT_EQ(strip_dit_prefix("patch_embedding.weight"), "patch_embedding.weight");
  EXPECT_THROW(preset("wan3-t2v"), Error);
}

}  // namespace
}  // namespace wanbatch::model::wan
