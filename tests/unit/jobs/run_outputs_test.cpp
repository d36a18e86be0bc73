// An item's outputs and when they count as complete, and the merged run report.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

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

TEST_F(RunOutputs, ReportMergesTheRanksPartsInManifestOrder) {
  std::vector<ManifestItem> items(3, fox());
  for (size_t k = 0; k < items.size(); ++k) {
    items[k].id = "item" + std::to_string(k);
    items[k].line = static_cast<int64_t>(k) + 1;
  }
  auto result = [](const std::string& id, size_t index, const std::string& status, int rank) {
    ItemResult r;
    r.id = id;
    r.index = index;
    r.status = status;
    r.rank = rank;
    return r;
  };
  const ItemResult a = result("item0", 0, "done", 0);
  ItemResult b = result("item1", 1, "failed", 1);
  b.reason = "NaN";
  const ItemResult c = result("item2", 2, "skipped-complete", 0);
  write_report_part(dir_, 0, {a, c});
  write_report_part(dir_, 1, {b});
  RunSummary summary;
  summary.world_size = 2;
  const ReportTotals totals = merge_report(dir_, 2, items, summary);
  EXPECT_EQ(totals.done, 1);
  EXPECT_EQ(totals.failed, 1);
  EXPECT_EQ(totals.skipped_complete, 1);
  EXPECT_FALSE(fs::exists(dir_ / ".report.rank0.json"));
  std::ifstream in(dir_ / "report.json");
  const nlohmann::json report = nlohmann::json::parse(in);
  ASSERT_EQ(report["items"].size(), 3u);
  EXPECT_EQ(report["items"][1]["id"], "item1");
  EXPECT_EQ(report["items"][1]["reason"], "NaN");
  EXPECT_EQ(report["items"][1]["rank"], 1);
  EXPECT_EQ(report["items"][2]["line"], 3);
  EXPECT_EQ(report["totals"]["items"], 3);
}

}  // namespace
}  // namespace wanbatch::jobs
