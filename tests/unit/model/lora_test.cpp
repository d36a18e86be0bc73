// LoRA merging with LoRAs built from known low-rank updates: every key style and prefix, alpha and
// strength scaling, full diffs, and the errors for keys that fit nothing.
#include "model/wan/lora.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "temp_dir_test.h"

namespace wanbatch::model::wan {
namespace {

namespace fs = std::filesystem;
using core::DType;
using core::Tensor;

class Lora : public wanbatch::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // W = [[1, 2, 3], [4, 5, 6]] (out 2, in 3), stored bf16 as checkpoints usually are.
    weights_["blocks.0.self_attn.q.weight"] =
        Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).to(DType::BF16);
    weights_["blocks.0.self_attn.q.bias"] = Tensor::from_vector<float>({0.5f, -0.5f}, {2});
    weights_["blocks.0.modulation"] = Tensor::from_vector<float>({1, 1, 1, 1, 1, 1}, {1, 6, 1});
  }

  std::string write(const std::string& name,
                    const std::vector<std::pair<std::string, Tensor>>& tensors) {
    const std::string path = (dir_ / name).string();
    io::write_safetensors(path, tensors);
    return path;
  }

  std::vector<float> q_weight() { return weights_.at("blocks.0.self_attn.q.weight").to_floats(); }

  WanDit::Weights weights_;
};

// down = [[1, 0, 2]] (rank 1, in 3), up = [[1], [-1]] (out 2): up·down = [[1, 0, 2], [-1, 0, -2]].
std::vector<std::pair<std::string, Tensor>> rank_one(const std::string& prefix,
                                                     const std::string& down_key,
                                                     const std::string& up_key) {
  return {
      {prefix + "blocks.0.self_attn.q." + down_key, Tensor::from_vector<float>({1, 0, 2}, {1, 3})},
      {prefix + "blocks.0.self_attn.q." + up_key, Tensor::from_vector<float>({1, -1}, {2, 1})}};
}

TEST_F(Lora, DownUpWithAlphaScalesByStrengthTimesAlphaOverRank) {
  auto tensors = rank_one("diffusion_model.", "lora_down.weight", "lora_up.weight");
  tensors.emplace_back("diffusion_model.blocks.0.self_attn.q.alpha",
                       Tensor::from_vector<float>({2.0f}, {1}));
  merge_loras(weights_, {{write("a.safetensors", tensors), 0.5f}});
  // scale = 0.5 · 2 / 1 = 1
  EXPECT_EQ(q_weight(), (std::vector<float>{2, 2, 5, 3, 5, 4}));
}

TEST_F(Lora, LoraAAndBWithoutAlphaAndComfyPrefix) {
  merge_loras(weights_, {{write("b.safetensors", rank_one("model.diffusion_model.", "lora_A.weight",
                                                          "lora_B.weight")),
                          3.0f}});
  EXPECT_EQ(q_weight(), (std::vector<float>{4, 2, 9, 1, 5, 0}));  // scale = strength = 3
}

TEST_F(Lora, DiffusersModuleNames) {
  // transformer.blocks.0.attn1.to_q is blocks.0.self_attn.q in diffusers' names.
  merge_loras(weights_, {{write("p.safetensors", {{"transformer.blocks.0.attn1.to_q.lora_A.weight",
                                                   Tensor::from_vector<float>({1, 0, 2}, {1, 3})},
                                                  {"transformer.blocks.0.attn1.to_q.lora_B.weight",
                                                   Tensor::from_vector<float>({1, -1}, {2, 1})}}),
                          1.0f}});
  EXPECT_EQ(q_weight(), (std::vector<float>{2, 2, 5, 3, 5, 4}));
}

TEST_F(Lora, KohyaStyleKeys) {
  weights_["blocks.0.cross_attn.k_img.weight"] = Tensor::from_vector<float>({0, 0, 0, 0}, {2, 2});
  auto tensors = rank_one("", "lora_down.weight", "lora_up.weight");
  for (auto& [key, tensor] : tensors)
    key.replace(0, std::string("blocks.0.self_attn.q").size(), "lora_unet_blocks_0_self_attn_q");
  tensors.emplace_back("lora_unet_blocks_0_self_attn_q.alpha",
                       Tensor::from_vector<float>({2.0f}, {}));
  // An underscore inside a module name (k_img) resolves too.
  tensors.emplace_back("lora_unet_blocks_0_cross_attn_k_img.lora_down.weight",
                       Tensor::from_vector<float>({1, 1}, {1, 2}));
  tensors.emplace_back("lora_unet_blocks_0_cross_attn_k_img.lora_up.weight",
                       Tensor::from_vector<float>({1, 2}, {2, 1}));
  merge_loras(weights_, {{write("k.safetensors", tensors), 1.0f}});
  EXPECT_EQ(q_weight(), (std::vector<float>{3, 2, 7, 2, 5, 2}));  // scale = alpha / rank = 2
  EXPECT_EQ(weights_.at("blocks.0.cross_attn.k_img.weight").to_floats(),
            (std::vector<float>{1, 1, 2, 2}));
  // A kohya key for a module the model lacks is reported like any other.
  try {
    merge_loras(weights_, {{write("m.safetensors", {{"lora_unet_blocks_9_ffn_0.diff",
                                                     Tensor::from_vector<float>({1}, {1})}}),
                            1.0f}});
    FAIL() << "merged a kohya key that matches nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora_unet_blocks_9_ffn_0.diff"), std::string::npos)
        << e.what();
  }
}

