// The wanbatch executable as a user meets it: --version, --help, subcommands, the INI config file
// with flags overriding it, and errors that end in one clear line and a non-zero exit status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace {

namespace fs = std::filesystem;

using Result = wanbatch::testing::RunResult;

Result run(const std::string& args) { return wanbatch::testing::run_wanbatch(args); }

class Cli : public wanbatch::testing::TempDirTest {
 protected:
};

TEST_F(Cli, PrintsVersion) {
  const Result r = run("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("wanbatch 0."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CUDA backend"), std::string::npos) << r.output;
}

TEST_F(Cli, HelpListsCommandsAndCommandHelpListsOptions) {
  Result r = run("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("inspect"), std::string::npos);
  EXPECT_NE(r.output.find("make-test-model"), std::string::npos);
  r = run("inspect --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--summary"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--log-level"), std::string::npos) << r.output;
  EXPECT_EQ(run("").status, 2);  // no command: usage and a usage-error status
}

TEST_F(Cli, UnknownCommandOrOptionIsOneLineError) {
  Result r = run("frobnicate");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.output, "wanbatch: error: unknown command 'frobnicate' (see wanbatch --help)\n");
  r = run("inspect --no-such-flag x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("no-such-flag"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  r = run("inspect --log-level chatty x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown log level 'chatty'"), std::string::npos) << r.output;
}

TEST_F(Cli, MakesAndInspectsATinyModel) {
  const fs::path model = dir_ / "model";
  Result r = run("make-test-model --variant tiny-t2v --output " + model.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(model / "diffusion_pytorch_model.safetensors"));
  EXPECT_TRUE(fs::exists(model / "config.json"));
  r = run("inspect " + model.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("blocks.1.ffn.2.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bf16"), std::string::npos);
  EXPECT_NE(r.output.find("Wan DiT"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dim 64"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("4 heads"), std::string::npos) << r.output;
}

TEST_F(Cli, TestModelWithTextInputsAndVaeSamplesAndDecodes) {
  const fs::path model = dir_ / "ti2v";
  const fs::path text = dir_ / "text.h5";
  const fs::path vae = dir_ / "vae.safetensors";
  Result r = run("make-test-model --variant tiny-ti2v --output " + model.string() +
                 " --text-inputs " + text.string() + " --vae " + vae.string());
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(text));
  EXPECT_NE(r.output.find("tiny Wan2.2 VAE"), std::string::npos) << r.output;
  // TI2V-5B's defaults (UniPC, 50 steps) cut to 3 steps; its 48-channel latent needs sizes in
  // multiples of 32.
  const fs::path latents = dir_ / "latents.h5";
  r = run("tool sample --low-noise " + model.string() + " --input " + text.string() +
          " --seed 3 --size 64x32 --frames 5 --steps 3 --output " + latents.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 3/3"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(latents));
  // The VAE that goes with TI2V-5B (48 channels, stride 16) decodes them: 5 frames of 64x32.
  const fs::path frames = dir_ / "frames.h5";
  r = run("tool vae-decode --vae " + vae.string() + " --input " + latents.string() + " --output " +
          frames.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("frames [3, 5, 32, 64]"), std::string::npos) << r.output;
  r = run("tool sample --low-noise " + model.string() + " --input " + text.string() +
          " --seed 3 --size 48x32 --frames 5 --steps 3 --output " + latents.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("width 48 is not a positive multiple of 32"), std::string::npos)
      << r.output;
}

TEST_F(Cli, ShardedTwoExpertModelHasIndexAndBothExperts) {
  const fs::path model = dir_ / "moe";
  Result r =
      run("make-test-model --variant tiny-t2v-a14b --shard-gb 0.0001 --output " + model.string());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* expert : {"high_noise_model", "low_noise_model"}) {
    const fs::path index = model / expert / "diffusion_pytorch_model.safetensors.index.json";
    ASSERT_TRUE(fs::exists(index)) << index;
    r = run("inspect --summary " + index.string());
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Wan DiT"), std::string::npos) << r.output;
  }
  // The top folder holds no weights itself: inspect lists the experts, each named by its role.
  r = run("inspect --summary " + model.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("two-expert model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(high-noise expert)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(low-noise expert)"), std::string::npos) << r.output;
}

TEST_F(Cli, ConfigFileSuppliesOptionsAndFlagsOverrideIt) {
  const fs::path ini = dir_ / "job.ini";
  std::ofstream(ini) << "# a job file\nvariant = tiny-ti2v\noutput = "
                     << (dir_ / "from_ini").string() << "\nlog-level = warning\n";
  Result r = run("make-test-model --config " + ini.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "from_ini" / "config.json"));
  EXPECT_EQ(r.output.find("info:"), std::string::npos) << r.output;  // log-level from the file
  r = run("make-test-model --config " + ini.string() + " --output " +
          (dir_ / "from_flag").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "from_flag" / "config.json"));
  std::ofstream(ini, std::ios::app) << "bogus-key = 1\n";
  r = run("make-test-model --config " + ini.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("job.ini"), std::string::npos) << r.output;
}

// A file written by another implementation: the NumPy reference script writes safetensors by hand
// from the format's description (tests/reference/ops_reference.py).
TEST_F(Cli, InspectsAFileWrittenElsewhere) {
  const fs::path file = fs::path(WANBATCH_FIXTURE_DIR) / "ops_reference.safetensors";
  if (!fs::exists(file)) GTEST_SKIP() << "no NumPy fixture in this build";
  const Result r = run("inspect " + file.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("f32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model: not a Wan DiT"), std::string::npos) << r.output;
}

TEST_F(Cli, InspectErrorsNameTheFile) {
  Result r = run("inspect " + (dir_ / "missing.safetensors").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("missing.safetensors"), std::string::npos) << r.output;
  const fs::path bad = dir_ / "bad.safetensors";
  std::ofstream(bad) << "not a safetensors file at all";
  r = run("inspect " + bad.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("bad.safetensors"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.rfind("wanbatch: error: ", 0), 0u) << r.output;
}

TEST_F(Cli, LogLinesCarryTimestampAndLevel) {
  const Result r = run("make-test-model --variant tiny-t2v --output " + (dir_ / "m").string());
  ASSERT_EQ(r.status, 0) << r.output;
  // "2026-11-24 19:40:01.123456 info: ..." (no rank tag outside MPI)
  EXPECT_NE(r.output.find(" info: test model 'tiny-t2v' written"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[rank"), std::string::npos) << r.output;
}

}  // namespace
