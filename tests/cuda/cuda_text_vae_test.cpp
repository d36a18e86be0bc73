// The umT5 text encoder and both Wan VAEs on the GPU against the float64 NumPy references (the
// fixtures the CPU tests use): the same networks through the CUDA kernels, in fp32. Skips without
// a GPU.
#include <gtest/gtest.h>

#include <map>
#include <cmath>
#include <string>

#include "core/context.h"
#include "core/ops.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "model/wan/t5_loader.h"
#include "model/wan/vae.h"
#include "reference_match.h"

namespace wanbatch {
namespace {

using core::Tensor;

class CudaTextVae : public ::testing::Test {
 protected:
  void SetUp() override {
    if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
  }
};

std::vector<float> host_floats(const Tensor& t) { return t.to(core::Device::cpu()).to_floats(); }

TEST_F(CudaTextVae, T5MatchesTheReference) {
  const auto io = io::SafetensorsFile::open(testing::fixture_path("t5.io.safetensors"));
  const auto meta = io->metadata();
  const core::Context ctx = core::Context::cuda(0);
  model::wan::T5Encoder encoder =
      model::wan::load_t5_encoder(testing::fixture_path("t5.weights.safetensors"), ctx);
  for (int k = 0; k < std::stoi(meta.at("cases")); ++k) {
    const std::string key = std::to_string(k);
    const int64_t length = std::stoll(meta.at("length_" + key));
    // fp32 on the GPU against float64: 1e-4 (the CPU meets 1e-5; the GPU's fp32 exp and the
    // attention kernel's summation order add a little).
    EXPECT_TRUE(testing::matches_reference(
        host_floats(encoder.encode(ctx, io->tensor("ids_" + key), length)),
        io->tensor("context_" + key).to_floats(), 1e-4))
        << "case " << k;
  }
}

void expect_vae_matches(const std::string& name) {
  auto weights = io::SafetensorsFile::open(testing::fixture_path(name + ".weights.safetensors"));
  auto io = io::SafetensorsFile::open(testing::fixture_path(name + ".io.safetensors"));
  std::map<std::string, Tensor> tensors;
  for (const std::string& n : weights->names()) tensors.emplace(n, weights->tensor(n));
  const core::Context ctx = core::Context::cuda(0);
  model::wan::WanVae vae(tensors, ctx);
  const core::Device gpu = ctx.device();
  // 1e-4 relative, as the CPU test: fp32 convolutions without TF32 through ~40 layers.
  const Tensor latents = io->tensor("latents").to(gpu);
  Tensor video = Tensor::empty(vae.decoded_shape(latents.shape()), core::DType::F32, gpu);
  core::ops::fill(ctx, video, std::nanf(""));
  vae.decode(ctx, latents, video);
  EXPECT_TRUE(testing::matches_reference(host_floats(video), io->tensor("video").to_floats(), 1e-4))
      << name << " decode";
  const Tensor video_in = io->tensor("video_in").to(gpu);
  Tensor got = Tensor::empty(vae.encoded_shape(video_in.shape()), core::DType::F32, gpu);
  core::ops::fill(ctx, got, std::nanf(""));
  vae.encode(ctx, video_in, got);
  EXPECT_TRUE(
      testing::matches_reference(host_floats(got), io->tensor("latents_out").to_floats(), 1e-4))
      << name << " encode";
}

TEST_F(CudaTextVae, Wan21VaeMatchesTheReference) { expect_vae_matches("vae21"); }
TEST_F(CudaTextVae, Wan22VaeMatchesTheReference) { expect_vae_matches("vae22"); }

}  // namespace
}  // namespace wanbatch
