#include "jobs/manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "jobs/shard.h"
#include "model/wan/config.h"
#include "model/wan/defaults.h"

namespace wanbatch::jobs {
namespace {

namespace fs = std::filesystem;

// Small defaults the sizes below fit (Wan2.1's VAE: width and height multiples of 16, 4k+1 frames).
JobDefaults tiny_defaults() {
  JobDefaults defaults;
  defaults.width = 64;
  defaults.height = 48;
  defaults.frames = 9;
  defaults.steps = 4;
  defaults.solver = "unipc";
  defaults.shift = 5.0;
  defaults.guide_scale = 5.0;
  defaults.fps = 16;
  defaults.negative_prompt = "bad";
  defaults.image = JobDefaults::ImageInput::Optional;  // as TI2V: an image may be given
  defaults.model_name = "the tiny model";
  return defaults;
}

std::vector<ManifestItem> parse(const std::string& text,
                                const JobDefaults& defaults = tiny_defaults(),
                                const fs::path& base = ".") {
  return parse_manifest(text, "m.jsonl", base, defaults);
}

// The errors parse reports; fails the test when it reports none.
std::vector<std::string> errors_of(const std::string& text,
                                   const JobDefaults& defaults = tiny_defaults(),
                                   const fs::path& base = ".") {
  try {
    parse(text, defaults, base);
  } catch (const ManifestError& e) {
    return e.errors();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return {};
}

// The one error a one-bad-line manifest gives.
std::string single_error(const std::string& text, const JobDefaults& defaults = tiny_defaults()) {
  const auto errors = errors_of(text, defaults);
  EXPECT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
  return errors.empty() ? "" : errors[0];
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("wanbatch_manifest_test_" +
             std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }

 private:
  fs::path path_;
};

TEST(Manifest, AppliesDefaults) {
  const auto items =
      parse(R"({"id": "a", "prompt": "a cat"})"
            "\n"
            R"({"id": "b", "prompt": "a dog", "width": 96, "height": 64, "frames": 17,)"
            R"( "steps": 8, "solver": "dpm", "shift": 3, "guide_scale": 4.5,)"
            R"( "seed": 18446744073709551615, "fps": 24, "negative_prompt": ""})");
  ASSERT_EQ(items.size(), 2u);
  const ManifestItem& a = items[0];
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(a.id, "a");
  EXPECT_EQ(a.prompt, "a cat");
  EXPECT_EQ(a.negative_prompt, "bad");
  EXPECT_EQ(a.width, 64);
  EXPECT_EQ(a.height, 48);
  EXPECT_EQ(a.frames, 9);
  EXPECT_EQ(a.steps, 4);
  EXPECT_EQ(a.solver, "unipc");
  EXPECT_EQ(a.shift, 5.0);
  EXPECT_EQ(a.guide_scale, 5.0);
  EXPECT_FALSE(a.guide_scale_high);
  EXPECT_EQ(a.fps, 16);
  EXPECT_TRUE(a.seed_from_id);
  EXPECT_EQ(a.seed, default_seed("a"));
  EXPECT_TRUE(a.image.empty());
  EXPECT_TRUE(a.init_noise.empty());

  const ManifestItem& b = items[1];
  EXPECT_EQ(b.line, 2);
  EXPECT_EQ(b.width, 96);
  EXPECT_EQ(b.height, 64);
  EXPECT_EQ(b.frames, 17);
  EXPECT_EQ(b.steps, 8);
  EXPECT_EQ(b.solver, "dpm++");  // canonical name
  EXPECT_EQ(b.shift, 3.0);
  EXPECT_EQ(b.guide_scale, 4.5);
  EXPECT_EQ(b.seed, UINT64_MAX);
  EXPECT_FALSE(b.seed_from_id);
  EXPECT_EQ(b.fps, 24);
  EXPECT_EQ(b.negative_prompt, "");  // given empty: kept empty, not the default
}

TEST(Manifest, SkipsBlankLinesAndKeepsLineNumbers) {
  const auto items =
      parse("\n  \r\n{\"id\": \"x\", \"prompt\": \"p\"}\r\n\n{\"id\": \"y\", \"prompt\": \"q\"}");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].line, 3);
  EXPECT_EQ(items[1].line, 5);
}

TEST(Manifest, JobDefaultsFromModelDefaults) {
  model::wan::GenerationDefaults generation;
  generation.steps = 40;
  generation.shift = 12;
  generation.guide_scale = 3;
  generation.guide_scale_high = 4;
  const JobDefaults defaults = job_defaults(generation, 16, true);
  EXPECT_EQ(defaults.steps, 40);
  EXPECT_EQ(defaults.shift, 12);
  EXPECT_EQ(defaults.latent_channels, 16);
  EXPECT_TRUE(defaults.two_experts);
  JobDefaults tiny = defaults;
  tiny.width = 64;
  tiny.height = 48;
  tiny.frames = 9;
  const auto items = parse(R"({"id": "a", "prompt": "p"})", tiny);
  EXPECT_EQ(items[0].guide_scale, 3);
  EXPECT_EQ(items[0].guide_scale_high, 4);
}

TEST(Manifest, GuideScaleOneNumberOrPair) {
  JobDefaults moe = tiny_defaults();
  moe.two_experts = true;
  moe.guide_scale = 3;
  moe.guide_scale_high = 4;
  const auto items = parse(R"({"id": "a", "prompt": "p", "guide_scale": [3.5, 2]})"
                           "\n"
                           R"({"id": "b", "prompt": "p", "guide_scale": 6})",
                           moe);
  EXPECT_EQ(items[0].guide_scale, 3.5);
  EXPECT_EQ(items[0].guide_scale_high, 2.0);
  EXPECT_EQ(items[1].guide_scale, 6.0);
  EXPECT_FALSE(items[1].guide_scale_high);  // one number: both experts use it

  EXPECT_NE(single_error(R"({"id": "a", "prompt": "p", "guide_scale": [3, 4]})")
                .find("m.jsonl:1: guide_scale: [low, high] is for two-expert"),
            std::string::npos);
  EXPECT_NE(single_error(R"({"id": "a", "prompt": "p", "guide_scale": [3]})", moe)
                .find("m.jsonl:1: guide_scale: an array must be [low, high]"),
            std::string::npos);
  EXPECT_NE(single_error(R"({"id": "a", "prompt": "p", "guide_scale": [3, "x"]})", moe)
                .find("m.jsonl:1: guide_scale[1]: must be a number"),
            std::string::npos);
  EXPECT_NE(single_error(R"({"id": "a", "prompt": "p", "guide_scale": "5"})")
                .find("m.jsonl:1: guide_scale: must be a number or [low, high], not a string"),
            std::string::npos);
}

TEST(Manifest, DefaultSeedIsFnv1aOfTheId) {
  // Pinned: changing the hash would change every run that relies on the default.
  EXPECT_EQ(default_seed(""), 14695981039346656037ull);
  EXPECT_EQ(default_seed("cat"), 17718013163177550631ull);
  EXPECT_EQ(default_seed("lighthouse-storm"), 7258333171795531413ull);
  const auto first = parse(R"({"id": "cat", "prompt": "p"})");
  const auto again = parse(
      "\n\n"
      R"({"id": "cat", "prompt": "other", "steps": 9})");
  EXPECT_EQ(first[0].seed, 17718013163177550631ull);
  EXPECT_EQ(again[0].seed, first[0].seed);  // depends on the id only
}

struct ErrorCase {
  const char* line;
  const char* expected;  // the start of the message after "m.jsonl:1: "
};

TEST(Manifest, NamesLineAndFieldOfEachError) {
  const ErrorCase cases[] = {
      {R"({"id": "a", "prompt": "p")", "invalid JSON"},
      {R"(# a comment)", "invalid JSON (comments are not allowed in JSON Lines)"},
      {R"([1, 2])", "must be a JSON object, not an array"},
      {R"({"id": "a", "prompt": "p", "promt": "x"})", "promt: unknown key (known: id, prompt,"},
      {R"({"id": "a", "prompt": "p", "steps": 4, "steps": 5})", "steps: given more than once"},
      {R"({"prompt": "p"})", "id: missing"},
      {R"({"id": "a"})", "prompt: missing"},
      {R"({"id": "a", "prompt": ""})", "prompt: must not be empty"},
      {R"({"id": 5, "prompt": "p"})", "id: must be a string, not an integer"},
      {R"({"id": "a/b", "prompt": "p"})", "id: \"a/b\" has a character other than"},
      {R"({"id": ".hidden", "prompt": "p"})", "id: \".hidden\" must not start with '.'"},
      {R"({"id": "", "prompt": "p"})", "id: must not be empty"},
      {R"({"id": "a", "prompt": ["p"]})", "prompt: must be a string, not an array"},
      {R"({"id": "a", "prompt": "p", "negative_prompt": null})",
       "negative_prompt: must be a string, not null"},
      {R"({"id": "a", "prompt": "p", "seed": -1})", "seed: -1 is negative"},
      {R"({"id": "a", "prompt": "p", "seed": 1.5})", "seed: 1.5 is not an integer"},
      {R"({"id": "a", "prompt": "p", "seed": 18446744073709551616})", "seed: "},
      {R"({"id": "a", "prompt": "p", "seed": "7"})", "seed: must be an integer, not a string"},
      {R"({"id": "a", "prompt": "p", "width": 65})", "width: 65 is not a positive multiple of 16"},
      {R"({"id": "a", "prompt": "p", "height": 40})",
       "height: 40 is not a positive multiple of 16"},
      {R"({"id": "a", "prompt": "p", "frames": 10})", "frames: 10 is not 4k+1"},
      {R"({"id": "a", "prompt": "p", "frames": 0})", "frames: 0 is not in [1, "},
      {R"({"id": "a", "prompt": "p", "width": 64.0})",
       "width: must be an integer, not a fractional number"},
      {R"({"id": "a", "prompt": "p", "steps": true})", "steps: must be an integer, not a boolean"},
      {R"({"id": "a", "prompt": "p", "steps": 100000})", "steps: 100000 is not in [1, 1000]"},
      {R"({"id": "a", "prompt": "p", "fps": 0})", "fps: 0 is not in [1, 1000]"},
      {R"({"id": "a", "prompt": "p", "solver": "ddim"})", "solver: "},
      {R"({"id": "a", "prompt": "p", "shift": 0})", "shift: 0 must be > 0"},
      {R"({"id": "a", "prompt": "p", "guide_scale": -1})", "guide_scale: -1 must be ≥ 0"},
      {R"({"id": "a", "prompt": "p", "image": "missing.png"})",
       "image: \"missing.png\" does not exist"},
      {R"({"id": "a", "prompt": "p", "init_noise": "no.h5"})",
       "init_noise: \"no.h5\" does not exist"},
      {R"({"id": "a", "prompt": "p", "image": 3})", "image: must be a string, not an integer"},
  };
  for (const ErrorCase& c : cases) {
    const std::string error = single_error(c.line);
    EXPECT_EQ(error.rfind(std::string("m.jsonl:1: ") + c.expected, 0), 0u)
        << "line: " << c.line << "\nerror: " << error;
  }
}

TEST(Manifest, SizesFollowTheModelsVae) {
  JobDefaults wan22 = tiny_defaults();
  wan22.latent_channels = 48;  // Wan2.2's VAE: multiples of 32
  wan22.height = 64;
  EXPECT_NO_THROW(parse(R"({"id": "a", "prompt": "p"})", wan22));
  const std::string error = single_error(R"({"id": "a", "prompt": "p", "height": 48})", wan22);
  EXPECT_EQ(error.rfind("m.jsonl:1: height: 48 is not a positive multiple of 32", 0), 0u) << error;
  // A default the model cannot take is named as the default.
  JobDefaults bad = tiny_defaults();
  bad.frames = 8;
  const std::string from_default = single_error(R"({"id": "a", "prompt": "p"})", bad);
  EXPECT_NE(from_default.find("frames: 8 is not 4k+1"), std::string::npos) << from_default;
  EXPECT_NE(from_default.find("(the job's default)"), std::string::npos) << from_default;
}

TEST(Manifest, DuplicateIdsNameTheFirstLine) {
  const auto errors = errors_of(R"({"id": "a", "prompt": "p"})"
                                "\n\n"
                                R"({"id": "a", "prompt": "q"})");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "m.jsonl:3: id: \"a\" is already used on line 1");
}

