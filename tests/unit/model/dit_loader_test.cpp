// Loading the DiT from each layout users have gives the same model: official names, the ComfyUI
// prefix, diffusers names, a sharded folder; and LoRAs shift the output as their merged weights do.
#include "model/wan/dit_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/wan/test_model.h"
#include "model/wan/weight_layout.h"
#include "temp_dir_test.h"

namespace wanbatch::model::wan {
namespace {

namespace fs = std::filesystem;

using core::DType;
using core::Tensor;

Tensor random_tensor(const core::Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> values(static_cast<size_t>(core::shape_numel(shape)));
  for (float& v : values) v = normal(rng);
  return Tensor::from_vector(values, shape);
}

class DitLoader : public wanbatch::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    write_test_dit(preset("tiny-t2v"), (dir_ / "official").string(), 3, DType::BF16, 1 << 20);
    input_.latent = random_tensor({16, 2, 4, 6}, 1);
    input_.timestep = Tensor::from_vector<float>({800.0f}, {1});
    input_.context = random_tensor({5, 32}, 2);
  }

  std::vector<float> run(const std::string& path, const DitLoadOptions& options = {}) {
    const core::Context ctx = core::Context::cpu();
    WanDit dit = load_dit(path, ctx, options);
    Tensor out = Tensor::empty({16, 2, 4, 6}, DType::F32);
    dit.forward(ctx, input_, out);
    return out.to_floats();
  }

  // The official weights rewritten with each name passed through `rename`.
  std::string renamed_copy(const std::string& name, std::string (*rename)(const std::string&)) {
    auto file = io::SafetensorsFile::open(
        (dir_ / "official" / "diffusion_pytorch_model.safetensors").string());
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& n : file->names()) tensors.emplace_back(rename(n), file->tensor(n));
    const std::string path = (dir_ / name).string();
    io::write_safetensors(path, tensors);
    return path;
  }

  DitInput input_;
};

std::string comfy(const std::string& n) { return "model.diffusion_model." + n; }

