// An item's outputs and when they count as complete, and the merged run report.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/tensor.h"
#include "jobs/item_outputs.h"
#include "jobs/run_report.h"
#include "temp_dir_test.h"

namespace wanbatch::jobs {
namespace {

namespace fs = std::filesystem;

class RunOutputs : public wanbatch::testing::TempDirTest {};

ManifestItem fox() {
  ManifestItem item;
  item.line = 3;
  item.id = "fox";
  item.prompt = "a fox";
  item.negative_prompt = "blur";
  item.seed = 7;
  item.width = 64;
  item.height = 48;
  item.frames = 9;
  item.steps = 4;
  item.fps = 16;
  item.solver = "euler";
  item.shift = 5.0;
  item.guide_scale = 1.0;
  return item;
}

io::LatentsRecord record_of(const ManifestItem& item) {
  io::LatentsRecord r;
  r.id = item.id;
  r.prompt = item.prompt;
  r.negative_prompt = item.negative_prompt;
  r.seed = item.seed;
  r.noise = noise_source(item);
  r.width = item.width;
  r.height = item.height;
  r.frames = item.frames;
  r.fps = item.fps;
  r.solver = item.solver;
  r.steps = item.steps;
  r.shift = item.shift;
  r.guide_scale = item.guide_scale;
  return r;
}

TEST_F(RunOutputs, RecordMustMatchTheItemAsItNowReads) {
  const ManifestItem item = fox();
  EXPECT_EQ(noise_source(item), "philox seed 7");
  EXPECT_TRUE(record_matches(record_of(item), item));
  for (auto change : std::vector<void (*)(ManifestItem&)>{
           [](ManifestItem& i) { i.prompt = "a wolf"; }, [](ManifestItem& i) { i.seed = 8; },
           [](ManifestItem& i) { i.steps = 5; }, [](ManifestItem& i) { i.guide_scale_high = 2.0; },
           [](ManifestItem& i) { i.init_noise = "noise.h5"; },
           [](ManifestItem& i) { i.negative_prompt = ""; }}) {
    ManifestItem changed = item;
    change(changed);
    EXPECT_FALSE(record_matches(record_of(item), changed));
  }
}

// An image item's record holds the size its image gave: it matches by its image and pixel
// budget, and the latents file keeps both.
TEST_F(RunOutputs, AnImageItemMatchesByItsImageAndBudget) {
  ManifestItem item = fox();
  item.image = "/data/fox.png";
  io::LatentsRecord record = record_of(item);
  record.width = 80;  // what the image gave within 64×48
  record.height = 32;
  record.image = item.image;
  record.max_area = 64 * 48;
  EXPECT_TRUE(record_matches(record, item));
  for (auto change : std::vector<void (*)(ManifestItem&)>{
           [](ManifestItem& i) { i.image = "/data/wolf.png"; },
           [](ManifestItem& i) { i.width = 96; }, [](ManifestItem& i) { i.image.clear(); }}) {
    ManifestItem changed = item;
    change(changed);
    EXPECT_FALSE(record_matches(record, changed));
  }
  EXPECT_FALSE(record_matches(record_of(fox()), item));  // made without the image

  io::write_latents_file(latents_path(dir_, item),
                         core::Tensor::zeros({16, 3, 2, 5}, core::DType::F32), record);
  const io::LatentsRecord read = io::read_latents_file(latents_path(dir_, item)).record;
  EXPECT_EQ(read.image, item.image);
  EXPECT_EQ(read.max_area, 64 * 48);
  EXPECT_EQ(read.width, 80);
  EXPECT_TRUE(item_complete(dir_, item, false));
}

TEST_F(RunOutputs, CompleteNeedsBothFilesAndAMatchingRecord) {
  const ManifestItem item = fox();
  EXPECT_FALSE(item_complete(dir_, item, true));
  io::write_latents_file(latents_path(dir_, item),
                         core::Tensor::zeros({16, 3, 6, 8}, core::DType::F32), record_of(item));
  EXPECT_TRUE(item_complete(dir_, item, false));
  EXPECT_FALSE(item_complete(dir_, item, true));  // no video yet
  std::ofstream(video_path(dir_, item)) << "mp4";
  EXPECT_TRUE(item_complete(dir_, item, true));
  ManifestItem other = item;
  other.seed = 9;
  EXPECT_FALSE(item_complete(dir_, other, true));
  std::ofstream(latents_path(dir_, item)) << "not hdf5";  // a broken file is made again
  EXPECT_FALSE(item_complete(dir_, item, true));
}

std::vector<ManifestItem> three_items() {
  std::vector<ManifestItem> items(3, fox());
  for (size_t k = 0; k < items.size(); ++k) {
    items[k].id = "item" + std::to_string(k);
    items[k].line = static_cast<int64_t>(k) + 1;
  }
  return items;
}

ItemResult result(const std::string& id, size_t index, const std::string& status, int rank) {
  ItemResult r;
  r.id = id;
  r.index = index;
  r.status = status;
  r.rank = rank;
  r.group = rank;
  return r;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST_F(RunOutputs, ReportListsEveryItemInManifestOrderWithTotals) {
  const auto items = three_items();
  RunSummary summary;
  summary.world_size = 2;
  RunReport report(dir_, items, summary);
  EXPECT_EQ(report.totals().pending, 3);
  report.record(result("item2", 2, "skipped-complete", 0));
  report.record(result("item0", 0, "running", 1));
  report.write(1.5);
  nlohmann::json j = read_json(dir_ / "report.json");
  EXPECT_EQ(j["items"][0]["status"], "running");
  EXPECT_EQ(j["items"][1]["status"], "pending");
  EXPECT_FALSE(j["items"][1].contains("rank"));
  EXPECT_EQ(j["totals"]["pending"], 1);
  EXPECT_EQ(j["totals"]["running"], 1);

  ItemResult done = result("item0", 0, "done", 1);
  done.width = 80;  // the size as made (an image item's follows its image)
  done.height = 32;
  report.record(done);
  ItemResult b = result("item1", 1, "failed", 0);
  b.reason = "NaN";
  report.record(b);
  report.write(2.5);
  const ReportTotals totals = report.totals();
  EXPECT_EQ(totals.done, 1);
  EXPECT_EQ(totals.failed, 1);
  EXPECT_EQ(totals.skipped_complete, 1);
  j = read_json(dir_ / "report.json");
  ASSERT_EQ(j["items"].size(), 3u);
  EXPECT_EQ(j["items"][1]["id"], "item1");
  EXPECT_EQ(j["items"][1]["reason"], "NaN");
  EXPECT_EQ(j["items"][0]["size"], (nlohmann::json{{"width", 80}, {"height", 32}}));
  EXPECT_FALSE(j["items"][1].contains("size"));
  EXPECT_EQ(j["items"][0]["group"], 1);
  EXPECT_EQ(j["items"][2]["line"], 3);
  EXPECT_EQ(j["totals"]["items"], 3);
  EXPECT_EQ(j["seconds"], 2.5);
  EXPECT_THROW(report.record(result("x", 3, "done", 0)), Error);
}

TEST_F(RunOutputs, JobArrayShardsKeepTheirOwnReportsAndMergeIntoOne) {
  const auto items = three_items();
  const std::vector<ManifestItem> first(items.begin(), items.begin() + 2);
  const std::vector<ManifestItem> second(items.begin() + 2, items.end());
  RunSummary summary;
  summary.shard = {0, 2};
  RunReport a(dir_, first, summary);
  summary.shard = {1, 2};
  RunReport b(dir_, second, summary);
  EXPECT_EQ(a.path(), dir_ / "report.shard-0-of-2.json");
  a.record(result("item0", 0, "done", 0));
  a.write(1);
  a.merge_shards();  // only shard 0 has reported yet
  nlohmann::json merged = read_json(dir_ / "report.json");
  EXPECT_EQ(merged["shards"]["reported"], 1);
  EXPECT_EQ(merged["totals"]["items"], 2);

  b.record(result("item2", 0, "failed", 0));
  b.write(1);
  b.merge_shards();
  merged = read_json(dir_ / "report.json");
  EXPECT_EQ(merged["shards"]["count"], 2);
  EXPECT_EQ(merged["shards"]["reported"], 2);
  EXPECT_EQ(merged["totals"]["items"], 3);
  EXPECT_EQ(merged["totals"]["done"], 1);
  EXPECT_EQ(merged["totals"]["failed"], 1);
  EXPECT_EQ(merged["totals"]["pending"], 1);
  ASSERT_EQ(merged["items"].size(), 3u);
  EXPECT_EQ(merged["items"][2]["id"], "item2");
  EXPECT_EQ(merged["items"][2]["shard"], 1);
  // A report of a different split of the manifest (another job's) is not merged in.
  std::ofstream(dir_ / "report.shard-0-of-3.json") << "{}";
  b.merge_shards();
  EXPECT_EQ(read_json(dir_ / "report.json")["shards"]["reported"], 2);
}

}  // namespace
}  // namespace wanbatch::jobs