TEST(Manifest, CollectsEveryError) {
  const std::string text = R"({"id": "a", "prompt": "p", "width": 65, "steps": "x"})"
                           "\n"
                           R"({"id": "ok", "prompt": "p"})"
                           "\n"
                           "not json\n"
                           R"({"id": "a", "prompt": "p", "colour": 1})";
  const auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 5u) << ::testing::PrintToString(errors);
  std::multiset<std::string> where;
  for (const auto& error : errors) where.insert(error.substr(0, error.find(':', 11)));
  EXPECT_EQ(where.count("m.jsonl:1: width"), 1u);
  EXPECT_EQ(where.count("m.jsonl:1: steps"), 1u);
  EXPECT_EQ(errors[2].rfind("m.jsonl:3: invalid JSON", 0), 0u);
  EXPECT_EQ(where.count("m.jsonl:4: colour"), 1u);
  EXPECT_EQ(where.count("m.jsonl:4: id"), 1u);  // the duplicate

  try {
    parse(text);
  } catch (const ManifestError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("invalid manifest m.jsonl (5 errors):\n  m.jsonl:1: ", 0), 0u)
        << message;
  }
}

TEST(Manifest, ReportsTwentyErrorsThenTheCount) {
  std::string text;
  for (int i = 0; i < 25; ++i) text += "{\"id\": \"i" + std::to_string(i) + "\"}\n";
  try {
    parse(text);
    FAIL() << "no error";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.errors().size(), 25u);
    const std::string message = e.what();
    EXPECT_NE(message.find("m.jsonl:20: prompt: missing\n  ... and 5 more"), std::string::npos)
        << message;
    EXPECT_EQ(message.find("m.jsonl:21:"), std::string::npos);
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 21);
  }
}

