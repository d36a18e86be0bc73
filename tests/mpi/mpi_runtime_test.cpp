// MpiRuntime under mpirun: the launcher's environment rank agrees with MPI's, and a runtime made
// inside an already-initialised process joins it rather than initialising twice.
#include "parallel/mpi_runtime.h"

#include <gtest/gtest.h>
#include <mpi.h>

namespace wanbatch::parallel {
namespace {

TEST(MpiRuntime, EnvironmentRankMatchesMpiRank) {
  int rank = -1, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_TRUE(launched_by_mpi());
  EXPECT_EQ(environment_rank(), rank);
  EXPECT_GE(size, 2);
}

TEST(MpiRuntime, JoinsAnInitialisedProcess) {
  MpiRuntime runtime;
  int rank = -1, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_TRUE(runtime.active());
  EXPECT_EQ(runtime.rank(), rank);
  EXPECT_EQ(runtime.size(), size);
  // Every rank sees every other: a sum of ranks is the triangle number.
  int sum = 0;
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(sum, size * (size - 1) / 2);
}

}  // namespace
}  // namespace wanbatch::parallel
