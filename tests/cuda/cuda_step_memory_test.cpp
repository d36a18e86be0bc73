// "No allocation inside a denoising step" (DESIGN.md "Principles") on the GPU: after the step
// that plans a model's buffers, a sampling step allocates no device tensor, leaves the pool's
// reserved memory where it was and the memory in tensors where it was; a DiT forward repeated on
// the same shape does the same. Counted with core::device_pool_stats after synchronizing, so
// every free queued on the stream has happened. Skips without a GPU.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/memory_stats.h"
#include "dit_case.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "model/wan/dit_loader.h"
#include "sampling_case.h"

namespace wanbatch {
namespace {

using core::DevicePoolStats;

std::string fixture(const std::string& name) { return testing::fixture_path(name); }

DevicePoolStats settled_stats(const core::Context& ctx) {
  ctx.synchronize();  // the frees queued on the stream have happened
  return core::device_pool_stats(ctx);
}

// Every change between two readings, or "" when there is none.
std::string changes(const DevicePoolStats& before, const DevicePoolStats& after) {
  std::ostringstream text;
  if (after.allocations != before.allocations) {
    text << " " << after.allocations - before.allocations << " allocations;";
  }
  if (after.reserved != before.reserved) {
    text << " reserved " << before.reserved << " -> " << after.reserved << " bytes;";
  }
  if (after.in_use != before.in_use) {
    text << " in use " << before.in_use << " -> " << after.in_use << " bytes;";
  }
  return text.str();
}

class CudaStepMemory : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
  }
};

TEST(CudaDevicePoolStats, CountTensorsAndTheirMemory) {
  if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
  const core::Context ctx = core::Context::cuda(0);
  const DevicePoolStats before = settled_stats(ctx);
  DevicePoolStats held;
  {
    const core::Tensor t = core::Tensor::empty({1 << 20}, core::DType::F32, ctx.device());
    held = settled_stats(ctx);
    EXPECT_EQ(held.allocations, before.allocations + 1);
    EXPECT_GE(held.in_use, before.in_use + t.nbytes());
    EXPECT_GE(held.reserved, held.in_use);
  }
  const DevicePoolStats after = settled_stats(ctx);
  EXPECT_EQ(after.in_use, before.in_use);    // freed back to the pool ...
  EXPECT_EQ(after.reserved, held.reserved);  // ... which keeps it (release threshold: never)
  EXPECT_EQ(after.allocations, held.allocations);
}

// Runs reference case `name`'s whole loop (bf16 GEMMs, as on CUDA by default) and checks every
// step but the warm-ups: step 0 plans the first expert's buffers and the solver's history, and
// the step at the expert switch plans the other expert's (with offload_models it also brings that
// expert's weights back and sends the other's away). Those may allocate, once each.
void expect_quiet_steps(const std::string& name, bool offload_models) {
  const core::Context ctx = core::Context::cuda(0);
  testing::SamplingCase c(name, ctx);
  c.options.offload_models = offload_models;
  std::vector<DevicePoolStats> after_step;
  c.options.after_step = [&](int) { after_step.push_back(settled_stats(ctx)); };
  const model::sampling::SampleResult result = c.sample(ctx);
  ASSERT_EQ(after_step.size(), static_cast<size_t>(c.options.steps));
  ASSERT_EQ(result.high_noise_steps.size(), after_step.size());
  int checked = 0;
  for (size_t k = 1; k < after_step.size(); ++k) {
    if (result.high_noise_steps[k] != result.high_noise_steps[k - 1]) continue;  // the switch
    EXPECT_EQ(changes(after_step[k - 1], after_step[k]), "")
        << name << ": step " << k << " (0-based) changed the device pool";
    ++checked;
  }
  EXPECT_GE(checked, 1) << name << ": no step after the warm-up to check";
}

// CFG as a batch of two, the expert switch, TI2V's per-token timesteps and first frame, I2V's y.
TEST_P(CudaStepMemory, StepsAfterTheWarmUpAllocateNothing) {
  expect_quiet_steps(GetParam(), false);
}

// --offload model: only the expert in use is on the device.
TEST_P(CudaStepMemory, WithOffloadedExpertsOnlyTheSwitchAllocates) {
  expect_quiet_steps(GetParam(), true);
}

INSTANTIATE_TEST_SUITE_P(Loops, CudaStepMemory,
                         ::testing::Values("unipc_moe_cfg", "dpm_cfg", "euler_moe_nocfg",
                                           "ti2v_unipc_cfg", "i2v_moe_cfg"));

class CudaForwardMemory : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (core::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
  }
};

// The DiT on one input shape: the first forward plans the activation buffers; the next ones
// reuse them and allocate nothing (TI2V: per-token timesteps; I2V: y and the CLIP branch).
TEST_P(CudaForwardMemory, RepeatedForwardsAllocateNothing) {
  const std::string name = GetParam();
  const core::Context ctx = core::Context::cuda(0);
  auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
  model::wan::WanDit dit = model::wan::load_dit(
      fixture("dit_" + name + ".weights.safetensors"), ctx,
      model::wan::DitLoadOptions::with_num_heads(std::stoll(io->metadata().at("num_heads"))));
  const model::wan::DitInput input = testing::read_dit_input(*io, ctx.device());
  core::Tensor velocity =
      core::Tensor::empty(io->tensor("velocity").shape(), core::DType::F32, ctx.device());
  dit.forward(ctx, input, velocity);
  const DevicePoolStats planned = settled_stats(ctx);
  for (int i = 1; i <= 3; ++i) {
    dit.forward(ctx, input, velocity);
    EXPECT_EQ(changes(planned, settled_stats(ctx)), "")
        << name << ": forward " << i + 1 << " changed the device pool";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaForwardMemory,
                         ::testing::Values("t2v", "t2v_bf16", "ti2v", "i2v_clip"));

}  // namespace
}  // namespace wanbatch
