#include "jobs/run_report.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"

namespace wanbatch::jobs {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json to_json(const ItemResult& r, int64_t line) {
  json j = {{"id", r.id}, {"index", r.index}, {"line", line}, {"status", r.status}};
  if (r.status == "pending") return j;
  j["rank"] = r.rank;
  j["group"] = r.group;
  if (r.status != "running") {
    j["seconds"] = {{"encode", r.encode_seconds},
                    {"sample", r.sample_seconds},
                    {"decode", r.decode_seconds},
                    {"total", r.total_seconds}};
  }
  if (!r.memory_of.empty()) {
    j["memory"] = {{"of", r.memory_of},
                   {"dit_weights_gib", r.weights_gib},
                   {"dit_weight_buffers_gib", r.weight_buffers_gib},
                   {"dit_host_weights_gib", r.host_weights_gib},
                   {"dit_activations_gib", r.activations_gib},
                   {"peak_gib", r.peak_gib}};
  }
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (r.width > 0) j["size"] = {{"width", r.width}, {"height", r.height}};
  if (!r.latents.empty()) j["latents"] = r.latents;
  if (!r.video.empty()) j["video"] = r.video;
  return j;
}

json totals_json(const ReportTotals& t) {
  return {{"items", t.items},
          {"pending", t.pending},
          {"running", t.running},
          {"done", t.done},
          {"skipped_complete", t.skipped_complete},
          {"failed", t.failed}};
}

void write_json_atomic(const fs::path& path, const json& j) {
  io::AtomicFile file(path.string());
  {
    std::ofstream out(file.temp_path());
    out << j.dump(2) << "\n";
    WB_CHECK(out.good(), "cannot write ", file.temp_path());
  }
  file.commit();
}

// An exclusive lock on DIR/.report.lock for the scope; best effort (a file system without locks
// only risks a stale merged report, which the next shard to finish rewrites).
class DirectoryLock {
 public:
  explicit DirectoryLock(const fs::path& dir)
      : fd_(::open((dir / ".report.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~DirectoryLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_;
};

}  // namespace

RunReport::RunReport(fs::path dir, const std::vector<ManifestItem>& items, RunSummary summary)
    : dir_(std::move(dir)), summary_(std::move(summary)) {
  for (size_t k = 0; k < items.size(); ++k) {
    lines_.push_back(items[k].line);
    ItemResult r;
    r.id = items[k].id;
    r.index = k;
    r.status = "pending";
    results_.push_back(r);
  }
}

void RunReport::record(const ItemResult& result) {
  WB_CHECK(result.index < results_.size(), "run report: item index ", result.index,
           " outside the shard's ", results_.size(), " items");
  results_[result.index] = result;
}

ReportTotals RunReport::totals() const {
  ReportTotals t;
  t.items = static_cast<int64_t>(results_.size());
  for (const ItemResult& r : results_) {
    t.pending += r.status == "pending";
    t.running += r.status == "running";
    t.done += r.status == "done";
    t.skipped_complete += r.status == "skipped-complete";
    t.failed += r.status == "failed";
  }
  return t;
}

fs::path RunReport::path() const {
  if (summary_.shard.count == 1) return dir_ / "report.json";
  return dir_ / ("report.shard-" + std::to_string(summary_.shard.index) + "-of-" +
                 std::to_string(summary_.shard.count) + ".json");
}

void RunReport::write(double seconds) const {
  json items = json::array();
  for (size_t k = 0; k < results_.size(); ++k) items.push_back(to_json(results_[k], lines_[k]));
  const json report = {
      {"manifest", summary_.manifest},
      {"output_dir", summary_.output_dir},
      {"shard", {{"index", summary_.shard.index}, {"count", summary_.shard.count}}},
      {"world_size", summary_.world_size},
      {"topology", summary_.topology},
      {"scheduling", summary_.scheduling},
      {"wanbatch_version", summary_.wanbatch_version},
      {"seconds", seconds},
      {"totals", totals_json(totals())},
      {"items", items}};
  write_json_atomic(path(), report);
}

void RunReport::merge_shards() const {
  if (summary_.shard.count == 1) return;
  const DirectoryLock lock(dir_);
  const std::regex name(R"(report\.shard-(\d+)-of-(\d+)\.json)");
  std::vector<std::pair<int64_t, json>> shards;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (!std::regex_match(file, m, name) || std::stoll(m[2]) != summary_.shard.count) continue;
    std::ifstream in(entry.path());
    try {
      shards.emplace_back(std::stoll(m[1]), json::parse(in));
    } catch (const std::exception& e) {
      WB_LOG(warning) << entry.path().string() << ": not merged into report.json: " << e.what();
    }
  }
  std::sort(shards.begin(), shards.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  json items = json::array();
  ReportTotals t;
  json shard_list = json::array();
  for (const auto& [index, report] : shards) {
    shard_list.push_back({{"index", index},
                          {"report", "report.shard-" + std::to_string(index) + "-of-" +
                                         std::to_string(summary_.shard.count) + ".json"},
                          {"totals", report["totals"]}});
    for (json item : report["items"]) {
      item["shard"] = index;
      items.push_back(item);
    }
    const json& s = report["totals"];
    t.items += s.value("items", int64_t{0});
    t.pending += s.value("pending", int64_t{0});
    t.running += s.value("running", int64_t{0});
    t.done += s.value("done", int64_t{0});
    t.skipped_complete += s.value("skipped_complete", int64_t{0});
    t.failed += s.value("failed", int64_t{0});
  }
  const json merged = {
      {"manifest", summary_.manifest},
      {"output_dir", summary_.output_dir},
      {"shards",
       {{"count", summary_.shard.count}, {"reported", shards.size()}, {"reports", shard_list}}},
      {"wanbatch_version", summary_.wanbatch_version},
      {"totals", totals_json(t)},
      {"items", items}};
  write_json_atomic(dir_ / "report.json", merged);
}

}  // namespace wanbatch::jobs
