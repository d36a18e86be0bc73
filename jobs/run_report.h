// The run report (DESIGN.md "Data"): every item of the shard with its status (pending, running,
// done, skipped-complete, failed + reason), the dp group and rank that ran it, timings and
// outputs, and the totals. Rank 0 keeps it and rewrites it atomically whenever an item starts or
// finishes, so it can be watched while the job runs.
//
// A job that is the only shard writes DIR/report.json. The shards of a job array (--shard I/N or
// SLURM_ARRAY_*) may share one folder: each writes DIR/report.shard-I-of-N.json, and
// DIR/report.json is the merge of every shard report present, rewritten when a shard starts and
// when it ends (under a lock file, so shards ending together do not lose each other's results).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "jobs/manifest.h"
#include "jobs/shard.h"

namespace wanbatch::jobs {

struct ItemResult {
  std::string id;
  size_t index = 0;    // in the shard
  std::string status;  // pending, running, done, skipped-complete, failed
  std::string reason;
  double encode_seconds = 0, sample_seconds = 0, decode_seconds = 0, total_seconds = 0;
  std::string latents, video;
  int rank = 0;   // the world rank of the group leader that ran it
  int group = 0;  // the dp group
  // Memory on the leader: the DiT weights it holds (its shards when sharded) and the peak so far
  // (the GPU's tensors, or the host's resident set on the CPU backend).
  double weights_gib = 0, peak_gib = 0;
  // Of those weights, the buffers blocks are gathered or copied into; the weights waiting in
  // host memory (--offload); the DiT's activation buffers (the experts' together).
  double weight_buffers_gib = 0, host_weights_gib = 0, activations_gib = 0;
  std::string memory_of;  // "cuda:0", "host"
  // The video's size as made (an image item's follows its image); 0 until the item has run.
  int64_t width = 0, height = 0;
};

// What the report says of the run as a whole.
struct RunSummary {
  std::string manifest, output_dir, scheduling, topology, wanbatch_version;
  Shard shard;
  int world_size = 1;
};

struct ReportTotals {
  int64_t items = 0, pending = 0, running = 0, done = 0, skipped_complete = 0, failed = 0;
};

class RunReport {
 public:
  // Every item starts pending. Nothing is written until write().
  RunReport(std::filesystem::path dir, const std::vector<ManifestItem>& items, RunSummary summary);

  // Sets the item's entry (by result.index).
  void record(const ItemResult& result);
  const ItemResult& item(size_t index) const { return results_.at(index); }
  ReportTotals totals() const;

  // This shard's report file, atomically; `seconds` is the run's wall time so far.
  void write(double seconds) const;
  // The merged DIR/report.json of a job array's shards (only when this job is one of several).
  void merge_shards() const;
  // Where write() writes.
  std::filesystem::path path() const;

 private:
  std::filesystem::path dir_;
  std::vector<int64_t> lines_;
  std::vector<ItemResult> results_;
  RunSummary summary_;
};

}  // namespace wanbatch::jobs
