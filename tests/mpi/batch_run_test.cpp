// The batch job (jobs::run_batch, what `wanbatch run` runs after its option checks) under mpirun
// -np 2 and 4, with no executable (so also on GPU hosts without Boost): a tiny T2V model, umT5 and
// tokenizer, a manifest of three items (sizes whose tokens need padding over 2 and 4 ranks, other
// solvers, seeds and steps, one unguided), latents only. Every split the world allows — Ulysses
// over all ranks, CFG-parallel, data-parallel groups — gives each item's latents as the same
// run_batch with one rank per group (dp = np: every item made by one process alone), report.json
// lists every item done, and a second run over a finished folder skips every item as complete.
//
// Devices as `wanbatch run --device auto` picks them (parallel::rank_device_context: the
// node-local rank's GPU) when every rank has a GPU of its own, so on a GPU host the whole job runs
// on the GPUs (NCCL between them); otherwise on the CPU. One line per run on stdout says where it
// ran and how long it took.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/log.h"
#include "core/tensor.h"
#include "gpu_per_rank.h"
#include "io/latents_file.h"
#include "jobs/batch_run.h"
#include "jobs/manifest.h"
#include "model/wan/defaults.h"
#include "model/wan/dit_loader.h"
#include "model/wan/test_model.h"
#include "model/wan/test_text_encoder.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"
#include "parallel/rank_device.h"
#include "reference_match.h"

namespace wanbatch {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

const std::vector<std::string> kIds = {"a", "b", "c"};

class BatchRun : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = parallel::world(runtime_);
    // Rank 0's log lines only, as the executable writes them without --log-all-ranks.
    if (world_->rank() != 0) log::set_threshold(log::Level::warning);
    // One folder for all ranks, named by rank 0's process.
    Tensor pid = Tensor::from_vector(std::vector<int64_t>{::getpid()}, {1});
    world_->broadcast(pid, 0);
    dir_ = fs::temp_directory_path() /
           ("wanbatch_batch_run_" + std::to_string(pid.data<int64_t>()[0]));
    if (world_->rank() == 0) {
      fs::remove_all(dir_);
      fs::create_directories(dir_);
      model::wan::TestModelOptions model;
      model.variant = "tiny-t2v";
      model.output_dir = path("model");
      model::wan::write_test_model(model);
      model::wan::write_test_t5(path("t5.safetensors"), model::wan::preset("tiny-t2v").text_dim,
                                300);
      model::wan::write_test_tokenizer(path("spiece.model"));
      // a: 48x48, 9 frames: 3 latent frames of 3x3 patches = 27 tokens, padded over 2 and 4 ranks.
      std::ofstream m(dir_ / "m.jsonl");
      m << R"({"id": "a", "prompt": "a red fox", "width": 48, "height": 48, "frames": 9, "steps": 3, "seed": 1})"
           "\n"
        << R"({"id": "b", "prompt": "waves on the beach", "width": 32, "height": 32, "frames": 5, "steps": 2, "solver": "euler"})"
           "\n"
        << R"({"id": "c", "prompt": "a paper boat", "width": 48, "height": 32, "frames": 1, "steps": 2, "solver": "dpm++", "seed": 7, "guide_scale": 1})"
           "\n";
    }
    world_->barrier();

