// `wanbatch run` end to end on tiny random models (DiT, VAE, umT5, tokenizer from make-test-model):
// a manifest to files and report.json, resume (skip complete items, redo an incomplete one),
// failure isolation, and --dry-run.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "io/hdf5_file.h"
#include "io/latents_file.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

namespace fs = std::filesystem;
using testing::run_wanbatch;

class Run : public wanbatch::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    const auto r = run_wanbatch("make-test-model --variant tiny-t2v --output " + path("model") +
                                " --vae " + path("vae.safetensors") + " --t5 " +
                                path("t5.safetensors") + " --tokenizer " + path("spiece.model"));
    ASSERT_EQ(r.status, 0) << r.output;
    std::ofstream m(dir_ / "m.jsonl");
    m << R"({"id": "a", "prompt": "a red fox in the snow", "width": 32, "height": 32, "frames": 5, "steps": 3, "seed": 1})"
      << "\n"
      << R"({"id": "b", "prompt": "waves on the beach", "width": 32, "height": 32, "frames": 5, "steps": 2, "solver": "euler", "guide_scale": 1})"
      << "\n"
      << R"({"id": "c", "prompt": "a paper boat", "negative_prompt": "blurry", "width": 48, "height": 32, "frames": 1, "steps": 2, "solver": "dpm++", "seed": 7})"
      << "\n";
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string run_args(const std::string& extra = "") const {
    return "run --manifest " + path("m.jsonl") + " --output-dir " + path("out") + " --dit " +
           path("model") + " --vae " + path("vae.safetensors") + " --t5 " + path("t5.safetensors") +
           " --tokenizer " + path("spiece.model") + " --text-len 16 --preset ultrafast " + extra;
  }

  nlohmann::json report() const {
    std::ifstream in(dir_ / "out" / "report.json");
    return nlohmann::json::parse(in);
  }

  std::map<std::string, std::string> statuses() const {
    std::map<std::string, std::string> s;
    const nlohmann::json r = report();
    for (const auto& item : r["items"]) s[item["id"]] = item["status"];
    return s;
  }
};

