// The sampling loop split over ranks (mpirun -np 2 and 4): CFG-parallel (the prompt and the
// negative prompt on a pair of ranks, one all-gather per guided step), alone and with Ulysses,
// against the same loop on one rank and against the float64 reference loops. On the CPU, and on
// GPUs over NCCL when every rank has one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/context.h"
#include "gpu_per_rank.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"
#include "reference_match.h"
#include "sampling_case.h"

namespace wanbatch {
namespace {

using core::Tensor;

class SamplerParallel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { world_ = parallel::world(runtime_); }

  // The case's latents with `cfg_parallel` and sp = `sp` over this world (the rest data
  // parallel), on ctx.
  std::vector<float> split_loop(const core::Context& ctx, int sp, bool cfg_parallel,
                                std::optional<core::DType> gemm) {
    testing::SamplingCase c(GetParam(), ctx, gemm);
    const parallel::Groups groups = parallel::Groups::make(
        *world_, sp, cfg_parallel, static_cast<int>(c.low.config().num_heads), ctx);
    c.low.set_sequence_parallel(groups.sp.get());
    if (c.high) c.high->set_sequence_parallel(groups.sp.get());
    c.options.cfg = groups.cfg.get();
    const std::vector<float> latents = c.sample(ctx).latents.to(core::Device::cpu()).to_floats();
    c.low.set_sequence_parallel(nullptr);
    if (c.high) c.high->set_sequence_parallel(nullptr);
    return latents;
  }

  parallel::MpiRuntime runtime_;
  std::unique_ptr<parallel::Comm> world_;
};

// fp32 on the CPU: 1e-5 against one rank (only summation orders differ: one context per forward
// instead of a batch of two, sequence-split GEMMs) and 2e-5 against the reference, as one rank.
TEST_P(SamplerParallel, CfgParallelOnTheCpuMatchesOneRank) {
  const core::Context cpu = core::Context::cpu();
  testing::SamplingCase one(GetParam(), cpu);
  const std::vector<float> single = one.sample(cpu).latents.to_floats();
  const std::vector<float> reference = one.file->tensor("latents").to_floats();
  std::vector<std::pair<int, bool>> splits = {{1, true}};
  if (world_->size() % 4 == 0) splits.push_back({2, true});
  for (const auto& [sp, cfg] : splits) {
    const std::vector<float> got = split_loop(cpu, sp, cfg, std::nullopt);
    EXPECT_TRUE(testing::matches_reference(got, single, 1e-5)) << "sp " << sp << " cfg " << cfg;
    EXPECT_TRUE(testing::matches_reference(got, reference, 2e-5)) << "sp " << sp;
  }
}

// On GPUs (one per rank, NCCL), fp32 GEMMs: against one GPU's loop within 1e-4 (the GPU's fp32
// functions and other summation orders over the steps).
TEST_P(SamplerParallel, CfgParallelOnGpusMatchesOneGpu) {
  if (!testing::every_rank_has_a_gpu(*world_)) GTEST_SKIP() << "needs a GPU per rank";
  const core::Context gpu = core::Context::cuda(world_->rank() % core::cuda_device_count());
  testing::SamplingCase one(GetParam(), gpu, core::DType::F32);
  const std::vector<float> single = one.sample(gpu).latents.to(core::Device::cpu()).to_floats();
  const std::vector<float> got = split_loop(gpu, 1, true, core::DType::F32);
  EXPECT_TRUE(testing::matches_reference(got, single, 1e-4));
}

// The cases with guidance (the third reference loop has none, so CFG-parallel does nothing).
INSTANTIATE_TEST_SUITE_P(Reference, SamplerParallel, ::testing::Values("unipc_moe_cfg", "dpm_cfg"));
// Image conditions: TI2V's per-token timesteps split over the Ulysses ranks, I2V's y.
INSTANTIATE_TEST_SUITE_P(Image, SamplerParallel,
                         ::testing::Values("ti2v_unipc_cfg", "i2v_moe_cfg"));

}  // namespace
}  // namespace wanbatch
