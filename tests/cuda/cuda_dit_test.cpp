// The Wan DiT on the GPU (bf16 GEMMs and attention, fp32 residual, as load_dit gives on CUDA)
// against the same precision on the CPU and against the float64 NumPy reference, for the
// reference cases of every variant; and with fp32 GEMMs on the GPU against the CPU reference
// tightly. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/context.h"
#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "dit_case.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "model/wan/dit_loader.h"
#include "reference_match.h"

namespace wanbatch::model::wan {
namespace {

std::string fixture(const std::string& name) { return wanbatch::testing::fixture_path(name); }

std::vector<float> velocity_of(const std::string& name, const core::Context& ctx,
                               core::DType gemm_dtype) {
  auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
  DitLoadOptions options =
      DitLoadOptions::with_num_heads(std::stoll(io->metadata().at("num_heads")));
  options.gemm_dtype = gemm_dtype;
  WanDit dit = load_dit(fixture("dit_" + name + ".weights.safetensors"), ctx, options);
  const DitInput input = wanbatch::testing::read_dit_input(*io, ctx.device());
  core::Tensor velocity =
      core::Tensor::empty(io->tensor("velocity").shape(), core::DType::F32, ctx.device());
  core::ops::fill(ctx, velocity, std::nanf(""));
  dit.forward(ctx, input, velocity);
  return velocity.to(core::Device::cpu()).to_floats();
}

class CudaDit : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
  }
};

TEST_P(CudaDit, Bf16MatchesTheCpuAtTheSamePrecisionAndTheReference) {
  const std::string name = GetParam();
  auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
  const std::vector<float> gpu = velocity_of(name, core::Context::cuda(0), core::DType::BF16);
  const std::vector<float> cpu = velocity_of(name, core::Context::cpu(), core::DType::BF16);
  // Both round the same activations to bf16 but sum in other orders, so a value can land on the
  // neighbouring bf16 number and carry that through: 1e-2 relative between the two, 2e-2 to the
  // float64 reference (what the CPU's bf16 path meets, tests/unit/model/dit_test.cpp).
  EXPECT_TRUE(wanbatch::testing::matches_reference(gpu, cpu, 1e-2)) << name;
  EXPECT_TRUE(wanbatch::testing::matches_reference(gpu, io->tensor("velocity").to_floats(), 2e-2))
      << name;
}

TEST_P(CudaDit, Fp32GemmsMatchTheReferenceTightly) {
  const std::string name = GetParam();
  auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
  const std::vector<float> gpu = velocity_of(name, core::Context::cuda(0), core::DType::F32);
  // fp32 throughout, fp32 GEMMs without TF32: only summation orders differ (1e-4: the GPU's
  // transcendental functions in fp32 add a little to the CPU's 1e-5).
  EXPECT_TRUE(wanbatch::testing::matches_reference(gpu, io->tensor("velocity").to_floats(), 1e-4))
      << name;
}

// --offload model on the GPU: the weights go to pinned host memory and back bit for bit, the
// device memory is given back, and the forward is the same.
TEST_P(CudaDit, OffloadedModelComesBackUnchanged) {
  const std::string name = GetParam();
  const core::Context ctx = core::Context::cuda(0);
  auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
  WanDit dit = load_dit(fixture("dit_" + name + ".weights.safetensors"), ctx,
                        DitLoadOptions::with_num_heads(std::stoll(io->metadata().at("num_heads"))));
  const DitInput input = wanbatch::testing::read_dit_input(*io, ctx.device());
  const core::Shape shape = io->tensor("velocity").shape();
  core::Tensor before = core::Tensor::empty(shape, core::DType::F32, ctx.device());
  dit.forward(ctx, input, before);
  ctx.synchronize();
  const size_t in_use = core::cuda::current_device_bytes(0);
  const size_t weights = dit.resident_weight_bytes();
  dit.set_resident(false);
  ctx.synchronize();
  EXPECT_LE(core::cuda::current_device_bytes(0) + weights, in_use);
  dit.set_resident(true);
  core::Tensor after = core::Tensor::empty(shape, core::DType::F32, ctx.device());
  dit.forward(ctx, input, after);
  EXPECT_EQ(after.to(core::Device::cpu()).to_floats(), before.to(core::Device::cpu()).to_floats())
      << name;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaDit,
                         ::testing::Values("t2v", "t2v_bf16", "ti2v", "i2v", "i2v_clip"));

}  // namespace
}  // namespace wanbatch::model::wan
