// `wanbatch tool dit` end to end: the NumPy reference cases (tests/reference/dit_reference.py)
// turned into HDF5 inputs, run through the executable, and the velocity it writes compared with
// the reference; and its errors, each one line naming the file and what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "fixture_path.h"
#include "io/hdf5_file.h"
#include "io/safetensors.h"
#include "reference_match.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

namespace fs = std::filesystem;
using testing::run_wanbatch;

std::string fixture(const std::string& name) { return wanbatch::testing::fixture_path(name); }

class ToolDit : public wanbatch::testing::TempDirTest {
 protected:
  // The reference case's inputs as an HDF5 file; `batched` adds the leading batch dimension of 1
  // a PyTorch dump has.
  std::string write_input(const std::string& name, bool batched = false) {
    const auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
    const std::string path = (dir_ / (name + ".in.h5")).string();
    io::Hdf5Writer out(path);
    for (const char* key : {"latent", "timestep", "context", "y", "clip"}) {
      if (!io->contains(key)) continue;
      core::Tensor t = io->tensor(key);
      if (batched && std::string(key) != "timestep") {
        core::Shape shape = t.shape();
        shape.insert(shape.begin(), 1);
        t = t.reshape(shape);
      }
      out.write(key, t);
    }
    out.commit();
    return path;
  }

  void expect_tool_matches(const std::string& name, const std::string& extra = "",
                           bool batched = false) {
    const auto io = io::SafetensorsFile::open(fixture("dit_" + name + ".io.safetensors"));
    const std::string input = write_input(name, batched);
    const std::string output = (dir_ / (name + ".out.h5")).string();
    const auto r = run_wanbatch(
        "tool dit --weights " + fixture("dit_" + name + ".weights.safetensors") + " --num-heads " +
        io->metadata().at("num_heads") + " --input " + input + " --output " + output + " " + extra);
    ASSERT_EQ(r.status, 0) << r.output;
    const auto out = io::Hdf5Reader::open(output);
    const core::Tensor velocity = out.read("velocity");
    const core::Tensor expected = io->tensor("velocity");
    EXPECT_EQ(velocity.shape(), expected.shape());
    EXPECT_TRUE(testing::matches_reference(velocity.to_floats(), expected.to_floats(), 1e-5))
        << name;
    EXPECT_TRUE(out.attribute_string("model_variant").has_value());
  }
};

TEST_F(ToolDit, MatchesTheReferenceOnEveryVariant) {
  for (const char* name : {"t2v", "t2v_bf16", "t2v_comfy", "ti2v", "i2v", "i2v_clip"}) {
    SCOPED_TRACE(name);
    expect_tool_matches(name);
  }
}

TEST_F(ToolDit, MergesALoraGivenWithItsStrength) {
  const auto io = io::SafetensorsFile::open(fixture("dit_lora.io.safetensors"));
  expect_tool_matches("lora", "--lora " + fixture("dit_lora.lora.safetensors") + ":" +
                                  io->metadata().at("lora_strength"));
}

TEST_F(ToolDit, AcceptsALeadingBatchDimensionOfOne) { expect_tool_matches("i2v_clip", "", true); }

TEST_F(ToolDit, MissingDatasetIsOneLineNamingFileAndDataset) {
  const std::string input = (dir_ / "in.h5").string();
  {
    io::Hdf5Writer out(input);
    out.write("latent", core::Tensor::zeros({16, 1, 4, 4}, core::DType::F32));
    out.write("timestep", core::Tensor::from_vector<float>({500.0f}, {1}));
    out.commit();
  }
  const std::string output = (dir_ / "out.h5").string();
  const auto r = run_wanbatch("tool dit --weights " + fixture("dit_t2v.weights.safetensors") +
                              " --input " + input + " --output " + output);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no dataset 'context'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(input), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(output));
}

TEST_F(ToolDit, InputThatDoesNotFitTheModelNamesTheInputFile) {
  const std::string input = (dir_ / "in.h5").string();
  {
    io::Hdf5Writer out(input);
    out.write("latent", core::Tensor::zeros({48, 1, 4, 4}, core::DType::F32));  // t2v takes 16
    out.write("timestep", core::Tensor::from_vector<float>({500.0f}, {1}));
    out.write("context", core::Tensor::zeros({3, 32}, core::DType::F32));
    out.commit();
  }
  const std::string output = (dir_ / "out.h5").string();
  const auto r = run_wanbatch("tool dit --weights " + fixture("dit_t2v.weights.safetensors") +
                              " --num-heads 4 --input " + input + " --output " + output);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find(input + ": DiT input: latent"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the model takes 16"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(output));
}

TEST_F(ToolDit, LoraKeyMatchingNoWeightFailsOrWarnsWhenLenient) {
  const std::string lora = (dir_ / "stray.safetensors").string();
  io::write_safetensors(lora, {{"diffusion_model.blocks.7.ffn.0.lora_down.weight",
                                core::Tensor::zeros({2, 64}, core::DType::F32)},
                               {"diffusion_model.blocks.7.ffn.0.lora_up.weight",
                                core::Tensor::zeros({128, 2}, core::DType::F32)}});
  const std::string input = write_input("t2v");
  const std::string output = (dir_ / "out.h5").string();
  const std::string command = "tool dit --weights " + fixture("dit_t2v.weights.safetensors") +
                              " --num-heads 4 --input " + input + " --output " + output +
                              " --lora " + lora;
  auto r = run_wanbatch(command);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("blocks.7.ffn.0"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(output));
  r = run_wanbatch(command + " --lora-lenient");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(output));
}

TEST_F(ToolDit, ListsToolsAndRejectsAnUnknownOne) {
  auto r = run_wanbatch("tool --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("dit"), std::string::npos) << r.output;
  r = run_wanbatch("tool frobnicate");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("unknown tool 'frobnicate'"), std::string::npos) << r.output;
  r = run_wanbatch("tool dit --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--lora"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace wanbatch
