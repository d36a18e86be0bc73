// `wanbatch run` end to end on tiny random models (DiT, VAE, umT5, tokenizer from make-test-model):
// a manifest to files and report.json, resume (skip complete items, redo an incomplete one),
// failure isolation, and --dry-run; image-to-video items on each kind of image model.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "io/hdf5_file.h"
#include "io/image_reader.h"
#include "io/latents_file.h"
#include "io/video_writer.h"
#include "model/wan/image_conditioning.h"
#include "model/wan/image_sizes.h"
#include "model/wan/vae_loader.h"
#include "reference_match.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"
#include "test_image.h"

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
    // Nothing offloaded or sharded here; the activations of the item's forwards.
    EXPECT_EQ(item["memory"]["dit_host_weights_gib"].get<double>(), 0.0);
    EXPECT_EQ(item["memory"]["dit_weight_buffers_gib"].get<double>(), 0.0);
    EXPECT_GT(item["memory"]["dit_activations_gib"].get<double>(), 0.0);
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

// Image-to-video items (issue 11) on tiny models of each kind: the item's width × height is the
// pixel budget, the video takes the image's aspect ratio (the official size rules), the image's
// conditions reach the sampler.
class ImageRun : public wanbatch::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!io::video_built()) GTEST_SKIP() << "this build has no FFmpeg: images cannot be read";
    make("tiny-t2v", "t2v",
         "--t5 " + path("t5.safetensors") + " --tokenizer " + path("spiece.model"));
    testing::write_test_png(dir_ / "wide.png", 100, 60);
    testing::write_test_png(dir_ / "tall.png", 60, 100, 1.0f);
    std::ofstream(dir_ / "bad.png") << "not an image";
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  void make(const std::string& variant, const std::string& folder, const std::string& extra) {
    const auto r = run_wanbatch("make-test-model --variant " + variant + " --output " +
                                path(folder) + " " + extra);
    ASSERT_EQ(r.status, 0) << r.output;
  }

  void manifest(const std::string& name, const std::string& lines) const {
    std::ofstream(dir_ / name) << lines;
  }

  // `wanbatch run` of manifest `name` into `out` with the models in `models`.
  testing::RunResult run(const std::string& name, const std::string& out,
                         const std::string& models) const {
    return run_wanbatch("run --manifest " + path(name) + " --output-dir " + path(out) + " " +
                        models + " --t5 " + path("t5.safetensors") + " --tokenizer " +
                        path("spiece.model") + " --text-len 16 --preset ultrafast");
  }

  nlohmann::json report(const std::string& out) const {
    std::ifstream in(dir_ / out / "report.json");
    return nlohmann::json::parse(in);
  }

  std::map<std::string, std::string> statuses(const std::string& out) const {
    std::map<std::string, std::string> s;
    const nlohmann::json r = report(out);
    for (const auto& item : r["items"]) s[item["id"]] = item["status"];
    return s;
  }
};

