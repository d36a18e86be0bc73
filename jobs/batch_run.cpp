#include "jobs/batch_run.h"

#include <cstdint>
#include <optional>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/tensor.h"
#include "jobs/item_outputs.h"
#include "jobs/item_queue.h"
#include "jobs/run_report.h"
#include "parallel/request_channel.h"

namespace wanbatch::jobs {

namespace fs = std::filesystem;
using core::Clock;
using core::seconds_since;
using core::Tensor;

int run_batch(const parallel::MpiRuntime& runtime, parallel::Comm& world, const core::Context& ctx,
              const parallel::Groups& groups, const std::vector<ManifestItem>& items,
              const BatchRunOptions& options) {
  WB_CHECK(parallel::RequestChannel::supported(runtime),
           "the item queue needs an MPI library with MPI_THREAD_MULTIPLE support");
  const int rank = world.rank();
  const fs::path& out_dir = options.output_dir;
  const bool write_video = options.pipeline.write_video;
  if (rank == 0) fs::create_directories(out_dir);
  const auto batch_start = Clock::now();

  // Rank 0 keeps the report: complete items are skipped, the others queued in manifest order.
  RunSummary summary;
  summary.manifest = options.manifest;
  summary.output_dir = out_dir.string();
  summary.scheduling = "dynamic queue";
  summary.topology = groups.describe();
  summary.wanbatch_version = options.pipeline.version;
  summary.shard = options.shard;
  summary.world_size = world.size();
  std::optional<RunReport> report;
  std::vector<size_t> pending;
  if (rank == 0) {
    report.emplace(out_dir, items, summary);
    for (size_t k = 0; k < items.size(); ++k) {
      if (!item_complete(out_dir, items[k], write_video)) {
        pending.push_back(k);
        continue;
      }
      ItemResult r = report->item(k);
      r.status = "skipped-complete";
      r.latents = latents_path(out_dir, items[k]);
      if (write_video) r.video = video_path(out_dir, items[k]);
      report->record(r);
      WB_LOG(info) << items[k].id << ": complete, skipped";
    }
    report->write(0);
    report->merge_shards();
    WB_LOG(info) << "shard " << options.shard.index << "/" << options.shard.count << ": "
                 << items.size() << " items, " << pending.size() << " to do, over "
                 << groups.describe();
  }
  world.barrier();

  ItemPipeline pipeline(options.pipeline, ctx, groups, world);
  {
    const parallel::Topology& topology = groups.topology;
    ItemQueue queue(runtime, topology.dp, topology.leader(), topology.dp_index,
                    report ? &*report : nullptr, pending, batch_start);
    // The leader asks for the next item (reporting the last) and tells its group; -1: none left.
    std::optional<ItemResult> finished;
    Tensor next = Tensor::empty({1}, core::DType::I64);
    while (true) {
      if (topology.leader()) {
        const std::optional<size_t> index = queue.next(finished ? &*finished : nullptr);
        next.data<int64_t>()[0] = index ? static_cast<int64_t>(*index) : -1;
      }
      groups.item->broadcast(next, 0);
      const int64_t index = next.data<int64_t>()[0];
      if (index < 0) break;
      const auto k = static_cast<size_t>(index);
      finished = pipeline.run(items[k], k, out_dir);
    }
  }  // rank 0's queue waits here until every group has had its last answer
  world.barrier();

  Tensor failed = Tensor::from_vector(std::vector<int64_t>{0}, {1});
  if (rank == 0) {
    report->write(seconds_since(batch_start));
    report->merge_shards();
    const ReportTotals totals = report->totals();
    failed.data<int64_t>()[0] = totals.failed;
    WB_LOG(info) << report->path().string() << ": " << totals.done << " done, "
                 << totals.skipped_complete << " skipped (complete), " << totals.failed
                 << " failed";
  }
  world.broadcast(failed, 0);
  return failed.data<int64_t>()[0] > 0 ? 1 : 0;
}

}  // namespace wanbatch::jobs
