// The batch loop of `wanbatch run` (DESIGN.md "Data", "Parallelism") without the command line, so
// that it also runs where the executable cannot be built (GPU hosts without Boost's libraries):
// rank 0 records the items already complete as skipped and queues the others; the dp groups take
// items through the dynamic queue (jobs/item_queue.h) and make each one with jobs/item_pipeline.h;
// rank 0 keeps report.json current and writes it once more at the end.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/context.h"
#include "jobs/item_pipeline.h"
#include "jobs/manifest.h"
#include "jobs/shard.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::jobs {

struct BatchRunOptions {
  std::string manifest;  // the manifest's path, for the report
  std::filesystem::path output_dir;
  Shard shard;  // the shard of the manifest the items are
  // How each item is made. write_video also says what a complete item is (latents and video, or
  // latents only); version goes into the report too.
  PipelineOptions pipeline;
};

// Collective over `world`, split into `groups` (on `ctx`): runs `items` (this job's shard) into
// options.output_dir (created by rank 0). Returns the process's exit status, alike on every rank:
// 0, or 1 when an item failed. `world` must be all of MPI's world: the queue's requests travel
// over a duplicate of MPI_COMM_WORLD (parallel::RequestChannel), which also needs an MPI library
// with MPI_THREAD_MULTIPLE.
int run_batch(const parallel::MpiRuntime& runtime, parallel::Comm& world, const core::Context& ctx,
              const parallel::Groups& groups, const std::vector<ManifestItem>& items,
              const BatchRunOptions& options);

}  // namespace wanbatch::jobs