    ctx_ = parallel::rank_device_context(testing::every_rank_has_a_gpu(*world_) ? "auto" : "cpu");
    config_ = model::wan::read_dit_config(path("model"));
    const jobs::JobDefaults defaults =
        jobs::job_defaults(model::wan::generation_defaults(config_, false), config_, false, false);
    items_ = jobs::read_manifest(path("m.jsonl"), defaults);
  }

  void TearDown() override {
    world_->barrier();
    if (world_->rank() == 0) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // run_batch over the world split into cfg × sp groups (the rest data-parallel) into DIR/out;
  // returns its status. Weights are sharded over the sp ranks, as `wanbatch run` does by default.
  int run(int sp, bool cfg_parallel, const std::string& out) {
    const parallel::Groups groups = parallel::Groups::make(
        *world_, sp, cfg_parallel, static_cast<int>(config_.num_heads), ctx_);
    topology_ = groups.describe();
    jobs::BatchRunOptions options;
    options.manifest = path("m.jsonl");
    options.output_dir = dir_ / out;
    jobs::PipelineOptions& p = options.pipeline;
    p.dit = path("model");
    p.low_load.shard_comm = groups.topology.sp > 1 ? groups.sp.get() : nullptr;
    p.t5 = path("t5.safetensors");
    p.tokenizer = path("spiece.model");
    p.text_len = 16;
    p.write_video = false;  // latents only: no VAE, no FFmpeg
    p.version = "batch_run_test";
    const auto start = std::chrono::steady_clock::now();
    const int status = jobs::run_batch(runtime_, *world_, ctx_, groups, items_, options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Every rank's device, to show that each rank ran on a GPU of its own.
    Tensor devices = Tensor::zeros({world_->size()}, core::DType::I64);
    devices.data<int64_t>()[world_->rank()] = ctx_.device().is_cuda() ? ctx_.device().index : -1;
    world_->all_reduce_sum(devices);
    if (world_->rank() == 0) {
      std::ostringstream line;
      line << "batch_run np " << world_->size() << ", " << topology_ << " -> " << out
           << ": devices";
      for (int r = 0; r < world_->size(); ++r) {
        const int64_t d = devices.data<int64_t>()[r];
        line << " " << (d < 0 ? std::string("cpu") : "cuda:" + std::to_string(d));
      }
      line << ", " << seconds << " s, status " << status << "\n";
      std::cout << line.str() << std::flush;
    }
    return status;
  }

  nlohmann::json report(const std::string& out) const {
    std::ifstream in(dir_ / out / "report.json");
    return nlohmann::json::parse(in);
  }

  parallel::MpiRuntime runtime_;
  std::unique_ptr<parallel::Comm> world_;
  fs::path dir_;
  core::Context ctx_ = core::Context::cpu();
  model::wan::DitConfig config_;
  std::vector<jobs::ManifestItem> items_;
  std::string topology_;
};

TEST_F(BatchRun, EverySplitGivesTheLatentsOfOneRankPerItemAndAFinishedRunResumes) {
  const int np = world_->size();
  // CPU, fp32: 1e-5 as parallel_run_test (only the order of additions differs between splits).
  // GPUs, bf16 GEMMs as `wanbatch run` uses there: 2e-2. A split forward runs other GEMM shapes
  // (a share of the rows under Ulysses, a batch of one context under CFG-parallel), so a bf16
  // rounding may flip either way: within 1e-2 of one GPU's for Ulysses (dit_ulysses_test). Over
  // 2-3 steps those differences add up with step sizes summing to under 1; twice that bound leaves
  // room for their feeding back through the later steps.
  const double tolerance = ctx_.device().is_cuda() ? 2e-2 : 1e-5;

  ASSERT_EQ(run(1, false, "ref"), 0);
  struct Split {
    int sp;
    bool cfg;
    std::string out;
  };
  std::vector<Split> splits = {{np, false, "sp"}, {1, true, "cfg"}};
  if (np % 4 == 0) splits.push_back({np / 2, true, "cfg_sp"});  // dp 1 × cfg 2 × sp np/2
  if (np % 4 == 0) splits.push_back({2, false, "dp_sp"});       // dp np/2 × cfg 1 × sp 2
  for (const Split& s : splits) {
    SCOPED_TRACE(s.out);
    ASSERT_EQ(run(s.sp, s.cfg, s.out), 0);
    if (world_->rank() != 0) continue;
    const nlohmann::json r = report(s.out);
    EXPECT_EQ(r["world_size"], np);
    EXPECT_EQ(r["topology"], topology_);
    EXPECT_EQ(r["totals"]["done"], 3);
    for (const auto& item : r["items"]) EXPECT_EQ(item["status"], "done") << item.dump();
    for (const std::string& id : kIds) {
      const auto want = io::read_latents_file(path("ref/" + id + ".h5"));
      const auto got = io::read_latents_file(path(s.out + "/" + id + ".h5"));
      if (want.latents.shape() != got.latents.shape()) {
        ADD_FAILURE() << id << ": not the reference's shape";  // no ASSERT: rank 0 alone is here
        continue;
      }
      EXPECT_TRUE(
          testing::matches_reference(got.latents.to_floats(), want.latents.to_floats(), tolerance))
          << id;
      EXPECT_EQ(got.record.world_size, np) << id;
    }
  }

  // The finished reference folder again, over all ranks in one group: nothing left to do.
  ASSERT_EQ(run(np, false, "ref"), 0);
  if (world_->rank() == 0) {
    const nlohmann::json r = report("ref");
    EXPECT_EQ(r["totals"]["skipped_complete"], 3);
    EXPECT_EQ(r["totals"]["done"], 0);
    for (const auto& item : r["items"]) EXPECT_EQ(item["status"], "skipped-complete");
  }
}

}  // namespace
}  // namespace wanbatch
