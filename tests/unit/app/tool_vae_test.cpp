// `wanbatch tool vae-decode / vae-encode` and `wanbatch decode` end to end: the NumPy reference
// VAEs (tests/reference/vae_reference.py) loaded from safetensors and from official-style .pth
// files, and saved latents turned into a video.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "fixture_path.h"
#include "io/hdf5_file.h"
#include "io/latents_file.h"
#include "io/safetensors.h"
#include "io/video_writer.h"
#include "reference_match.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

namespace fs = std::filesystem;
using testing::fixture_path;
using testing::run_wanbatch;

class ToolVae : public testing::TempDirTest {
 protected:
  std::string write_input(const std::string& dataset, const core::Tensor& tensor) {
    const std::string path = (dir_ / (dataset + ".in.h5")).string();
    io::Hdf5Writer out(path);
    out.write(dataset, tensor);
    out.commit();
    return path;
  }
};

// Decode and encode against the reference, from both weight formats: 1e-4 relative (fp32 against
// float64 through the whole network; the measured worst is about 3e-6).
TEST_F(ToolVae, MatchesTheReferenceFromSafetensorsAndPth) {
  for (const std::string& vae : {std::string("vae21"), std::string("vae22")}) {
    const auto io = io::SafetensorsFile::open(fixture_path(vae + ".io.safetensors"));
    for (const std::string& weights : {vae + ".weights.safetensors", vae + ".pth"}) {
      SCOPED_TRACE(weights);
      const std::string decoded = (dir_ / "decoded.h5").string();
      auto r = run_wanbatch("tool vae-decode --vae " + fixture_path(weights) + " --input " +
                            write_input("latents", io->tensor("latents")) + " --output " + decoded);
      ASSERT_EQ(r.status, 0) << r.output;
      EXPECT_TRUE(
          testing::matches_reference(io::Hdf5Reader::open(decoded).read("frames").to_floats(),
                                     io->tensor("video").to_floats(), 1e-4));
      const std::string encoded = (dir_ / "encoded.h5").string();
      r = run_wanbatch("tool vae-encode --vae " + fixture_path(weights) + " --input " +
                       write_input("video", io->tensor("video_in")) + " --output " + encoded);
      ASSERT_EQ(r.status, 0) << r.output;
      EXPECT_TRUE(
          testing::matches_reference(io::Hdf5Reader::open(encoded).read("latents").to_floats(),
                                     io->tensor("latents_out").to_floats(), 1e-4));
    }
  }
}

TEST_F(ToolVae, EncodeRejectsSizesTheVaeCannotTake) {
  const core::Tensor eight_frames = core::Tensor::zeros({3, 8, 16, 24}, core::DType::F32);
  const auto r = run_wanbatch("tool vae-encode --vae " + fixture_path("vae21.weights.safetensors") +
                              " --input " + write_input("video", eight_frames) + " --output " +
                              (dir_ / "x.h5").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("video.in.h5"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
}

TEST_F(ToolVae, DecodeTurnsSavedLatentsIntoAVideo) {
  const auto io = io::SafetensorsFile::open(fixture_path("vae22.io.safetensors"));
  const std::string latents = (dir_ / "item.h5").string();
  io::LatentsRecord record;
  record.fps = 24;
  record.solver = "unipc";
  io::write_latents_file(latents, io->tensor("latents"), record);
  const std::string video = (dir_ / "item.mp4").string();
  const fs::path frames = dir_ / "frames";
  auto r = run_wanbatch("decode --latents " + latents + " --vae " +
                        fixture_path("vae22.weights.safetensors") + " --output " + video +
                        " --save-frames " + frames.string());
  if (!io::video_built()) {
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.output.find("built without FFmpeg"), std::string::npos) << r.output;
    return;
  }
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("5 frames of 32x32 at 24 fps"), std::string::npos) << r.output;
  EXPECT_GT(fs::file_size(video), 0u);
  EXPECT_TRUE(fs::exists(frames / "frame_00004.png"));
  EXPECT_FALSE(fs::exists(frames / "frame_00005.png"));
  // Latents of the other VAE: one line naming both.
  r = run_wanbatch("decode --latents " + latents + " --vae " +
                   fixture_path("vae21.weights.safetensors") + " --output " + video);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("latents have 48 channels"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Wan2.1 VAE, which takes 16"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace wanbatch
