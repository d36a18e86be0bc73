// The umt5 text encoder with sharded weights (issue 9) on the ranks mpirun gives (2 and 4): every
// layer's parameters split over the ranks, gathered before each layer. The output equals the
// unsharded encoder's bit for bit (the gathered weights are the same numbers, the ops the same) for
// the reference cases (tests/reference/t5_reference.py) in both safetensors layouts and from an
// official-style bf16 .pth (each rank reads its slices from the mapped archive); each rank holds
// about 1/N of the layer parameters; bad arguments or a failed load on one rank throw on every
// rank instead of leaving the others waiting, and the encoder stays usable afterwards.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/context.h"
#include "error_of.h"
#include "fixture_path.h"
#include "gpu_per_rank.h"
#include "io/safetensors.h"
#include "model/wan/t5_encoder.h"
#include "model/wan/t5_loader.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"
#include "reference_match.h"

namespace wanbatch {
namespace {

using core::Tensor;
using testing::error_of;
using testing::fixture_path;

class T5Sharded : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { world_ = parallel::world(runtime_); }
  parallel::MpiRuntime runtime_;
  std::unique_ptr<parallel::Comm> world_;
};

TEST_P(T5Sharded, EqualsTheUnshardedEncoderBitForBit) {
  const core::Context ctx = core::Context::cpu();
  const auto io = io::SafetensorsFile::open(fixture_path("t5.io.safetensors"));
  const auto meta = io->metadata();
  model::wan::T5Encoder whole = model::wan::load_t5_encoder(fixture_path(GetParam()), ctx);
  model::wan::T5Encoder sharded =
      model::wan::load_t5_encoder(fixture_path(GetParam()), ctx, world_.get());
  ASSERT_TRUE(sharded.sharded());
  ASSERT_FALSE(whole.sharded());

  // Each rank's share: the layer parameters over N, plus at most one padding element (fp32) per
  // layer. Its weights besides: what the unsharded encoder holds besides its layers (final norm,
  // relative-position tables) and the two gather buffers, each one layer padded to N.
  const size_t n = static_cast<size_t>(world_->size());
  const size_t layers = static_cast<size_t>(sharded.config().num_layers);
  const size_t layer_bytes = whole.resident_layer_bytes();
  EXPECT_GE(sharded.resident_layer_bytes(), layer_bytes / n);
  EXPECT_LE(sharded.resident_layer_bytes(), layer_bytes / n + 4 * layers);
  const size_t one_layer = layer_bytes / layers;
  EXPECT_GE(sharded.resident_weight_bytes() - sharded.resident_layer_bytes(),
            whole.resident_weight_bytes() - layer_bytes + 2 * one_layer);
  EXPECT_LE(sharded.resident_weight_bytes() - sharded.resident_layer_bytes(),
            whole.resident_weight_bytes() - layer_bytes + 2 * (one_layer + 4 * n));

  const bool bf16 = GetParam().ends_with(".pth");
  const int cases = std::stoi(meta.at("cases"));
  ASSERT_GT(cases, 0);
  for (int k = 0; k < cases; ++k) {
    const std::string key = std::to_string(k);
    const Tensor ids = io->tensor("ids_" + key);
    const int64_t length = std::stoll(meta.at("length_" + key));
    for (const Tensor& input : {ids, ids.slice(0, length)}) {
      const std::vector<float> want = whole.encode(ctx, input, length).to_floats();
      const std::vector<float> got = sharded.encode(ctx, input, length).to_floats();
      EXPECT_EQ(got, want) << "case " << k << ", " << input.dim(0) << " ids";
      // And the reference itself, as tests/unit/model/t5_reference_test.cpp: fp32 against
      // float64, 3 layers of dim 32, 1e-5 of each value (not for the bf16-rounded weights).
      if (bf16) continue;
      EXPECT_TRUE(testing::matches_reference(got, io->tensor("context_" + key).to_floats(), 1e-5))
          << "case " << k << ", " << input.dim(0) << " ids";
    }
  }
}

// Bad arguments on one rank (a token id outside the vocabulary), or ids that differ between the
// ranks, throw on every rank before any layer is gathered; the encoder keeps working after.
TEST_P(T5Sharded, BadInputThrowsOnEveryRank) {
  const core::Context ctx = core::Context::cpu();
  const auto io = io::SafetensorsFile::open(fixture_path("t5.io.safetensors"));
  model::wan::T5Encoder sharded =
      model::wan::load_t5_encoder(fixture_path(GetParam()), ctx, world_.get());
  const int64_t vocab = sharded.config().vocab;
  const Tensor ids = io->tensor("ids_2");
  const int64_t length = std::stoll(io->metadata().at("length_2"));
  const int last = world_->size() - 1;

  Tensor bad = ids.clone();
  if (world_->rank() == last) bad.data<int64_t>()[3] = vocab;
  const std::string error = error_of([&] { sharded.encode(ctx, bad, length); });
  if (world_->rank() == last) {
    EXPECT_EQ(error, "T5 encoder: token id " + std::to_string(vocab) +
                         " at position 3 is outside the vocabulary of " + std::to_string(vocab));
  } else {
    EXPECT_EQ(error, "T5 encoder: rank " + std::to_string(last) +
                         " of the shard group was given bad arguments to encode (its log has the "
                         "error)");
  }

  // Every rank valid ids, but not the same ones: the same message everywhere.
  Tensor differ = ids.clone();
  if (world_->rank() == last) differ.data<int64_t>()[0] = (differ.data<int64_t>()[0] + 1) % vocab;
  EXPECT_NE(error_of([&] {
              sharded.encode(ctx, differ, length);
            }).find("the ranks of the shard group must encode the same ids together"),
            std::string::npos);
  // A different length alone is a difference too.
  EXPECT_NE(
      error_of([&] { sharded.encode(ctx, ids, world_->rank() == last ? length - 1 : length); })
          .find("rank " + std::to_string(last) + " " + std::to_string(ids.dim(0)) + " ids (" +
                std::to_string(length - 1) + " real)"),
      std::string::npos);

  // Still in step: the next encode matches the unsharded encoder.
  model::wan::T5Encoder whole = model::wan::load_t5_encoder(fixture_path(GetParam()), ctx);
  EXPECT_EQ(sharded.encode(ctx, ids, length).to_floats(),
            whole.encode(ctx, ids, length).to_floats());
}

// A load that fails on one rank (here: a path only that rank cannot read) fails on every rank.
TEST_P(T5Sharded, FailedLoadThrowsOnEveryRank) {
  const core::Context ctx = core::Context::cpu();
  const int last = world_->size() - 1;
  const std::string missing = fixture_path("no_such_t5.safetensors");
  const std::string path = world_->rank() == last ? missing : fixture_path(GetParam());
  const std::string error = error_of([&] { model::wan::load_t5_encoder(path, ctx, world_.get()); });
  if (world_->rank() == last) {
    EXPECT_NE(error.find("no_such_t5.safetensors"), std::string::npos) << error;
  } else {
    EXPECT_EQ(error, path + ": rank " + std::to_string(last) +
                         " of the shard group could not load the text encoder (its log has the "
                         "error)");
  }
}

// On GPUs, one per rank, the shards gathered over NCCL: against the unsharded encoder on the same
// GPU. The gathered weights are the same numbers, but views into one buffer may be aligned
// differently from separately allocated tensors, and cuBLASLt may then pick another algorithm:
// 1e-5 relative (fp32 GEMMs throughout).
TEST_P(T5Sharded, OnGpusMatchesTheUnshardedEncoder) {
  if (!testing::every_rank_has_a_gpu(*world_)) GTEST_SKIP() << "needs a GPU per rank";
  const core::Context gpu = core::Context::cuda(world_->rank() % core::cuda_device_count());
  const auto io = io::SafetensorsFile::open(fixture_path("t5.io.safetensors"));
  const auto meta = io->metadata();
  const parallel::Groups groups = parallel::Groups::make(*world_, world_->size(), false, 0, gpu);
  model::wan::T5Encoder whole = model::wan::load_t5_encoder(fixture_path(GetParam()), gpu);
  model::wan::T5Encoder sharded =
      model::wan::load_t5_encoder(fixture_path(GetParam()), gpu, groups.sp.get());
  const size_t n = static_cast<size_t>(world_->size());
  EXPECT_LE(sharded.resident_layer_bytes(),
            whole.resident_layer_bytes() / n + 4 * static_cast<size_t>(whole.config().num_layers));
  for (int k = 0; k < std::stoi(meta.at("cases")); ++k) {
    const std::string key = std::to_string(k);
    const Tensor ids = io->tensor("ids_" + key);
    const int64_t length = std::stoll(meta.at("length_" + key));
    const std::vector<float> want =
        whole.encode(gpu, ids, length).to(core::Device::cpu()).to_floats();
    const std::vector<float> got =
        sharded.encode(gpu, ids, length).to(core::Device::cpu()).to_floats();
    EXPECT_TRUE(testing::matches_reference(got, want, 1e-5)) << "case " << k;
  }
  // Bad arguments on one rank: every rank throws, over NCCL too.
  Tensor bad = io->tensor("ids_0").clone();
  if (world_->rank() == 0) bad.data<int64_t>()[0] = -1;
  EXPECT_NE(error_of([&] { sharded.encode(gpu, bad, 1); }), "");
}

INSTANTIATE_TEST_SUITE_P(Layouts, T5Sharded,
                         ::testing::Values("t5.weights.safetensors", "t5_hf.weights.safetensors",
                                           "t5_bf16.pth"));

}  // namespace
}  // namespace wanbatch
