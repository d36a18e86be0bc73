// DIR/report.json (DESIGN.md "Data"): every item of the shard with its status (done,
// skipped-complete, failed + reason), rank, timings and outputs, and the totals. Each rank writes
// its part (DIR/.report.rank<r>.json); after a barrier rank 0 merges the parts in manifest order.
// Every file is written atomically.
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
  std::string status;  // done, skipped-complete, failed
  std::string reason;
  double encode_seconds = 0, sample_seconds = 0, decode_seconds = 0, total_seconds = 0;
  std::string latents, video;
  int rank = 0;
};

// What the report says of the run as a whole.
struct RunSummary {
  std::string manifest, output_dir, scheduling, wanbatch_version;
  Shard shard;
  int world_size = 1;
  double seconds = 0;
};

struct ReportTotals {
  int64_t done = 0, skipped_complete = 0, failed = 0;
};

void write_report_part(const std::filesystem::path& dir, int rank,
                       const std::vector<ItemResult>& results);

// Merges the parts of ranks 0 .. world − 1 (and removes them) into DIR/report.json; `items` are
// the shard's, in order. Returns the totals.
ReportTotals merge_report(const std::filesystem::path& dir, int world,
                          const std::vector<ManifestItem>& items, const RunSummary& summary);

}  // namespace wanbatch::jobs
