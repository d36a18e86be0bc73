// Loading the DiT from each layout users have gives the same model: official names, the ComfyUI
// prefix, diffusers names, a sharded folder; and LoRAs shift the output as their merged weights do.
#include "model/wan/dit_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/wan/test_model.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {
namespace {

namespace fs = std::filesystem;

DitLoadOptions with_heads(int64_t heads) {
  DitLoadOptions options;
  options.num_heads = heads;
  return options;
}
using core::DType;
using core::Tensor;

Tensor random_tensor(const core::Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> values(static_cast<size_t>(core::shape_numel(shape)));
  for (float& v : values) v = normal(rng);
  return Tensor::from_vector(values, shape);
}

class DitLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wanbatch_loader_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    write_test_dit(preset("tiny-t2v"), (dir_ / "official").string(), 3, DType::BF16, 1 << 20);
    input_.latent = random_tensor({16, 2, 4, 6}, 1);
    input_.timestep = Tensor::from_vector<float>({800.0f}, {1});
    input_.context = random_tensor({5, 32}, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<float> run(const std::string& path, const DitLoadOptions& options = {}) {
    const core::Context ctx = core::Context::cpu();
    WanDit dit = load_dit(path, ctx, options);
    Tensor out = Tensor::empty({16, 2, 4, 6}, DType::F32);
    dit.forward(ctx, input_, out);
    return out.to_floats();
  }

  // The official weights rewritten with each name passed through `rename`.
  std::string renamed_copy(const std::string& name, std::string (*rename)(const std::string&)) {
    auto file = io::SafetensorsFile::open((dir_ / "official" / "diffusion_pytorch_model.safetensors").string());
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& n : file->names()) tensors.emplace_back(rename(n), file->tensor(n));
    const std::string path = (dir_ / name).string();
    io::write_safetensors(path, tensors);
    return path;
  }

  fs::path dir_;
  DitInput input_;
};

std::string comfy(const std::string& n) { return "model.diffusion_model." + n; }

// Official → diffusers for the tensors of a T2V model (from diffusers' conversion script).
std::string diffusers(const std::string& n) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"self_attn.q.", "attn1.to_q."}, {"self_attn.k.", "attn1.to_k."},
      {"self_attn.v.", "attn1.to_v."}, {"self_attn.o.", "attn1.to_out.0."},
      {"self_attn.norm_q.", "attn1.norm_q."}, {"self_attn.norm_k.", "attn1.norm_k."},
      {"cross_attn.q.", "attn2.to_q."}, {"cross_attn.k.", "attn2.to_k."},
      {"cross_attn.v.", "attn2.to_v."}, {"cross_attn.o.", "attn2.to_out.0."},
      {"cross_attn.norm_q.", "attn2.norm_q."}, {"cross_attn.norm_k.", "attn2.norm_k."},
      {"ffn.0.", "ffn.net.0.proj."}, {"ffn.2.", "ffn.net.2."}, {"norm3.", "norm2."},
      {"head.modulation", "scale_shift_table"}, {"modulation", "scale_shift_table"},
      {"head.head.", "proj_out."}, {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
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
  EXPECT_EQ(run(renamed_copy("comfy.safetensors", comfy), with_heads(4)), reference);
  EXPECT_EQ(run(renamed_copy("diffusers.safetensors", diffusers), with_heads(4)), reference);
  // A sharded copy: the same tensors over several files with an index.
  write_test_dit(preset("tiny-t2v"), (dir_ / "sharded").string(), 3, DType::BF16, 64 << 10);
  ASSERT_TRUE(fs::exists(dir_ / "sharded" / "diffusion_pytorch_model.safetensors.index.json"));
  EXPECT_EQ(run((dir_ / "sharded").string()), reference);
}

TEST_F(DitLoader, LoraChangesTheOutputAndZeroStrengthDoesNot) {
  const std::vector<float> reference = run((dir_ / "official").string());
  const std::string lora = (dir_ / "lora.safetensors").string();
  io::write_safetensors(lora, {{"diffusion_model.blocks.0.ffn.0.lora_down.weight", random_tensor({2, 64}, 5)},
                               {"diffusion_model.blocks.0.ffn.0.lora_up.weight", random_tensor({128, 2}, 6)}});
  DitLoadOptions zero;
  zero.loras = {{lora, 0.0f}};
  EXPECT_EQ(run((dir_ / "official").string(), zero), reference);
  DitLoadOptions full;
  full.loras = {{lora, 1.0f}};
  EXPECT_NE(run((dir_ / "official").string(), full), reference);
}

TEST_F(DitLoader, ErrorsNameTheCheckpoint) {
  auto file = io::SafetensorsFile::open((dir_ / "official" / "diffusion_pytorch_model.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& n : file->names()) {
    if (n != "blocks.1.ffn.2.bias") tensors.emplace_back(n, file->tensor(n));
  }
  const std::string broken = (dir_ / "broken.safetensors").string();
  io::write_safetensors(broken, tensors);
  try {
    run(broken, with_heads(4));
    FAIL() << "loaded a checkpoint with a missing tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("blocks.1.ffn.2.bias"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wanbatch::model::wan
