// `wanbatch tool sample` end to end: the reference loops (tests/reference/sampling_reference.py)
// from HDF5 inputs through the executable, noise from a seed or an --init-noise file, and its
// errors, each a line naming what is wrong before any compute.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "fixture_path.h"
#include "io/hdf5_file.h"
#include "io/safetensors.h"
#include "model/sampling/philox_noise.h"
#include "reference_match.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

namespace fs = std::filesystem;
using testing::run_wanbatch;

std::string fixture(const std::string& name) { return wanbatch::testing::fixture_path(name); }

class ToolSample : public testing::TempDirTest {
 protected:
  // The case's noise and contexts as an HDF5 input (without the noise when `with_noise` is off).
  std::string write_input(const std::string& name, bool with_noise = true, bool with_null = true) {
    const auto io = io::SafetensorsFile::open(fixture("sampling_loop_" + name + ".safetensors"));
    const std::string path = (dir_ / (name + ".in.h5")).string();
    io::Hdf5Writer out(path);
    if (with_noise) out.write("noise", io->tensor("noise"));
    out.write("context", io->tensor("context"));
    if (with_null) out.write("context_null", io->tensor("context_null"));
    out.commit();
    return path;
  }

  // The command line the case's metadata describes.
  std::string command(const std::string& name, const std::string& input,
                      const std::string& output) {
    const auto io = io::SafetensorsFile::open(fixture("sampling_loop_" + name + ".safetensors"));
    const auto& m = io->metadata();
    std::string args = "tool sample --low-noise " + fixture(m.at("low_weights")) + " --num-heads " +
                       m.at("num_heads") + " --solver " + m.at("solver") + " --steps " +
                       m.at("steps") + " --shift " + m.at("shift") + " --guide-scale " +
                       m.at("guide_low") + "," + m.at("guide_high") + " --input " + input +
                       " --output " + output;
    if (!m.at("high_weights").empty()) {
      args += " --high-noise " + fixture(m.at("high_weights")) + " --boundary " + m.at("boundary");
    }
    return args;
  }
};

TEST_F(ToolSample, ReproducesTheReferenceLoops) {
  for (const char* name : {"unipc_moe_cfg", "dpm_cfg", "euler_moe_nocfg"}) {
    SCOPED_TRACE(name);
    const std::string output = (dir_ / (std::string(name) + ".out.h5")).string();
    const auto r = run_wanbatch(command(name, write_input(name), output));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("step 1/"), std::string::npos) << r.output;  // progress lines
    const auto out = io::Hdf5Reader::open(output);
    const auto io =
        io::SafetensorsFile::open(fixture(std::string("sampling_loop_") + name + ".safetensors"));
    // fp32 against the float64 reference over the whole loop (see model_sampling): 2e-5.
    EXPECT_TRUE(testing::matches_reference(out.read("latents").to_floats(),
                                           io->tensor("latents").to_floats(), 2e-5));
    EXPECT_EQ(out.read("timesteps").to_floats(), io->tensor("timesteps").to_floats());
    EXPECT_EQ(out.attribute_string("solver"), io->metadata().at("solver"));
  }
}

TEST_F(ToolSample, LightningDefaultsAreTheEulerCase) {
  // euler_moe_nocfg is Lightning's setting: Euler, 4 steps, shift 5, no guidance, boundary 0.875.
  const std::string output = (dir_ / "lightning.h5").string();
  const auto r = run_wanbatch("tool sample --lightning --num-heads 4 --low-noise " +
                              fixture("sampling_loop_low.weights.safetensors") + " --high-noise " +
                              fixture("sampling_loop_high.weights.safetensors") + " --input " +
                              write_input("euler_moe_nocfg", true, false) + " --output " + output);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto io = io::SafetensorsFile::open(fixture("sampling_loop_euler_moe_nocfg.safetensors"));
  const auto out = io::Hdf5Reader::open(output);
  EXPECT_TRUE(testing::matches_reference(out.read("latents").to_floats(),
                                         io->tensor("latents").to_floats(), 2e-5));
  EXPECT_EQ(out.attribute_string("solver"), "euler");
  EXPECT_EQ(out.attribute_integer("steps"), 4);
  EXPECT_EQ(out.attribute_number("boundary"), 0.875);
  EXPECT_EQ(out.attribute_string("weights_fingerprint").value_or("").size(), 16u);
  EXPECT_EQ(out.attribute_string("high_noise_fingerprint").value_or("").size(), 16u);
}