// Budget 64×64 = 4096 pixels (image2video.py): a 100×60 image (aspect 0.6) gets
// lat_h = ⌊⌊√(4096·0.6)⌋/8 ... = ⌊49.57/8⌋ = 6 → ⌊6/2⌋·2 = 6, h = 48; lat_w = ⌊82.62/8⌋ = 10 →
// 10, w = 80: 80×48; the 60×100 one 48×80.
TEST_F(ImageRun, TwoExpertImageToVideoFollowsTheImage) {
  make("tiny-i2v-a14b", "i2v", "--vae " + path("vae21.safetensors"));
  manifest(
      "m.jsonl",
      R"({"id": "wide", "prompt": "a red fox", "image": "wide.png", "width": 64, "height": 64, "frames": 5, "steps": 3, "seed": 1})"
      "\n"
      R"({"id": "tall", "prompt": "waves", "image": "tall.png", "width": 64, "height": 64, "frames": 5, "steps": 2})"
      "\n"
      R"({"id": "bad", "prompt": "a boat", "image": "bad.png", "width": 64, "height": 64, "frames": 5, "steps": 2})"
      "\n");
  const std::string models = "--dit " + path("i2v/low_noise_model") + " --dit-high-noise " +
                             path("i2v/high_noise_model") + " --vae " + path("vae21.safetensors");

  // The plan shows each image's size, and the image that cannot be read.
  auto r = run_wanbatch("run --manifest " + path("m.jsonl") + " --output-dir " + path("out") + " " +
                        models + " --t5 " + path("t5.safetensors") + " --tokenizer " +
                        path("spiece.model") + " --dry-run");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wide (line 1) within 64x64"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(100x60) → 80x48"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(60x100) → 48x80"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("image FAILS: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("boundary 0.900000"), std::string::npos) << r.output;
  // Lightning changes the items' sampling, not the model's expert switch.
  r = run_wanbatch("run --manifest " + path("m.jsonl") + " --output-dir " + path("out") + " " +
                   models + " --t5 " + path("t5.safetensors") + " --tokenizer " +
                   path("spiece.model") + " --dry-run --lightning");
  EXPECT_NE(r.output.find("boundary 0.900000"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  // The bad image fails its item alone.
  r = run("m.jsonl", "out", models);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_EQ(statuses("out"), (std::map<std::string, std::string>{
                                 {"wide", "done"}, {"tall", "done"}, {"bad", "failed"}}));
  const nlohmann::json done = report("out");
  for (const auto& item : done["items"]) {
    if (item["id"] == "bad") {
      EXPECT_NE(item["reason"].get<std::string>().find("bad.png"), std::string::npos)
          << item.dump();
    } else if (item["id"] == "wide") {
      EXPECT_EQ(item["size"], (nlohmann::json{{"width", 80}, {"height", 48}}));
    }
  }
  EXPECT_FALSE(fs::exists(dir_ / "out" / "bad.h5"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "wide.mp4"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "tall.mp4"));
  const io::LatentsFile wide = io::read_latents_file(path("out/wide.h5"));
  EXPECT_EQ(wide.latents.shape(), (core::Shape{16, 2, 6, 10}));
  EXPECT_EQ(wide.record.width, 80);
  EXPECT_EQ(wide.record.height, 48);
  EXPECT_EQ(wide.record.image, path("wide.png"));
  EXPECT_EQ(wide.record.max_area, 64 * 64);
  // Wan2.2 I2V-A14B's defaults reach the run: boundary 0.9, guide 3.5 for both experts.
  EXPECT_EQ(wide.record.boundary, 0.9);
  EXPECT_EQ(wide.record.guide_scale, 3.5);
  EXPECT_EQ(wide.record.guide_scale_high, 3.5);
  const io::LatentsFile tall = io::read_latents_file(path("out/tall.h5"));
  EXPECT_EQ(tall.latents.shape(), (core::Shape{16, 2, 10, 6}));
  EXPECT_EQ(tall.record.width, 48);
  EXPECT_EQ(tall.record.height, 80);

  // --offload blocks,model (issue 9) changes where the weights wait between uses (the experts
  // swap at the boundary, the text encoder and the DiTs leave for the decode), not the numbers.
  r = run("m.jsonl", "offloaded", models + " --offload blocks,model");
  EXPECT_NE(r.status, 0) << r.output;  // the bad image again
  for (const std::string id : {"wide", "tall"}) {
    EXPECT_EQ(io::read_latents_file(path("offloaded/" + id + ".h5")).latents.to_floats(),
              io::read_latents_file(path("out/" + id + ".h5")).latents.to_floats())
        << id;
  }
  // The report says where the weights waited: in host memory, the blocks' copy buffers aside.
  for (const auto& item : report("offloaded")["items"]) {
    if (item["status"] != "done") continue;
    EXPECT_GT(item["memory"]["dit_host_weights_gib"].get<double>(), 0.0) << item.dump();
    EXPECT_GT(item["memory"]["dit_weight_buffers_gib"].get<double>(), 0.0) << item.dump();
  }

  // Again without the bad line: the image items are complete by their image and budget.
  manifest(
      "m.jsonl",
      R"({"id": "wide", "prompt": "a red fox", "image": "wide.png", "width": 64, "height": 64, "frames": 5, "steps": 3, "seed": 1})"
      "\n"
      R"({"id": "tall", "prompt": "waves", "image": "tall.png", "width": 64, "height": 64, "frames": 5, "steps": 2})"
      "\n");
  r = run("m.jsonl", "out", models);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(statuses("out"), (std::map<std::string, std::string>{{"wide", "skipped-complete"},
                                                                 {"tall", "skipped-complete"}}));

  // An I2V model's item needs an image, named by its line, before anything runs; and --no-video
  // still needs the VAE, which encodes the images.
  manifest("no_image.jsonl", R"({"id": "a", "prompt": "p", "width": 64, "height": 64})"
                             "\n");
  r = run("no_image.jsonl", "out2", models);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no_image.jsonl:1: image: missing"), std::string::npos) << r.output;
  r = run_wanbatch("run --manifest " + path("m.jsonl") + " --output-dir " + path("out2") +
                   " --dit " + path("i2v/low_noise_model") + " --dit-high-noise " +
                   path("i2v/high_noise_model") + " --no-video --t5 " + path("t5.safetensors") +
                   " --tokenizer " + path("spiece.model"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("need --vae"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out2"));

  // A text-to-video model takes no image.
  r = run("m.jsonl", "out3", "--dit " + path("t2v") + " --no-video");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("m.jsonl:1: image: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("takes no image"), std::string::npos) << r.output;
}

// TI2V (best_output_size with multiples of 32): budget 96×64 = 6144 for a 100×60 image gives
// 96×64 (width first: 96, 6144/96 = 64, aspect 1.5; height first: 32, 192, aspect 6). The image's
// latent is latent frame 0; an item without an image is plain text-to-video.
TEST_F(ImageRun, TextImageToVideoStartsFromTheImageLatent) {
  make("tiny-ti2v", "ti2v", "--vae " + path("vae22.safetensors"));
  manifest(
      "m.jsonl",
      R"({"id": "wide", "prompt": "a red fox", "image": "wide.png", "width": 96, "height": 64, "frames": 5, "steps": 3, "seed": 1})"
      "\n"
      R"({"id": "t2v", "prompt": "waves", "width": 64, "height": 32, "frames": 5, "steps": 2})"
      "\n");
  // --no-video: the VAE still loads, to encode the image.
  const auto r =
      run("m.jsonl", "out",
          "--dit " + path("ti2v") + " --vae " + path("vae22.safetensors") + " --no-video");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "wide.mp4"));
  const io::LatentsFile wide = io::read_latents_file(path("out/wide.h5"));
  ASSERT_EQ(wide.latents.shape(), (core::Shape{48, 2, 4, 6}));
  EXPECT_EQ(wide.record.width, 96);
  EXPECT_EQ(wide.record.height, 64);
  const io::LatentsFile t2v = io::read_latents_file(path("out/t2v.h5"));
  EXPECT_EQ(t2v.latents.shape(), (core::Shape{48, 2, 2, 4}));
  EXPECT_FALSE(t2v.record.image);

  // Frame 0 is the image's latent as the library makes it (the conditioning itself is tested
  // against the NumPy reference in model/): the loop kept it. 1e-6 relative: the same code on the
  // same inputs, only the thread split of the VAE's sums may differ between the processes.
  const core::Context ctx = core::Context::cpu();
  model::wan::WanVae vae = model::wan::load_vae(path("vae22.safetensors"), ctx);
  const core::Tensor z = model::wan::ti2v_first_frame(
      ctx, vae, model::wan::ti2v_image(io::read_image_rgb8(path("wide.png")), {96, 64}));
  ASSERT_EQ(z.shape(), (core::Shape{48, 1, 4, 6}));
  const std::vector<float> got = wide.latents.to_floats(), want = z.to_floats();
  std::vector<float> frame0;
  for (int64_t c = 0; c < 48; ++c) {
    const auto first = got.begin() + c * 2 * 24;
    frame0.insert(frame0.end(), first, first + 24);
  }
  EXPECT_TRUE(testing::matches_reference(frame0, want, 1e-6));
}

// Wan2.1 I2V: the image branch needs --clip, whose features reach the DiT (another CLIP tower,
// other latents); Wan2.1's 480p shift of 3 is the default at 832×480.
TEST_F(ImageRun, WanTwoOneImageToVideoUsesClip) {
  make("tiny-i2v-clip", "clip_model",
       "--vae " + path("vae21.safetensors") + " --clip " + path("clip.safetensors"));
  make("tiny-i2v-clip", "other", "--seed 5 --clip " + path("clip2.safetensors"));
  manifest(
      "m.jsonl",
      R"({"id": "wide", "prompt": "a red fox", "image": "wide.png", "width": 64, "height": 64, "frames": 5, "steps": 2, "seed": 1})"
      "\n");
  const std::string models =
      "--dit " + path("clip_model") + " --vae " + path("vae21.safetensors") + " --no-video";
  auto r = run("m.jsonl", "none", models);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("give --clip PATH"), std::string::npos) << r.output;
  r = run("m.jsonl", "t2v",
          "--dit " + path("t2v") + " --no-video --clip " + path("clip.safetensors"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--clip is for models with the CLIP image branch"), std::string::npos)
      << r.output;

  r = run("m.jsonl", "out", models + " --clip " + path("clip.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("m.jsonl", "out2", models + " --clip " + path("clip2.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  const io::LatentsFile a = io::read_latents_file(path("out/wide.h5"));
  const io::LatentsFile b = io::read_latents_file(path("out2/wide.h5"));
  EXPECT_EQ(a.latents.shape(), (core::Shape{16, 2, 6, 10}));
  EXPECT_EQ(a.record.shift, 5.0);
  EXPECT_EQ(a.record.steps, 2);
  EXPECT_FALSE(testing::matches_reference(b.latents.to_floats(), a.latents.to_floats(), 1e-3));

  manifest("480p.jsonl", R"({"id": "wide", "prompt": "a red fox", "image": "wide.png"})"
                         "\n");
  r = run_wanbatch("run --manifest " + path("480p.jsonl") + " --output-dir " + path("out3") + " " +
                   models + " --clip " + path("clip.safetensors") + " --t5 " +
                   path("t5.safetensors") + " --tokenizer " + path("spiece.model") + " --dry-run");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("within 832x480, 81 frames, unipc 40 steps, shift 3,"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("clip: " + path("clip.safetensors")), std::string::npos) << r.output;
}

}  // namespace
}  // namespace wanbatch
