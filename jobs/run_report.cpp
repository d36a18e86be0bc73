#include "jobs/run_report.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace wanbatch::jobs {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path part_path(const fs::path& dir, int rank) {
  return dir / (".report.rank" + std::to_string(rank) + ".json");
}

json to_json(const ItemResult& r) {
  json j = {{"id", r.id},
            {"index", r.index},
            {"status", r.status},
            {"rank", r.rank},
            {"seconds",
             {{"encode", r.encode_seconds},
              {"sample", r.sample_seconds},
              {"decode", r.decode_seconds},
              {"total", r.total_seconds}}}};
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (!r.latents.empty()) j["latents"] = r.latents;
  if (!r.video.empty()) j["video"] = r.video;
  return j;
}

void write_json_atomic(const std::string& path, const json& j) {
  io::AtomicFile file(path);
  {
    std::ofstream out(file.temp_path());
    out << j.dump(2) << "\n";
    WB_CHECK(out.good(), "cannot write ", file.temp_path());
  }
  file.commit();
}

}  // namespace

void write_report_part(const fs::path& dir, int rank, const std::vector<ItemResult>& results) {
  json part = json::array();
  for (const auto& r : results) part.push_back(to_json(r));
  write_json_atomic(part_path(dir, rank).string(), part);
}

ReportTotals merge_report(const fs::path& dir, int world, const std::vector<ManifestItem>& items,
                          const RunSummary& summary) {
  std::vector<json> merged(items.size());
  for (int r = 0; r < world; ++r) {
    const fs::path path = part_path(dir, r);
    std::ifstream in(path);
    WB_CHECK(in.good(), "cannot read ", path.string());
    for (const json& j : json::parse(in)) merged.at(j["index"].get<size_t>()) = j;
    in.close();
    fs::remove(path);
  }
  ReportTotals totals;
  json report_items = json::array();
  for (size_t k = 0; k < items.size(); ++k) {
    json j = merged[k];
    j["line"] = items[k].line;
    const std::string status = j["status"].get<std::string>();
    totals.done += status == "done";
    totals.skipped_complete += status == "skipped-complete";
    totals.failed += status == "failed";
    report_items.push_back(j);
  }
  const json report = {{"manifest", summary.manifest},
                       {"output_dir", summary.output_dir},
                       {"shard", {{"index", summary.shard.index}, {"count", summary.shard.count}}},
                       {"world_size", summary.world_size},
                       {"scheduling", summary.scheduling},
                       {"wanbatch_version", summary.wanbatch_version},
                       {"seconds", summary.seconds},
                       {"totals",
                        {{"items", items.size()},
                         {"done", totals.done},
                         {"skipped_complete", totals.skipped_complete},
                         {"failed", totals.failed}}},
                       {"items", report_items}};
  write_json_atomic((dir / "report.json").string(), report);
  return totals;
}

}  // namespace wanbatch::jobs