TEST(Manifest, EmptyManifestIsAnError) {
  const auto errors = errors_of("\n  \n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("no items"), std::string::npos);
}

TEST(Manifest, FilesAreRelativeToTheManifestsFolder) {
  TempDir dir;
  fs::create_directories(dir.path() / "inputs");
  dir.write("inputs/cat.png", "png");
  dir.write("noise.h5", "h5");
  dir.write("m.jsonl", R"({"id": "a", "prompt": "p", "image": "inputs/cat.png", "init_noise": ")" +
                           (dir.path() / "noise.h5").string() + "\"}\n" +
                           R"({"id": "b", "prompt": "p", "image": "inputs"})" + "\n");
  const std::string path = (dir.path() / "m.jsonl").string();
  try {
    read_manifest(path, tiny_defaults());
    FAIL() << "a folder as image was accepted";
  } catch (const ManifestError& e) {
    ASSERT_EQ(e.errors().size(), 1u);
    EXPECT_EQ(e.errors()[0].rfind(path + ":2: image: \"inputs\" is not a file", 0), 0u)
        << e.errors()[0];
  }
  dir.write("m.jsonl", R"({"id": "a", "prompt": "p", "image": "inputs/cat.png", "init_noise": ")" +
                           (dir.path() / "noise.h5").string() + "\"}\n");
  const auto items = read_manifest(path, tiny_defaults());
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(fs::path(items[0].image), dir.path() / "inputs/cat.png");
  EXPECT_EQ(fs::path(items[0].init_noise), dir.path() / "noise.h5");
}

