// Image-to-video on the GPU (issue 11): the whole chain of each kind, from an 8-bit image to the
// sampled latents — the official size rule, the resize, the VAE encode of the conditions, Wan2.1's
// CLIP tower, the sampling loop with its experts — on tiny random models, against the same chain on
// the CPU. Each kind runs twice on the GPU: with fp32 GEMMs (only summation orders differ from the
// CPU) and in the precision `wanbatch run` uses there (bf16 DiT GEMMs, fp16 CLIP). The text
// context is random (the text encoder has its own GPU test). Skips without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "io/image_reader.h"
#include "model/sampling/latent_shape.h"
#include "model/sampling/philox_noise.h"
#include "model/sampling/sampler.h"
#include "model/wan/clip_loader.h"
#include "model/wan/dit_loader.h"
#include "model/wan/image_conditioning.h"
#include "model/wan/image_sizes.h"
#include "model/wan/test_clip.h"
#include "model/wan/test_model.h"
#include "model/wan/test_vae.h"
#include "model/wan/vae_loader.h"
#include "reference_match.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

namespace wan = model::wan;
namespace sampling = model::sampling;
using core::DType;
using core::Tensor;

struct Kind {
  std::string variant;  // a tiny preset
  bool two_experts, clip;
};

// A 100×60 image of smooth gradients and a little noise (the models are random, so only the
// plumbing matters; an image that is not constant shows a swapped axis).
io::Rgb8Image test_image() {
  io::Rgb8Image image;
  image.width = 100;
  image.height = 60;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> noise(0, 15);
  for (int64_t y = 0; y < image.height; ++y) {
    for (int64_t x = 0; x < image.width; ++x) {
      image.pixels.push_back(static_cast<uint8_t>(2 * x + noise(rng)));
      image.pixels.push_back(static_cast<uint8_t>(4 * y + noise(rng)));
      image.pixels.push_back(static_cast<uint8_t>(120 + noise(rng)));
    }
  }
  return image;
}

class CudaImageToVideo : public testing::TempDirTest, public ::testing::WithParamInterface<Kind> {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
    const Kind& kind = GetParam();
    wan::TestModelOptions options;
    options.variant = kind.variant;
    options.output_dir = (dir_ / "dit").string();
    options.seed = 3;
    dits_ = wan::write_test_model(options);
    config_ = wan::preset(kind.variant);
    vae_ = (dir_ / "vae.safetensors").string();
    wan::write_test_vae(
        config_.out_dim == 48 ? wan::VaeConfig::Kind::Wan22 : wan::VaeConfig::Kind::Wan21, vae_, 5);
    if (kind.clip) {
      clip_ = (dir_ / "clip.safetensors").string();
      wan::write_test_clip(clip_, wan::tiny_clip_config(), 9);
    }
  }

  // The chain on `ctx`: GEMMs in `gemm` (the DiT) and `clip_dtype` (the CLIP tower).
  std::vector<float> latents(const core::Context& ctx, DType gemm, DType clip_dtype,
                             double* seconds) {
    const Kind& kind = GetParam();
    const io::Rgb8Image image = test_image();
    constexpr int64_t kFrames = 5;
    // Budget 64×64 (the item's width × height).
    const bool ti2v = config_.in_dim == 48;
    const wan::PixelSize size = ti2v ? wan::ti2v_size(image.width, image.height, 64 * 64)
                                     : wan::i2v_size(image.width, image.height, 64 * 64);
    auto load_options = wan::DitLoadOptions::with_num_heads(config_.num_heads);
    load_options.gemm_dtype = gemm;
    std::optional<wan::WanDit> low, high;
    low.emplace(wan::load_dit(dits_.back(), ctx, load_options));
    if (kind.two_experts) high.emplace(wan::load_dit(dits_.front(), ctx, load_options));
    wan::WanVae vae = wan::load_vae(vae_, ctx);

    const auto start = std::chrono::steady_clock::now();
    sampling::SampleConditions conditions;
    std::mt19937_64 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto random = [&](core::Shape shape) {
      std::vector<float> v(static_cast<size_t>(core::shape_numel(shape)));
      for (float& x : v) x = normal(rng);
      return Tensor::from_vector(v, shape);
    };
    conditions.context = random({7, config_.text_dim});
    conditions.context_null = random({5, config_.text_dim});
    if (ti2v) {
      conditions.first_frame = wan::ti2v_first_frame(ctx, vae, wan::ti2v_image(image, size));
    } else {
      conditions.y = wan::i2v_condition(ctx, vae, wan::i2v_image(image, size), kFrames);
    }
    if (kind.clip) {
      wan::ClipVision clip = wan::load_clip_vision(clip_, ctx, clip_dtype);
      conditions.clip = clip.encode(ctx, io::rgb8_to_tensor(image));
    }
    sampling::SamplerOptions options;
    options.steps = 3;
    options.shift = 5.0;
    options.guide_scale = 3.5;
    options.guide_scale_high = 4.0;
    options.boundary = 0.9;
    const Tensor noise = sampling::initial_noise(
        1, sampling::latent_shape(config_.out_dim, size.width, size.height, kFrames));
    const sampling::SampleResult result = sampling::sample(
        ctx, {&*low, high ? &*high : nullptr}, options, noise.to(ctx.device()), conditions);
    const std::vector<float> out = result.latents.to(core::Device::cpu()).to_floats();
    *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  }

  std::vector<std::string> dits_;  // [high, low] for two experts, else the one model
  wan::DitConfig config_;
  std::string vae_, clip_;
};

TEST_P(CudaImageToVideo, MatchesTheCpu) {
  double cpu_s = 0, gpu32_s = 0, gpu_s = 0;
  const std::vector<float> cpu = latents(core::Context::cpu(), DType::F32, DType::F32, &cpu_s);
  const core::Context gpu = core::Context::cuda(0);
  const std::vector<float> gpu32 = latents(gpu, DType::F32, DType::F32, &gpu32_s);
  const std::vector<float> gpu_low = latents(gpu, DType::BF16, DType::F16, &gpu_s);
  std::printf("%s: cpu %.3f s, gpu fp32 %.3f s, gpu bf16 %.3f s\n", GetParam().variant.c_str(),
              cpu_s, gpu32_s, gpu_s);
  // fp32 everywhere: the VAE's convolutions, the DiT and CLIP sum in other orders on the GPU
  // (1e-4: the sampling loop tests' bound for fp32 GPU loops).
  EXPECT_TRUE(testing::matches_reference(gpu32, cpu, 1e-4)) << GetParam().variant;
  // bf16 GEMMs and fp16 CLIP over three guided steps: the bf16 loop tests' 3e-2 (a wrong buffer
  // or a lost condition is off by order 1).
  EXPECT_TRUE(testing::matches_reference(gpu_low, cpu, 3e-2)) << GetParam().variant;
}

INSTANTIATE_TEST_SUITE_P(Kinds, CudaImageToVideo,
                         ::testing::Values(Kind{"tiny-i2v-a14b", true, false},
                                           Kind{"tiny-i2v-clip", false, true},
                                           Kind{"tiny-ti2v", false, false}),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           std::string name = info.param.variant;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace wanbatch
