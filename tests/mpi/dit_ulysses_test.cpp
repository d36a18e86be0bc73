// Ulysses sequence parallelism inside the DiT, on the ranks mpirun gives (2 and 4): every reference
// case (T2V 45 tokens, TI2V 63 tokens with per-token timesteps, Wan2.2 I2V, Wan2.1 I2V with CLIP,
// bf16 weights) run with sp 2 and sp 4 — token counts that need padding — matches the float64 NumPy
// reference to 1e-5 relative and the one-rank forward on the same rank to 1e-5 relative (the only
// difference is the order of the additions), also for a CFG batch of two contexts.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/ops.h"
#include "fixture_path.h"
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
  c.input.latent = io->tensor("latent");
  c.input.timestep = io->tensor("timestep");
  c.input.context = io->tensor("context");
  if (io->contains("y")) c.input.y = io->tensor("y");
  if (io->contains("clip")) c.input.clip = io->tensor("clip");
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

INSTANTIATE_TEST_SUITE_P(Cases, DitUlysses,
                         ::testing::Values("t2v", "t2v_bf16", "ti2v", "i2v", "i2v_clip"));

}  // namespace
}  // namespace wanbatch