// What the model does with images (issue 11): an I2V model needs one on every line, a T2V model
// takes none, TI2V either; an image item's width × height is a pixel budget, not its size.
TEST(Manifest, ImagesAsTheModelTakesThem) {
  TempDir dir;
  dir.write("cat.png", "png");
  const std::string with_image = R"({"id": "a", "prompt": "p", "image": "cat.png"})";
  const std::string without = R"({"id": "b", "prompt": "p"})";
  model::wan::DitConfig i2v = model::wan::preset("tiny-i2v");
  i2v.variant = "I2V model";
  const model::wan::GenerationDefaults generation;
  JobDefaults defaults = job_defaults(generation, i2v, true, false);
  EXPECT_EQ(defaults.image, JobDefaults::ImageInput::Required);
  EXPECT_EQ(parse(with_image, defaults, dir.path()).size(), 1u);
  std::string error = errors_of(with_image + "\n" + without, defaults, dir.path()).at(0);
  EXPECT_EQ(error.rfind("m.jsonl:2: image: missing; I2V model is an image-to-video model", 0), 0u)
      << error;

  model::wan::DitConfig t2v = model::wan::preset("tiny-t2v");
  t2v.variant = "T2V model";
  defaults = job_defaults(generation, t2v, false, false);
  EXPECT_EQ(defaults.image, JobDefaults::ImageInput::None);
  error = errors_of(without + "\n" + with_image, defaults, dir.path()).at(0);
  EXPECT_EQ(error.rfind("m.jsonl:2: image: T2V model is a text-to-video model", 0), 0u) << error;

  defaults = job_defaults(generation, model::wan::preset("tiny-ti2v"), false, false);
  EXPECT_EQ(defaults.image, JobDefaults::ImageInput::Optional);
  const auto items = parse(with_image + "\n" + without, defaults, dir.path());
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(fs::path(items[0].image), dir.path() / "cat.png");
  EXPECT_TRUE(items[1].image.empty());
  EXPECT_EQ(items[1].width, 1280);  // TI2V-5B's size
  EXPECT_EQ(items[1].height, 704);

  // The budget need not fit the VAE grid (the image's size will); frames still must, and an item
  // without an image keeps the size rules.
  EXPECT_EQ(parse(R"({"id": "a", "prompt": "p", "image": "cat.png", "width": 1000, "height": 500})",
                  defaults, dir.path())[0]
                .width,
            1000);
  error = errors_of(R"({"id": "a", "prompt": "p", "image": "cat.png", "frames": 8})", defaults,
                    dir.path())
              .at(0);
  EXPECT_EQ(error.rfind("m.jsonl:1: frames: 8 is not 4k+1", 0), 0u) << error;
  error =
      errors_of(R"({"id": "a", "prompt": "p", "width": 1000, "height": 512})", defaults, dir.path())
          .at(0);
  EXPECT_EQ(error.rfind("m.jsonl:1: width: 1000 is not a positive multiple of 32", 0), 0u) << error;
}