TEST_F(ToolSample, NoiseFromASeedIsThePhiloxNoiseAndInitNoiseReplacesIt) {
  // Euler, no guidance: no negative prompt needed. 32x32 pixels, 5 frames → [16, 2, 4, 4].
  const std::string input = write_input("euler_moe_nocfg", false, false);
  const auto io = io::SafetensorsFile::open(fixture("sampling_loop_euler_moe_nocfg.safetensors"));
  const std::string base =
      "tool sample --low-noise " + fixture("sampling_loop_low.weights.safetensors") +
      " --num-heads 4 --solver euler --steps 2 --shift 5 --guide-scale 1 --input " + input;
  const std::string seeded = (dir_ / "seeded.h5").string();
  auto r = run_wanbatch(base + " --seed 7 --size 32x32 --frames 5 --output " + seeded);
  ASSERT_EQ(r.status, 0) << r.output;
  // The same run with the seed's noise given as a file gives the same latents, bit for bit.
  const std::string noise_file = (dir_ / "noise.h5").string();
  {
    io::Hdf5Writer out(noise_file);
    out.write("noise", model::sampling::initial_noise(7, {16, 2, 4, 4}));
    out.commit();
  }
  const std::string from_file = (dir_ / "from_file.h5").string();
  r = run_wanbatch(base + " --init-noise " + noise_file + " --output " + from_file);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto a = io::Hdf5Reader::open(seeded), b = io::Hdf5Reader::open(from_file);
  EXPECT_EQ(a.read("latents").shape(), (core::Shape{16, 2, 4, 4}));
  EXPECT_EQ(a.read("latents").to_floats(), b.read("latents").to_floats());
  EXPECT_EQ(a.attribute_string("noise"), "philox seed 7");
  EXPECT_EQ(a.attribute_integer("seed"), 7);
  EXPECT_EQ(a.attribute_integer("frames"), 5);
}

TEST_F(ToolSample, ErrorsComeBeforeComputeAndNameTheProblem) {
  const std::string out = (dir_ / "out.h5").string();
  // Guidance without the negative prompt.
  auto r = run_wanbatch(command("dpm_cfg", write_input("dpm_cfg", true, false), out));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("negative prompt"), std::string::npos) << r.output;
  // No noise and no seed.
  const std::string no_noise = write_input("dpm_cfg", false);
  r = run_wanbatch(command("dpm_cfg", no_noise, out));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("has no 'noise'"), std::string::npos) << r.output;
  // A size the VAE cannot take.
  r = run_wanbatch(command("dpm_cfg", no_noise, out) + " --seed 1 --size 30x32 --frames 5");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("width 30"), std::string::npos) << r.output;
  r = run_wanbatch(command("dpm_cfg", no_noise, out) + " --seed 1 --size 32x32 --frames 6");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("frames 6 is not 4k+1"), std::string::npos) << r.output;
  // Bad option values.
  r = run_wanbatch("tool sample --low-noise x --input y --output z --solver ddim");
  EXPECT_NE(r.output.find("unknown solver 'ddim'"), std::string::npos) << r.output;
  r = run_wanbatch("tool sample --low-noise x --input y --output z --guide-scale 3,");
  EXPECT_NE(r.output.find("--guide-scale '3,'"), std::string::npos) << r.output;
  r = run_wanbatch("tool sample --low-noise x --input y --output z --boundary 0.9");
  EXPECT_NE(r.output.find("need --high-noise"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace wanbatch
