// Sharded DiT weights (issue 9) on the ranks mpirun gives (2 and 4): every block's parameters split
// over the ranks, gathered before each block, and offloaded ones (--offload blocks: the blocks, or
// the shards, wait in host memory and are copied in a block ahead). The forward equals the
// resident, unsharded one bit for bit (the gathered weights are the same numbers), alone and under
// Ulysses, for the reference cases of every variant, with f32 and bf16 GEMMs; each rank holds
// about 1/N of the block parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/context.h"
#include "core/ops.h"
#include "dit_case.h"
#include "fixture_path.h"
#include "gpu_per_rank.h"
#include "io/safetensors.h"
#include "model/wan/dit_loader.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"
#include "reference_match.h"

namespace wanbatch {
namespace {

using core::Tensor;
using model::wan::DitInput;

class DitSharded : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { world_ = parallel::world(runtime_); }
  parallel::MpiRuntime runtime_;
  std::unique_ptr<parallel::Comm> world_;
};

TEST_P(DitSharded, EqualsTheUnshardedForwardBitForBit) {
  const core::Context ctx = core::Context::cpu();
  const std::string weights = testing::fixture_path("dit_" + GetParam() + ".weights.safetensors");
  auto io =
      io::SafetensorsFile::open(testing::fixture_path("dit_" + GetParam() + ".io.safetensors"));
  const DitInput input = testing::read_dit_input(*io);
  const core::Shape shape = io->tensor("velocity").shape();
  const int64_t heads = std::stoll(io->metadata().at("num_heads"));

  for (const core::DType dtype : {core::DType::F32, core::DType::BF16}) {
    auto options = model::wan::DitLoadOptions::with_num_heads(heads);
    options.gemm_dtype = dtype;
    model::wan::WanDit whole = model::wan::load_dit(weights, ctx, options);
    for (const bool offload : {false, true}) {
      options.shard_comm = world_.get();
      options.offload_blocks = offload;
      model::wan::WanDit sharded = model::wan::load_dit(weights, ctx, options);
      const std::string what =
          GetParam() + " " + std::string(core::dtype_name(dtype)) + (offload ? " offloaded" : "");
      // Each rank's share: the block parameters over N, plus at most one padding element per
      // group and block; offloaded, they wait in host memory instead.
      const size_t n = static_cast<size_t>(world_->size());
      const size_t share = whole.resident_block_bytes() / n + 2 * 4 * sharded.config().num_layers;
      EXPECT_LE(offload ? sharded.offloaded_block_bytes() : sharded.resident_block_bytes(), share)
          << what;

      Tensor want = Tensor::empty(shape, core::DType::F32);
      whole.forward(ctx, input, want);
      Tensor got = Tensor::empty(shape, core::DType::F32);
      for (int pass = 0; pass < 2; ++pass) {  // the second reuses the buffers
        core::ops::fill(ctx, got, std::nanf(""));
        sharded.forward(ctx, input, got);
        EXPECT_EQ(got.to_floats(), want.to_floats()) << what << ", forward " << pass + 1;
      }

      // Under Ulysses over the same ranks: sharded equals unsharded, both split.
      const parallel::Groups groups =
          parallel::Groups::make(*world_, world_->size(), false, static_cast<int>(heads));
      whole.set_sequence_parallel(groups.sp.get());
      sharded.set_sequence_parallel(groups.sp.get());
      whole.forward(ctx, input, want);
      sharded.forward(ctx, input, got);
      EXPECT_EQ(got.to_floats(), want.to_floats()) << what << " with Ulysses";
      whole.set_sequence_parallel(nullptr);
    }
    // Offloaded without sharding: each rank's whole model waits in host memory.
    options.shard_comm = nullptr;
    options.offload_blocks = true;
    model::wan::WanDit offloaded = model::wan::load_dit(weights, ctx, options);
    EXPECT_EQ(offloaded.offloaded_block_bytes(), whole.resident_block_bytes());
    Tensor want = Tensor::empty(shape, core::DType::F32);
    whole.forward(ctx, input, want);
    Tensor got = Tensor::empty(shape, core::DType::F32);
    core::ops::fill(ctx, got, std::nanf(""));
    offloaded.forward(ctx, input, got);
    EXPECT_EQ(got.to_floats(), want.to_floats()) << GetParam() << " offloaded, unsharded";
  }
}

// A LoRA is merged block by block as the shards are cut (no rank holds the whole merged model):
// the sharded model with the LoRA equals the unsharded one with it, bit for bit, and matches the
// reference's merged forward.
TEST(DitShardedLora, EqualsTheUnshardedMergedModel) {
  parallel::MpiRuntime runtime;
  const std::unique_ptr<parallel::Comm> world = parallel::world(runtime);
  const core::Context ctx = core::Context::cpu();
  auto io = io::SafetensorsFile::open(testing::fixture_path("dit_lora.io.safetensors"));
  const DitInput input = testing::read_dit_input(*io);
  const core::Shape shape = io->tensor("velocity").shape();
  auto options =
      model::wan::DitLoadOptions::with_num_heads(std::stoll(io->metadata().at("num_heads")));
  options.loras.push_back({testing::fixture_path("dit_lora.lora.safetensors"),
                           std::stof(io->metadata().at("lora_strength"))});
  const std::string weights = testing::fixture_path("dit_lora.weights.safetensors");
  model::wan::WanDit whole = model::wan::load_dit(weights, ctx, options);
  options.shard_comm = world.get();
  model::wan::WanDit sharded = model::wan::load_dit(weights, ctx, options);
  Tensor want = Tensor::empty(shape, core::DType::F32);
  whole.forward(ctx, input, want);
  Tensor got = Tensor::empty(shape, core::DType::F32);
  core::ops::fill(ctx, got, std::nanf(""));
  sharded.forward(ctx, input, got);
  EXPECT_EQ(got.to_floats(), want.to_floats());
  // 1e-5: the reference tests' bound for fp32 forwards (tests/unit/model/dit_test.cpp).
  EXPECT_TRUE(
      testing::matches_reference(got.to_floats(), io->tensor("velocity").to_floats(), 1e-5));
}

// On GPUs, one per rank, the shards gathered over NCCL: against the unsharded model on the same
// GPU. The gathered weights are the same numbers, but views into one buffer may be aligned
// differently, and cuBLASLt may then pick another algorithm: 1e-5 relative for fp32 GEMMs, 1e-2
// for bf16 (a rounding may flip).
TEST_P(DitSharded, OnGpusMatchesTheUnshardedModel) {
  if (!testing::every_rank_has_a_gpu(*world_)) GTEST_SKIP() << "needs a GPU per rank";
  const core::Context gpu = core::Context::cuda(world_->rank() % core::cuda_device_count());
  const std::string weights = testing::fixture_path("dit_" + GetParam() + ".weights.safetensors");
  auto io =
      io::SafetensorsFile::open(testing::fixture_path("dit_" + GetParam() + ".io.safetensors"));
  const DitInput input = testing::read_dit_input(*io, gpu.device());
  const core::Shape shape = io->tensor("velocity").shape();
  const int64_t heads = std::stoll(io->metadata().at("num_heads"));
  const parallel::Groups groups =
      parallel::Groups::make(*world_, world_->size(), false, static_cast<int>(heads), gpu);
  for (const core::DType dtype : {core::DType::F32, core::DType::BF16}) {
    auto options = model::wan::DitLoadOptions::with_num_heads(heads);
    options.gemm_dtype = dtype;
    model::wan::WanDit whole = model::wan::load_dit(weights, gpu, options);
    Tensor want = Tensor::empty(shape, core::DType::F32, gpu.device());
    whole.forward(gpu, input, want);
    // Sharded; sharded with the shards in host memory; whole blocks in host memory.
    for (const auto& [shard, offload] : {std::pair{true, false}, {true, true}, {false, true}}) {
      options.shard_comm = shard ? groups.sp.get() : nullptr;
      options.offload_blocks = offload;
      model::wan::WanDit placed = model::wan::load_dit(weights, gpu, options);
      Tensor got = Tensor::empty(shape, core::DType::F32, gpu.device());
      for (int pass = 0; pass < 2; ++pass) {  // the second reuses the buffers
        core::ops::fill(gpu, got, std::nanf(""));
        placed.forward(gpu, input, got);
        EXPECT_TRUE(testing::matches_reference(got.to(core::Device::cpu()).to_floats(),
                                               want.to(core::Device::cpu()).to_floats(),
                                               dtype == core::DType::F32 ? 1e-5 : 1e-2))
            << GetParam() << " " << core::dtype_name(dtype) << (shard ? " sharded" : "")
            << (offload ? " offloaded" : "") << ", forward " << pass + 1;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, DitSharded,
                         ::testing::Values("t2v", "t2v_bf16", "ti2v", "i2v_clip"));

}  // namespace
}  // namespace wanbatch