// Wan2.1 I2V's generate.py: shift 3 at 832×480 and 480×832 unless the item gives one; Wan2.2's
// I2V-A14B (two experts) keeps 5 everywhere.
TEST(Manifest, WanTwoOneImageToVideoShiftsLessAt480p) {
  TempDir dir;
  dir.write("cat.png", "png");
  const model::wan::DitConfig i2v = model::wan::preset("tiny-i2v-clip");
  const model::wan::GenerationDefaults generation = model::wan::generation_defaults(i2v, false);
  const JobDefaults defaults = job_defaults(generation, i2v, false, false);
  const auto items =
      parse(R"({"id": "a", "prompt": "p", "image": "cat.png"})"
            "\n"
            R"({"id": "b", "prompt": "p", "image": "cat.png", "width": 480, "height": 832})"
            "\n"
            R"({"id": "c", "prompt": "p", "image": "cat.png", "shift": 4})"
            "\n"
            R"({"id": "d", "prompt": "p", "image": "cat.png", "width": 1280, "height": 720})",
            defaults, dir.path());
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].shift, 3.0);
  EXPECT_EQ(items[1].shift, 3.0);
  EXPECT_EQ(items[2].shift, 4.0);
  EXPECT_EQ(items[3].shift, 5.0);
  EXPECT_EQ(items[0].steps, 40);
  const JobDefaults a14b =
      job_defaults(model::wan::generation_defaults(i2v, true), i2v, true, false);
  EXPECT_EQ(parse(R"({"id": "a", "prompt": "p", "image": "cat.png"})", a14b, dir.path())[0].shift,
            5.0);
  EXPECT_FALSE(job_defaults(generation, i2v, false, true).shift_480p);  // Lightning: its own
}

TEST(Manifest, UnreadableFileIsAnError) {
  EXPECT_THROW(read_manifest("/nonexistent/m.jsonl", tiny_defaults()), Error);
}

TEST(Manifest, ExamplePromptsParse) {
  const auto items =
      read_manifest(std::string(WANBATCH_SOURCE_DIR) + "/examples/prompts.jsonl", tiny_defaults());
  ASSERT_GE(items.size(), 3u);
  for (const auto& item : items) {
    EXPECT_EQ(item.width, 64);
    EXPECT_EQ(item.height, 48);
    EXPECT_EQ(item.frames, 9);
    EXPECT_LE(item.steps, 8);
  }
}

// Shards.

