// The whole sampling loop on the GPU (solvers, guidance, the expert switch, the DiT) against the
// float64 reference loops the CPU test uses, with fp32 GEMMs; and with bf16 GEMMs against the CPU
// running the same precision. Skips without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/context.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "reference_match.h"
#include "sampling_case.h"

namespace wanbatch::model::sampling {
namespace {

std::string fixture(const std::string& name) { return wanbatch::testing::fixture_path(name); }

std::vector<float> run_loop(const std::string& name, const core::Context& ctx,
                            core::DType gemm_dtype) {
  wanbatch::testing::SamplingCase c(name, ctx, gemm_dtype);
  return c.sample(ctx).latents.to(core::Device::cpu()).to_floats();
}

class CudaSamplingLoop : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
  }
};

TEST_P(CudaSamplingLoop, Fp32MatchesTheReferenceLoop) {
  const auto file =
      io::SafetensorsFile::open(fixture("sampling_loop_" + GetParam() + ".safetensors"));
  // The CPU meets 2e-5; the GPU's fp32 transcendental functions and summation orders add a
  // little over the steps: 1e-4.
  EXPECT_TRUE(wanbatch::testing::matches_reference(
      run_loop(GetParam(), core::Context::cuda(0), core::DType::F32),
      file->tensor("latents").to_floats(), 1e-4));
}

TEST_P(CudaSamplingLoop, Bf16MatchesTheCpuAtTheSamePrecision) {
  // Both sides round the same activations to bf16 but sum in other orders; guidance (up to 4×)
  // and the steps carry a flipped bf16 rounding along: 3e-2 relative between the two.
  EXPECT_TRUE(wanbatch::testing::matches_reference(
      run_loop(GetParam(), core::Context::cuda(0), core::DType::BF16),
      run_loop(GetParam(), core::Context::cpu(), core::DType::BF16), 3e-2));
}

INSTANTIATE_TEST_SUITE_P(Reference, CudaSamplingLoop,
                         ::testing::Values("unipc_moe_cfg", "dpm_cfg", "euler_moe_nocfg"));
// TI2V (first frame, per-token timesteps) and I2V (y, two experts).
INSTANTIATE_TEST_SUITE_P(Image, CudaSamplingLoop,
                         ::testing::Values("ti2v_unipc_cfg", "i2v_moe_cfg"));

}  // namespace
}  // namespace wanbatch::model::sampling
