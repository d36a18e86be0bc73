// Wan DiT layout and variant detection: every preset's tensor list is detected back as the same
// configuration and the right variant name, and incomplete or foreign checkpoints are named.
#include "model/wan/config.h"
#include "model/wan/defaults.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

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

TEST(DitConfig, ExpertFoldersNameTheExpert) {
  EXPECT_EQ(expert_role("/models/Wan2.2-T2V-A14B/high_noise_model"), "high-noise");
  EXPECT_EQ(expert_role("/models/Wan2.2-T2V-A14B/low_noise_model/"), "low-noise");
  EXPECT_EQ(expert_role("low_noise_model/diffusion_pytorch_model.safetensors.index.json"),
            "low-noise");
  EXPECT_EQ(expert_role("/models/wan2.2_t2v_high_noise_14B_fp16.safetensors"), "");
  const std::string ambiguous = detect(shapes_of(preset("wan2.2-t2v-a14b"))).variant;
  EXPECT_EQ(name_expert(ambiguous, "high-noise"), "Wan2.2 T2V-A14B high-noise expert");
  EXPECT_EQ(name_expert("Wan2.2 I2V-A14B expert", "low-noise"), "Wan2.2 I2V-A14B low-noise expert");
  EXPECT_EQ(name_expert("tiny T2V test model", "low-noise"),
            "tiny T2V test model (low-noise expert)");
  EXPECT_EQ(name_expert(ambiguous, ""), ambiguous);
}

TEST(GenerationDefaults, FollowTheOfficialConfigs) {
  const GenerationDefaults t2v_a14b = generation_defaults(preset("wan2.2-t2v-a14b"), true);
  EXPECT_EQ(t2v_a14b.steps, 40);
  EXPECT_EQ(t2v_a14b.shift, 12.0);
  EXPECT_EQ(t2v_a14b.guide_scale, 3.0);
  EXPECT_EQ(t2v_a14b.guide_scale_high, 4.0);
  EXPECT_EQ(t2v_a14b.boundary, 0.875);
  const GenerationDefaults i2v_a14b = generation_defaults(preset("wan2.2-i2v-a14b"), true);
  EXPECT_EQ(i2v_a14b.guide_scale_high, 3.5);
  EXPECT_EQ(i2v_a14b.boundary, 0.9);
  const GenerationDefaults ti2v = generation_defaults(preset("wan2.2-ti2v-5b"), false);
  EXPECT_EQ(ti2v.frames, 121);
  EXPECT_EQ(ti2v.fps, 24);
  EXPECT_EQ(generation_defaults(preset("wan2.1-i2v-14b"), false).steps, 40);
  const GenerationDefaults t2v_1_3b = generation_defaults(preset("wan2.1-t2v-1.3b"), false);
  EXPECT_EQ(t2v_1_3b.steps, 50);
  EXPECT_EQ(t2v_1_3b.guide_scale, 5.0);
  EXPECT_FALSE(t2v_1_3b.guide_scale_high.has_value());
  const GenerationDefaults lightning = lightning_defaults();
  EXPECT_EQ(lightning.solver, "euler");
  EXPECT_EQ(lightning.steps, 4);
  EXPECT_EQ(lightning.guide_scale, 1.0);
  // The negative prompt is shared_config.py's, byte for byte: 403 bytes of UTF-8.
  const std::string negative = kDefaultNegativePrompt;
  EXPECT_EQ(negative.size(), 403u);
  EXPECT_EQ(negative.rfind("色调艳丽，过曝，", 0), 0u);
  EXPECT_EQ(negative.substr(negative.size() - 9), "倒着走");
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
  EXPECT_EQ(strip_dit_prefix("model.diffusion_model.blocks.0.ffn.0.weight"),
            "blocks.0.ffn.0.weight");
  EXPECT_EQ(strip_dit_prefix("diffusion_model.head.head.bias"), "head.head.bias");
  EXPECT_EQ(strip_dit_prefix("patch_embedding.weight"), "patch_embedding.weight");
  EXPECT_THROW(preset("wan3-t2v"), Error);
}

// diffusers' convert_wan_to_diffusers.py renames by sequential string replacement in this order
// (the norm2/norm3 swap through a placeholder included); replaying it gives the diffusers names.
std::string to_diffusers(std::string name) {
  static const std::pair<const char*, const char*> kRenames[] = {
      {"time_embedding.0", "condition_embedder.time_embedder.linear_1"},
      {"time_embedding.2", "condition_embedder.time_embedder.linear_2"},
      {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
      {"text_embedding.2", "condition_embedder.text_embedder.linear_2"},
      {"time_projection.1", "condition_embedder.time_proj"},
      {"head.modulation", "scale_shift_table"},
      {"head.head", "proj_out"},
      {"modulation", "scale_shift_table"},
      {"ffn.0", "ffn.net.0.proj"},
      {"ffn.2", "ffn.net.2"},
      {"norm2", "norm__placeholder"},
      {"norm3", "norm2"},
      {"norm__placeholder", "norm3"},
      {"img_emb.proj.0", "condition_embedder.image_embedder.norm1"},
      {"img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"},
      {"img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"},
      {"img_emb.proj.4", "condition_embedder.image_embedder.norm2"},
      {"self_attn.q", "attn1.to_q"},
      {"self_attn.k", "attn1.to_k"},
      {"self_attn.v", "attn1.to_v"},
      {"self_attn.o", "attn1.to_out.0"},
      {"self_attn.norm_q", "attn1.norm_q"},
      {"self_attn.norm_k", "attn1.norm_k"},
      {"cross_attn.q", "attn2.to_q"},
      {"cross_attn.k", "attn2.to_k"},
      {"cross_attn.v", "attn2.to_v"},
      {"cross_attn.o", "attn2.to_out.0"},
      {"cross_attn.norm_q", "attn2.norm_q"},
      {"cross_attn.norm_k", "attn2.norm_k"},
      {"attn2.to_k_img", "attn2.add_k_proj"},
      {"attn2.to_v_img", "attn2.add_v_proj"},
      {"attn2.norm_k_img", "attn2.norm_added_k"}};
  for (const auto& [from, to] : kRenames) {
    for (size_t at = name.find(from); at != std::string::npos;
         at = name.find(from, at + std::strlen(to))) {
      name.replace(at, std::strlen(from), to);
    }
  }
  return name;
}

TEST(DitNames, DiffusersNamesMapBackToOfficialOnes) {
  std::set<std::string> diffusers_names;
  for (const WeightSpec& spec : dit_weight_specs(preset("tiny-i2v-clip"))) {
    const std::string diffusers = to_diffusers(spec.name);
    diffusers_names.insert(diffusers);
    EXPECT_EQ(official_dit_name(diffusers), spec.name) << diffusers;
    EXPECT_EQ(official_dit_name("transformer." + diffusers), spec.name) << diffusers;
    EXPECT_EQ(official_dit_name("model.diffusion_model." + spec.name), spec.name);
    EXPECT_EQ(official_dit_name(spec.name), spec.name);
  }
  // Spot checks against names diffusers checkpoints carry.
  EXPECT_TRUE(diffusers_names.count("blocks.1.attn2.add_k_proj.weight"));
  EXPECT_TRUE(diffusers_names.count("blocks.0.norm2.bias"));
  EXPECT_TRUE(diffusers_names.count("condition_embedder.time_proj.weight"));
  EXPECT_EQ(official_dit_name("blocks.3.attn1.to_out.0.lora_A"), "blocks.3.self_attn.o.lora_A");
}

}  // namespace
}  // namespace wanbatch::model::wan