TEST_F(Run, RunsAManifestThenSkipsWhatIsCompleteAndRedoesWhatIsNot) {
  auto r = run_wanbatch(run_args());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const std::string id : {"a", "b", "c"}) {
    EXPECT_TRUE(fs::exists(dir_ / "out" / (id + ".h5"))) << id;
    EXPECT_TRUE(fs::exists(dir_ / "out" / (id + ".mp4"))) << id;
  }
  EXPECT_EQ(statuses(),
            (std::map<std::string, std::string>{{"a", "done"}, {"b", "done"}, {"c", "done"}}));
  EXPECT_EQ(report()["totals"]["done"], 3);
  EXPECT_FALSE(fs::exists(dir_ / "out" / ".report.rank0.json"));
  // Each item's memory: the DiT weights held and the peak so far (the host's, on the CPU).
  for (const auto& item : report()["items"]) {
    EXPECT_EQ(item["memory"]["of"], "host");
    EXPECT_GT(item["memory"]["dit_weights_gib"].get<double>(), 0.0);
    EXPECT_GT(item["memory"]["peak_gib"].get<double>(),
              item["memory"]["dit_weights_gib"].get<double>());
  }

  const io::LatentsFile a = io::read_latents_file(path("out/a.h5"));
  EXPECT_EQ(a.record.id, "a");
  EXPECT_EQ(a.record.prompt, "a red fox in the snow");
  EXPECT_EQ(a.record.seed, 1u);
  EXPECT_EQ(a.record.steps, 3);
  EXPECT_EQ(a.record.solver, "unipc");
  EXPECT_EQ(a.record.noise, "philox seed 1");
  EXPECT_EQ(a.record.world_size, 1);
  EXPECT_EQ(a.latents.shape(), (core::Shape{16, 2, 4, 4}));
  const io::LatentsFile c = io::read_latents_file(path("out/c.h5"));
  EXPECT_EQ(c.record.negative_prompt, "blurry");
  EXPECT_EQ(c.latents.shape(), (core::Shape{16, 1, 4, 6}));

  // Again: everything is complete.
  r = run_wanbatch(run_args());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(statuses(),
            (std::map<std::string, std::string>{
                {"a", "skipped-complete"}, {"b", "skipped-complete"}, {"c", "skipped-complete"}}));

  // One video gone: only that item runs again, to the same latents.
  const auto b_before = io::read_latents_file(path("out/b.h5")).latents;
  fs::remove(dir_ / "out" / "b.mp4");
  r = run_wanbatch(run_args());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(statuses(), (std::map<std::string, std::string>{
                            {"a", "skipped-complete"}, {"b", "done"}, {"c", "skipped-complete"}}));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "b.mp4"));
  const auto b_after = io::read_latents_file(path("out/b.h5")).latents;
  ASSERT_EQ(b_before.nbytes(), b_after.nbytes());
  EXPECT_EQ(std::memcmp(b_before.data<float>(), b_after.data<float>(), b_before.nbytes()), 0);

  // A changed item (another seed) no longer matches its file: it runs again.
  {
    std::ifstream in(dir_ / "m.jsonl");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.replace(text.find("\"seed\": 1"), 9, "\"seed\": 2");
    std::ofstream(dir_ / "m.jsonl") << text;
  }
  r = run_wanbatch(run_args("--no-video"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(statuses()["a"], "done");
  EXPECT_EQ(statuses()["b"], "skipped-complete");
}

TEST_F(Run, ABadItemFailsAloneAndTheExitStatusSaysSo) {
  {
    io::Hdf5Writer noise(path("noise.h5"));
    noise.write("noise", core::Tensor::zeros({16, 1, 2, 2}, core::DType::F32));
    noise.commit();
  }
  std::ofstream(dir_ / "m.jsonl", std::ios::app)
      << R"({"id": "bad", "prompt": "x", "width": 32, "height": 32, "frames": 5, "steps": 2, "init_noise": "noise.h5"})"
      << "\n";
  const auto r = run_wanbatch(run_args("--no-video"));
  EXPECT_NE(r.status, 0) << r.output;
  const auto s = statuses();
  EXPECT_EQ(s.at("a"), "done");
  EXPECT_EQ(s.at("b"), "done");
  EXPECT_EQ(s.at("c"), "done");
  EXPECT_EQ(s.at("bad"), "failed");
  EXPECT_FALSE(fs::exists(dir_ / "out" / "bad.h5"));
  EXPECT_EQ(report()["totals"]["failed"], 1);
  const nlohmann::json r2 = report();
  for (const auto& item : r2["items"]) {
    if (item["id"] == "bad") {
      EXPECT_NE(item["reason"].get<std::string>().find("noise.h5"), std::string::npos)
          << item.dump();
    }
  }
}

TEST_F(Run, DryRunPrintsThePlanAndWritesNothing) {
  const auto r = run_wanbatch(run_args("--dry-run --shard 1/2"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("3 items, shard 1/2: 1 items"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("c (line 3) 48x32"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("a (line 1)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("t5.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  // A bad manifest or a missing file fails the dry run, naming it.
  std::ofstream(dir_ / "m.jsonl", std::ios::app) << R"({"id": "a", "prompt": "again"})"
                                                 << "\n";
  auto bad = run_wanbatch(run_args("--dry-run"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("m.jsonl:4"), std::string::npos) << bad.output;
  bad = run_wanbatch("run --manifest " + path("m.jsonl") + " --output-dir " + path("out") +
                     " --dit " + path("model") + " --no-video --t5 " + path("missing.safetensors") +
                     " --tokenizer " + path("spiece.model") + " --dry-run");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("missing.safetensors"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

}  // namespace
}  // namespace wanbatch