TEST_F(Lora, SeveralLorasAddUp) {
  const std::string a = write("a.safetensors", rank_one("", "lora_down.weight", "lora_up.weight"));
  merge_loras(weights_, {{a, 1.0f}, {a, -1.0f}});
  EXPECT_EQ(q_weight(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST_F(Lora, DiffKeysUpdateWeightsBiasesAndModulation) {
  merge_loras(
      weights_,
      {{write("d.safetensors", {{"diffusion_model.blocks.0.self_attn.q.diff",
                                 Tensor::from_vector<float>({1, 1, 1, 1, 1, 1}, {2, 3})},
                                {"diffusion_model.blocks.0.self_attn.q.diff_b",
                                 Tensor::from_vector<float>({1, 1}, {2})},
                                {"diffusion_model.blocks.0.modulation.diff",
                                 Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 6, 1})}}),
        2.0f}});
  EXPECT_EQ(q_weight(), (std::vector<float>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(weights_.at("blocks.0.self_attn.q.bias").to_floats(), (std::vector<float>{2.5f, 1.5f}));
  EXPECT_EQ(weights_.at("blocks.0.modulation").to_floats(),
            (std::vector<float>{3, 5, 7, 9, 11, 13}));
}

TEST_F(Lora, KeysThatFitNothingAreErrorsOrSkippedWhenLenient) {
  auto tensors = rank_one("diffusion_model.", "lora_down.weight", "lora_up.weight");
  tensors.emplace_back("diffusion_model.blocks.7.ffn.0.lora_down.weight",
                       Tensor::from_vector<float>({1, 0, 2}, {1, 3}));
  tensors.emplace_back("diffusion_model.blocks.7.ffn.0.lora_up.weight",
                       Tensor::from_vector<float>({1, 1}, {2, 1}));
  const std::string path = write("x.safetensors", tensors);
  try {
    merge_loras(weights_, {{path, 1.0f}});
    FAIL() << "merged a key that matches nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.7.ffn.0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
  }
  WanDit::Weights fresh = weights_;
  fresh["blocks.0.self_attn.q.weight"] = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  merge_loras(fresh, {{path, 1.0f}}, /*lenient=*/true);
  EXPECT_EQ(fresh.at("blocks.0.self_attn.q.weight").to_floats(),
            (std::vector<float>{2, 2, 5, 3, 5, 4}));
}

TEST_F(Lora, HalfPairsAndMisfitShapesAreErrors) {
  EXPECT_THROW(
      merge_loras(weights_,
                  {{write("h.safetensors", {{"blocks.0.self_attn.q.lora_down.weight",
                                             Tensor::from_vector<float>({1, 0, 2}, {1, 3})}}),
                    1.0f}}),
      Error);
  EXPECT_THROW(merge_loras(weights_,
                           {{write("s.safetensors", {{"blocks.0.self_attn.q.lora_down.weight",
                                                      Tensor::from_vector<float>({1, 0}, {1, 2})},
                                                     {"blocks.0.self_attn.q.lora_up.weight",
                                                      Tensor::from_vector<float>({1, 1}, {2, 1})}}),
                             1.0f}}),
               Error);
}

TEST(LoraArgument, ParsesPathAndOptionalStrength) {
  EXPECT_EQ(parse_lora_argument("a.safetensors").strength, 1.0f);
  const LoraFile l = parse_lora_argument("/x/light:ning.safetensors:0.75");
  EXPECT_EQ(l.path, "/x/light:ning.safetensors");
  EXPECT_EQ(l.strength, 0.75f);
  EXPECT_EQ(parse_lora_argument("c:/odd").path, "c:/odd");  // not a number: part of the path
}

}  // namespace
}  // namespace wanbatch::model::wan
