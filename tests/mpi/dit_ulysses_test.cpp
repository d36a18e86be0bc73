// Ulysses sequence parallelism inside the DiT, on the ranks mpirun gives (2 and 4): every reference
// case (T2V 45 tokens, TI2V 63 tokens with per-token timesteps, Wan2.2 I2V, Wan2.1 I2V with CLIP,
// bf16 weights) run with sp 2 and sp 4 — token counts that need padding — matches the float64 NumPy
// reference to 1e-5 relative and the one-rank forward on the same rank to 1e-5 relative (the only
// difference is the order of the additions), also for a CFG batch of two contexts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

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
using model::wan::WanDit;

struct Case {
  WanDit dit;
  DitInput input;
  Tensor expected;
};

Case load_case(const std::string& name, const core::Context& ctx) {
  const std::string weights = testing::fixture_path("dit_" + name + ".weights.safetensors");
  auto io = io::SafetensorsFile::open(testing::fixture_path("dit_" + name + ".io.safetensors"));
  const int64_t heads = std::stoll(io->metadata().at("num_heads"));
  Case c{model::wan::load_dit(weights, ctx, model::wan::DitLoadOptions::with_num_heads(heads)),
         {},
         io->tensor("velocity")};
  c.input = testing::read_dit_input(*io);
  return c;
}

class DitUlysses : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { world_ = parallel::world(runtime_); }
  parallel::MpiRuntime runtime_;
  std::unique_ptr<parallel::Comm> world_;
};

TEST_P(DitUlysses, MatchesTheReferenceAndOneRank) {
  const core::Context ctx = core::Context::cpu();
  Case c = load_case(GetParam(), ctx);
  Tensor one_rank = Tensor::empty(c.expected.shape(), core::DType::F32);
  c.dit.forward(ctx, c.input, one_rank);

  for (int sp : {2, 4}) {
    if (sp > world_->size() || world_->size() % sp != 0) continue;
    const parallel::Groups groups =
        parallel::Groups::make(*world_, sp, false, static_cast<int>(c.dit.config().num_heads));
    c.dit.set_sequence_parallel(groups.sp.get());
    Tensor velocity = Tensor::empty(c.expected.shape(), core::DType::F32);
    core::ops::fill(ctx, velocity, std::nanf(""));
    c.dit.forward(ctx, c.input, velocity);
    EXPECT_TRUE(testing::matches_reference(velocity.to_floats(), c.expected.to_floats(), 1e-5))
        << GetParam() << " sp " << sp << " rank " << world_->rank();
    EXPECT_TRUE(testing::matches_reference(velocity.to_floats(), one_rank.to_floats(), 1e-5))
        << GetParam() << " sp " << sp << " rank " << world_->rank();

    // A CFG batch: the prompt and a shorter second context, against the one-rank batch.
    const Tensor second = c.input.context.slice(0, 1);
    Tensor a = Tensor::empty(c.expected.shape(), core::DType::F32);
    Tensor b = Tensor::empty(c.expected.shape(), core::DType::F32);
    c.dit.forward(ctx, c.input, {&c.input.context, &second}, {&a, &b});
    c.dit.set_sequence_parallel(nullptr);
    Tensor a1 = Tensor::empty(c.expected.shape(), core::DType::F32);
    Tensor b1 = Tensor::empty(c.expected.shape(), core::DType::F32);
    c.dit.forward(ctx, c.input, {&c.input.context, &second}, {&a1, &b1});
    EXPECT_TRUE(testing::matches_reference(a.to_floats(), a1.to_floats(), 1e-5)) << "sp " << sp;
    EXPECT_TRUE(testing::matches_reference(b.to_floats(), b1.to_floats(), 1e-5)) << "sp " << sp;
  }
}

// On GPUs (one per rank, NCCL between them), when every rank has one: sp = all ranks against the
// one-GPU forward on each rank. fp32 GEMMs: 1e-4 relative (the GPU's fp32 functions and the
// exchange's other summation order); bf16: 1e-2 (a bf16 rounding may flip either way).
TEST_P(DitUlysses, OnGpusMatchesOneGpu) {
  if (!testing::every_rank_has_a_gpu(*world_)) GTEST_SKIP() << "needs a GPU per rank";
  const core::Context gpu = core::Context::cuda(world_->rank() % core::cuda_device_count());
  for (const core::DType dtype : {core::DType::F32, core::DType::BF16}) {
    const std::string weights = testing::fixture_path("dit_" + GetParam() + ".weights.safetensors");
    auto io =
        io::SafetensorsFile::open(testing::fixture_path("dit_" + GetParam() + ".io.safetensors"));
    auto options =
        model::wan::DitLoadOptions::with_num_heads(std::stoll(io->metadata().at("num_heads")));
    options.gemm_dtype = dtype;
    WanDit dit = model::wan::load_dit(weights, gpu, options);
    const DitInput input = testing::read_dit_input(*io, gpu.device());
    const core::Shape shape = io->tensor("velocity").shape();
    Tensor one = Tensor::empty(shape, core::DType::F32, gpu.device());
    dit.forward(gpu, input, one);
    const parallel::Groups groups = parallel::Groups::make(
        *world_, world_->size(), false, static_cast<int>(dit.config().num_heads), gpu);
    dit.set_sequence_parallel(groups.sp.get());
    Tensor split = Tensor::empty(shape, core::DType::F32, gpu.device());
    core::ops::fill(gpu, split, std::nanf(""));
    dit.forward(gpu, input, split);
    dit.set_sequence_parallel(nullptr);
    EXPECT_TRUE(testing::matches_reference(split.to(core::Device::cpu()).to_floats(),
                                           one.to(core::Device::cpu()).to_floats(),
                                           dtype == core::DType::F32 ? 1e-4 : 1e-2))
        << GetParam() << " " << core::dtype_name(dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, DitUlysses,
                         ::testing::Values("t2v", "t2v_bf16", "ti2v", "i2v", "i2v_clip"));

}  // namespace
}  // namespace wanbatch