// Official → diffusers for the tensors of a T2V model (from diffusers' conversion script).
std::string diffusers(const std::string& n) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"self_attn.q.", "attn1.to_q."},
      {"self_attn.k.", "attn1.to_k."},
      {"self_attn.v.", "attn1.to_v."},
      {"self_attn.o.", "attn1.to_out.0."},
      {"self_attn.norm_q.", "attn1.norm_q."},
      {"self_attn.norm_k.", "attn1.norm_k."},
      {"cross_attn.q.", "attn2.to_q."},
      {"cross_attn.k.", "attn2.to_k."},
      {"cross_attn.v.", "attn2.to_v."},
      {"cross_attn.o.", "attn2.to_out.0."},
      {"cross_attn.norm_q.", "attn2.norm_q."},
      {"cross_attn.norm_k.", "attn2.norm_k."},
      {"ffn.0.", "ffn.net.0.proj."},
      {"ffn.2.", "ffn.net.2."},
      {"norm3.", "norm2."},
      {"head.modulation", "scale_shift_table"},
      {"modulation", "scale_shift_table"},
      {"head.head.", "proj_out."},
      {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
      {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
      {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
      {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
      {"time_projection.1.", "condition_embedder.time_proj."}};
  std::string out = n;
  for (const auto& [from, to] : kMap) {
    const size_t at = out.find(from);
    if (at != std::string::npos) {
      out.replace(at, std::string(from).size(), to);
      break;
    }
  }
  return "transformer." + out;
}

TEST_F(DitLoader, EveryLayoutGivesTheSameModel) {
  const std::vector<float> reference = run((dir_ / "official").string());
  EXPECT_EQ(run(renamed_copy("comfy.safetensors", comfy), DitLoadOptions::with_num_heads(4)),
            reference);
  EXPECT_EQ(
      run(renamed_copy("diffusers.safetensors", diffusers), DitLoadOptions::with_num_heads(4)),
      reference);
  // A sharded copy: the same tensors over several files with an index.
  write_test_dit(preset("tiny-t2v"), (dir_ / "sharded").string(), 3, DType::BF16, 64 << 10);
  ASSERT_TRUE(fs::exists(dir_ / "sharded" / "diffusion_pytorch_model.safetensors.index.json"));
  EXPECT_EQ(run((dir_ / "sharded").string()), reference);
}

TEST_F(DitLoader, LoraChangesTheOutputAndZeroStrengthDoesNot) {
  const std::vector<float> reference = run((dir_ / "official").string());
  const std::string lora = (dir_ / "lora.safetensors").string();
  io::write_safetensors(
      lora, {{"diffusion_model.blocks.0.ffn.0.lora_down.weight", random_tensor({2, 64}, 5)},
             {"diffusion_model.blocks.0.ffn.0.lora_up.weight", random_tensor({128, 2}, 6)}});
  DitLoadOptions zero;
  zero.loras = {{lora, 0.0f}};
  EXPECT_EQ(run((dir_ / "official").string(), zero), reference);
  DitLoadOptions full;
  full.loras = {{lora, 1.0f}};
  EXPECT_NE(run((dir_ / "official").string(), full), reference);
}

// ComfyUI fp8-scaled files: every 2-D block weight as fp8 e4m3 with a float32 scale (one per tensor
// as `scale_weight`, or one per row as `weight_scale` on the FFN), plus the marker and input-scale
// tensors. The model must be exactly the one whose weights are fp8 · scale.
TEST_F(DitLoader, ScaledFp8WeightsLoadAsTheirDequantizedValues) {
  auto file = io::SafetensorsFile::open(
      (dir_ / "official" / "diffusion_pytorch_model.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> scaled, dequantized;
  scaled.emplace_back("scaled_fp8", Tensor::zeros({0}, DType::F8E4M3));
  int quantized = 0;
  for (const std::string& n : file->names()) {
    const Tensor w = file->tensor(n);
    const bool quantize = n.rfind("blocks.", 0) == 0 && w.ndim() == 2;
    if (!quantize) {
      scaled.emplace_back("model.diffusion_model." + n, w);
      dequantized.emplace_back(n, w);
      continue;
    }
    ++quantized;
    const std::string module = n.substr(0, n.size() - std::string(".weight").size());
    const bool per_row = n.find(".ffn.") != std::string::npos;
    const int64_t rows = w.dim(0), cols = w.dim(1);
    std::vector<float> values = w.to_floats(), scales(per_row ? rows : 1, 0.0f);
    for (int64_t i = 0; i < rows * cols; ++i) {
      float& s = scales[per_row ? i / cols : 0];
      s = std::max(s, std::fabs(values[i]) / 448.0f);
    }
    std::vector<float> q(values.size());
    for (int64_t i = 0; i < rows * cols; ++i) q[i] = values[i] / scales[per_row ? i / cols : 0];
    const Tensor q8 = Tensor::from_vector(q, w.shape()).to(DType::F8E4M3);
    std::vector<float> back = q8.to_floats();
    for (int64_t i = 0; i < rows * cols; ++i) back[i] *= scales[per_row ? i / cols : 0];
    const std::string prefix = "model.diffusion_model." + module;
    scaled.emplace_back(prefix + ".weight", q8);
    if (per_row) {
      scaled.emplace_back(prefix + ".weight_scale", Tensor::from_vector(scales, {rows, 1}));
      scaled.emplace_back(prefix + ".input_scale", Tensor::from_vector<float>({1.0f}, {}));
    } else {
      scaled.emplace_back(prefix + ".scale_weight", Tensor::from_vector(scales, {}));
      scaled.emplace_back(prefix + ".scale_input", Tensor::from_vector<float>({1.0f}, {}));
    }
    dequantized.emplace_back(n, Tensor::from_vector(back, w.shape()));
  }
  ASSERT_GT(quantized, 10);
  const std::string scaled_path = (dir_ / "fp8_scaled.safetensors").string();
  const std::string expected_path = (dir_ / "dequantized.safetensors").string();
  io::write_safetensors(scaled_path, scaled);
  io::write_safetensors(expected_path, dequantized);
  const std::vector<float> expected = run(expected_path, DitLoadOptions::with_num_heads(4));
  EXPECT_EQ(run(scaled_path, DitLoadOptions::with_num_heads(4)), expected);
  // fp8 rounding is visible: the model is not the bf16 original.
  EXPECT_NE(expected, run((dir_ / "official").string()));

  // A scale whose weight is missing names both.
  std::vector<std::pair<std::string, Tensor>> orphan = dequantized;
  orphan.emplace_back("blocks.0.self_attn.x.scale_weight", Tensor::from_vector<float>({1.0f}, {}));
  const std::string orphan_path = (dir_ / "orphan.safetensors").string();
  io::write_safetensors(orphan_path, orphan);
  try {
    run(orphan_path, DitLoadOptions::with_num_heads(4));
    FAIL() << "loaded a scale without its weight";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "orphan.safetensors: fp8 scale 'blocks.0.self_attn.x.scale_weight'"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(DitLoader, ErrorsNameTheCheckpoint) {
  auto file = io::SafetensorsFile::open(
      (dir_ / "official" / "diffusion_pytorch_model.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& n : file->names()) {
    if (n != "blocks.1.ffn.2.bias") tensors.emplace_back(n, file->tensor(n));
  }
  const std::string broken = (dir_ / "broken.safetensors").string();
  io::write_safetensors(broken, tensors);
  try {
    run(broken, DitLoadOptions::with_num_heads(4));
    FAIL() << "loaded a checkpoint with a missing tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("blocks.1.ffn.2.bias"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wanbatch::model::wan
