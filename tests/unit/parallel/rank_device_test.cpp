// parallel::rank_device_context: which device `--device auto|cuda|cpu` gives a rank (the one
// choice `wanbatch run` and the MPI tests share).
#include <gtest/gtest.h>
#include <stdlib.h>

#include "core/context.h"
#include "error_of.h"
#include "parallel/rank_device.h"

namespace wanbatch {
namespace {

TEST(RankDevice, CpuIsTheCpuAndAnUnknownChoiceIsNamed) {
  EXPECT_TRUE(parallel::rank_device_context("cpu").device().is_cpu());
  EXPECT_EQ(testing::error_of([] { parallel::rank_device_context("gpu"); }),
            "--device 'gpu': expected auto, cuda or cpu");
}

TEST(RankDevice, AutoTakesTheNodeLocalRanksGpuElseTheCpu) {
  const int gpus = core::cuda_device_count();
  ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3", 1);
  const core::Device got = parallel::rank_device_context("auto").device();
  ::unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (gpus == 0) {
    EXPECT_TRUE(got.is_cpu());
    EXPECT_NE(testing::error_of([] { parallel::rank_device_context("cuda"); }), "");
  } else {
    EXPECT_EQ(got, core::Device::cuda(3 % gpus));
  }
}

}  // namespace
}  // namespace wanbatch
