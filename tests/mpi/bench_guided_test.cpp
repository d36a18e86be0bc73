// The guided benchmark (`wanbatch bench --guided` / `--cfg-parallel`) split over the ranks of
// mpirun -np 2 and 4, on the CPU with a tiny variant, with the groups made as `wanbatch run`
// makes them: CFG-parallel over all ranks (with Ulysses 2 at np 4), and Ulysses alone over all
// ranks with the batch of two. The line parses and names the split; timings are not asserted.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "bench/dit_benchmark.h"
#include "bench_line.h"
#include "core/context.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch {
namespace {

class BenchGuided : public ::testing::Test {
 protected:
  void SetUp() override { world_ = parallel::world(runtime_); }

  // This rank's benchmark line with sp = `sp` and `cfg_parallel` over this world.
  std::map<std::string, std::string> line(int sp, bool cfg_parallel) {
    const core::Context cpu = core::Context::cpu();
    const parallel::Groups groups = parallel::Groups::make(*world_, sp, cfg_parallel, 0, cpu);
    EXPECT_EQ(groups.topology.dp, 1);
    bench::DitBenchOptions options;
    options.variant = "tiny-t2v";
    options.width = 64;
    options.height = 48;
    options.frames = 9;
    options.iterations = 1;
    options.warmup = 1;
    options.guided = true;
    options.cfg_parallel = cfg_parallel;
    const bench::DitBenchResult r =
        bench::run_dit_benchmark(cpu, options, groups.sp.get(), groups.cfg.get());
    return testing::bench_fields(bench::result_line(options, r, world_->size()));
  }

  parallel::MpiRuntime runtime_;
  std::unique_ptr<parallel::Comm> world_;
};

TEST_F(BenchGuided, CfgParallelOverEveryRank) {
  const int sp = world_->size() / 2;  // np 2: CFG-parallel alone; np 4: with Ulysses 2
  const auto f = line(sp, true);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(f.at("cfg"), "1");
  EXPECT_EQ(f.at("gpus"), std::to_string(world_->size()));
  EXPECT_EQ(f.at("sp"), std::to_string(sp));
  EXPECT_EQ(f.at("tokens"), "36");
  EXPECT_GT(std::stod(f.at("guided_ms")), 0.0);
  EXPECT_GT(std::stod(f.at("tflop")), 0.0);
  // The all-gather of the two velocities at least.
  EXPECT_GT(std::stod(f.at("communication_ms")), 0.0);
}

TEST_F(BenchGuided, UlyssesOverEveryRankWithTheBatchOfTwo) {
  const auto f = line(world_->size(), false);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(f.at("cfg"), "0");
  EXPECT_EQ(f.at("gpus"), std::to_string(world_->size()));
  EXPECT_EQ(f.at("sp"), std::to_string(world_->size()));
  EXPECT_GT(std::stod(f.at("guided_ms")), 0.0);
  EXPECT_GT(std::stod(f.at("communication_ms")), 0.0);  // the all-to-alls
}

}  // namespace
}  // namespace wanbatch
