#include "parallel/mpi_runtime.h"

#include <mpi.h>

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace wanbatch::parallel {
namespace {
constexpr const char* kRankVariables[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                          "SLURM_PROCID"};
}  // namespace

bool launched_by_mpi() { return environment_rank() >= 0; }

int node_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    if (const char* value = std::getenv(name); value && *value) {
      char* end = nullptr;
      const long rank = std::strtol(value, &end, 10);
      if (end && *end == '\0' && rank >= 0) return static_cast<int>(rank);
    }
  }
  return 0;
}

int environment_rank() {
  for (const char* name : kRankVariables) {
    if (const char* value = std::getenv(name); value && *value) {
      char* end = nullptr;
      const long rank = std::strtol(value, &end, 10);
      if (end && *end == '\0' && rank >= 0) return static_cast<int>(rank);
    }
  }
  return -1;
}

MpiRuntime::MpiRuntime(bool force) {
  if (!force && !launched_by_mpi()) return;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    // MULTIPLE: rank 0's item-queue thread (request_channel.h) talks while its main thread runs
    // collectives. A library that gives less still runs, with the queue replaced by a fixed deal.
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
      throw Error("MPI_Init_thread failed");
    }
    owns_init_ = true;
  }
  active_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiRuntime::~MpiRuntime() {
  if (!owns_init_) return;  // someone else started MPI and will finish it
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
}

void MpiRuntime::abort(int code) const {
  if (active_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace wanbatch::parallel
