// The per-item latents file: every attribute DESIGN.md lists round-trips, absent ones stay absent,
// and the file is complete or not there at all.
#include "io/latents_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/hdf5_file.h"
#include "temp_dir_test.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

class LatentsFileTest : public wanbatch::testing::TempDirTest {};

LatentsRecord full_record() {
  LatentsRecord r;
  r.id = "fox-001";
  r.prompt = "a red fox in the snow";
  r.negative_prompt = "色调艳丽，过曝";
  r.seed = 17718013163177550631ull;  // above 2^63: seeds hashed from ids are
  r.noise = "philox seed 17718013163177550631";
  r.width = 832;
  r.height = 480;
  r.frames = 81;
  r.fps = 16;
  r.image = "/data/fox.png";  // an image-to-video item's, and its pixel budget
  r.max_area = 832 * 480;
  r.solver = "unipc";
  r.steps = 40;
  r.shift = 12.0;
  r.guide_scale = 3.0;
  r.guide_scale_high = 4.0;
  r.boundary = 0.875;
  r.timesteps = {999.0f, 961.0f};
  r.model_variant = "Wan2.2 T2V-A14B low-noise expert";
  r.weights = "/m/low_noise_model";
  r.weights_fingerprint = "0123456789abcdef";
  r.high_noise_weights = "/m/high_noise_model";
  r.high_noise_fingerprint = "fedcba9876543210";
  r.loras = "/l/low.safetensors:1.000000";
  r.high_noise_loras = "/l/high.safetensors:1.000000";
  r.world_size = 4;
  r.sp_size = 2;
  r.load_seconds = 1.5;
  r.sample_seconds = 30.25;
  r.wanbatch_version = "0.1.0";
  return r;
}

TEST_F(LatentsFileTest, EveryAttributeRoundTrips) {
  const std::string path = (dir_ / "fox-001.h5").string();
  const Tensor latents = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 1, 2, 2});
  const LatentsRecord r = full_record();
  write_latents_file(path, latents, r);
  const LatentsFile f = read_latents_file(path);
  EXPECT_EQ(f.latents.to_floats(), latents.to_floats());
  EXPECT_EQ(f.latents.shape(), latents.shape());
  const LatentsRecord& g = f.record;
  EXPECT_EQ(g.id, r.id);
  EXPECT_EQ(g.prompt, r.prompt);
  EXPECT_EQ(g.negative_prompt, r.negative_prompt);
  EXPECT_EQ(g.seed, r.seed);
  EXPECT_EQ(g.noise, r.noise);
  EXPECT_EQ(g.width, r.width);
  EXPECT_EQ(g.height, r.height);
  EXPECT_EQ(g.frames, r.frames);
  EXPECT_EQ(g.fps, r.fps);
  EXPECT_EQ(g.image, r.image);
  EXPECT_EQ(g.max_area, r.max_area);
  EXPECT_EQ(g.solver, r.solver);
  EXPECT_EQ(g.steps, r.steps);
  EXPECT_EQ(g.shift, r.shift);
  EXPECT_EQ(g.guide_scale, r.guide_scale);
  EXPECT_EQ(g.guide_scale_high, r.guide_scale_high);
  EXPECT_EQ(g.boundary, r.boundary);
  EXPECT_EQ(g.timesteps, r.timesteps);
  EXPECT_EQ(g.model_variant, r.model_variant);
  EXPECT_EQ(g.weights, r.weights);
  EXPECT_EQ(g.weights_fingerprint, r.weights_fingerprint);
  EXPECT_EQ(g.high_noise_weights, r.high_noise_weights);
  EXPECT_EQ(g.high_noise_fingerprint, r.high_noise_fingerprint);
  EXPECT_EQ(g.loras, r.loras);
  EXPECT_EQ(g.high_noise_loras, r.high_noise_loras);
  EXPECT_EQ(g.world_size, r.world_size);
  EXPECT_EQ(g.sp_size, r.sp_size);
  EXPECT_EQ(g.load_seconds, r.load_seconds);
  EXPECT_EQ(g.sample_seconds, r.sample_seconds);
  EXPECT_EQ(g.wanbatch_version, r.wanbatch_version);
}

TEST_F(LatentsFileTest, WhatWasNotKnownIsNotWritten) {
  const std::string path = (dir_ / "tool.h5").string();
  LatentsRecord r;
  r.solver = "euler";
  r.steps = 4;
  write_latents_file(path, Tensor::zeros({16, 1, 2, 2}, core::DType::F32), r);
  const Hdf5Reader in = Hdf5Reader::open(path);
  EXPECT_FALSE(in.attribute_string("prompt").has_value());
  EXPECT_FALSE(in.attribute_integer("seed").has_value());
  EXPECT_FALSE(in.attribute_number("boundary").has_value());
  EXPECT_FALSE(in.attribute_string("high_noise_weights").has_value());
  const LatentsFile f = read_latents_file(path);
  EXPECT_FALSE(f.record.prompt.has_value());
  EXPECT_FALSE(f.record.image.has_value());
  EXPECT_FALSE(f.record.max_area.has_value());
  EXPECT_EQ(f.record.steps, 4);
}

TEST_F(LatentsFileTest, BadInputIsAnErrorAndLeavesNoFile) {
  const std::string path = (dir_ / "bad.h5").string();
  EXPECT_THROW(write_latents_file(path, Tensor::zeros({4, 4}, core::DType::F32), {}), Error);
  EXPECT_FALSE(fs::exists(path));
  {
    Hdf5Writer out(path);
    out.write("latents", Tensor::zeros({4, 4}, core::DType::F32));
    out.commit();
  }
  try {
    read_latents_file(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.h5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_latents_file((dir_ / "missing.h5").string()), Error);
}

}  // namespace
}  // namespace wanbatch::io