TEST(Shard, ParsesIndexSlashCount) {
  EXPECT_EQ(parse_shard("0/1"), (Shard{0, 1}));
  EXPECT_EQ(parse_shard("3/8"), (Shard{3, 8}));
  for (const char* bad : {"", "3", "8/8", "1/0", "-1/4", "a/4", "1/4x", " 1/4", "1//4"}) {
    EXPECT_THROW(parse_shard(bad), Error) << bad;
  }
  try {
    parse_shard("4/4");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("0-based"), std::string::npos) << e.what();
  }
}

TEST(Shard, ContiguousRangesCoverEveryItemOnce) {
  for (size_t items : {0u, 1u, 5u, 7u, 16u, 101u}) {
    for (int64_t count : {1, 2, 3, 4, 7, 8, 200}) {
      size_t next = 0;
      for (int64_t index = 0; index < count; ++index) {
        const ItemRange range = shard_range(items, {index, count});
        EXPECT_EQ(range.begin, next) << items << " items, shard " << index << "/" << count;
        EXPECT_GE(range.end, range.begin);
        const size_t size = range.end - range.begin;
        // Balanced: sizes differ by at most one, the longer ones first.
        EXPECT_EQ(size, items / count + (static_cast<size_t>(index) < items % count ? 1 : 0));
        next = range.end;
      }
      EXPECT_EQ(next, items) << items << " items, " << count << " shards";
    }
  }
  // The documented split: 10 items over 4 shards → 3, 3, 2, 2.
  EXPECT_EQ(shard_range(10, {1, 4}).begin, 3u);
  EXPECT_EQ(shard_range(10, {2, 4}).begin, 6u);
  EXPECT_EQ(shard_range(10, {3, 4}).end, 10u);
}

TEST(Shard, ItemsKeepManifestOrder) {
  std::vector<ManifestItem> items(5);
  for (size_t i = 0; i < items.size(); ++i) items[i].id = std::to_string(i);
  const auto second = shard_items(items, {1, 2});
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].id, "3");
  EXPECT_EQ(second[1].id, "4");
}

EnvLookup env_of(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const char* name) -> const char* {
    const auto it = values.find(name);
    return it == values.end() ? nullptr : it->second.c_str();
  };
}

TEST(Shard, FromSlurmArray) {
  EXPECT_FALSE(shard_from_slurm(env_of({})));
  EXPECT_EQ(
      shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "4"}})),
      (Shard{2, 4}));
  // --array=1-8
  EXPECT_EQ(shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "1"},
                                     {"SLURM_ARRAY_TASK_COUNT", "8"},
                                     {"SLURM_ARRAY_TASK_MIN", "1"}})),
            (Shard{0, 8}));
  // --array=0-14:2
  EXPECT_EQ(shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "14"},
                                     {"SLURM_ARRAY_TASK_COUNT", "8"},
                                     {"SLURM_ARRAY_TASK_MIN", "0"},
                                     {"SLURM_ARRAY_TASK_STEP", "2"}})),
            (Shard{7, 8}));
  // Malformed or unmappable.
  EXPECT_THROW(shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "2"}})), Error);
  EXPECT_THROW(
      shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "4"}})),
      Error);
  EXPECT_THROW(
      shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "0"}})),
      Error);
  EXPECT_THROW(shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "0"},
                                        {"SLURM_ARRAY_TASK_COUNT", "4"},
                                        {"SLURM_ARRAY_TASK_MIN", "1"}})),
               Error);
  // --array=1,5,7: task 7 is not the third of evenly spaced tasks from 1.
  try {
    shard_from_slurm(env_of({{"SLURM_ARRAY_TASK_ID", "7"},
                             {"SLURM_ARRAY_TASK_COUNT", "3"},
                             {"SLURM_ARRAY_TASK_MIN", "1"}}));
    FAIL() << "a gapped array was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--shard I/N"), std::string::npos) << e.what();
  }
}

TEST(Shard, OptionWinsOverSlurm) {
  const auto slurm = env_of({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "4"}});
  EXPECT_EQ(resolve_shard(std::string("1/3"), slurm), (Shard{1, 3}));
  EXPECT_EQ(resolve_shard(std::nullopt, slurm), (Shard{2, 4}));
  EXPECT_EQ(resolve_shard(std::nullopt, env_of({})), (Shard{0, 1}));
}

}  // namespace
}  // namespace wanbatch::jobs
