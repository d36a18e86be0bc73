// io::read_image: a PNG written by write_png_frames reads back as the official pipelines' input,
// (byte / 255 − 0.5) / 0.5 for every pixel exactly; bad files are one-line errors naming the file
// (without FFmpeg: that it was not built in).
#include "io/image_reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/video_writer.h"
#include "temp_dir_test.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;

class ImageReaderTest : public wanbatch::testing::TempDirTest {};

std::string error_of(const std::string& path) {
  try {
    read_image(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#if WANBATCH_TEST_VIDEO
TEST_F(ImageReaderTest, PngPixelsComeBackAsTheOfficialInput) {
  // A 7×5 image whose every channel value is a different byte.
  const int64_t h = 5, w = 7;
  std::vector<float> values(static_cast<size_t>(3 * h * w));
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = (static_cast<float>((i * 37) % 256) + 0.5f) / 255.0f * 2.0f - 1.0f;
  }
  const core::Tensor frames = core::Tensor::from_vector(values, {3, 1, h, w});
  write_png_frames((dir_ / "frames").string(), frames);
  const core::Tensor image = read_image((dir_ / "frames" / "frame_00000.png").string());
  ASSERT_EQ(image.shape(), (core::Shape{3, h, w}));
  const std::vector<float> got = image.to_floats();
  for (size_t i = 0; i < values.size(); ++i) {
    const float byte = frame_value_to_byte(values[i]);
    EXPECT_EQ(got[i], (byte / 255.0f - 0.5f) / 0.5f) << "element " << i;
  }
}
#endif

TEST_F(ImageReaderTest, BadFilesAreNamedInOneLine) {
  EXPECT_NE(error_of((dir_ / "missing.png").string()).find("missing.png"), std::string::npos);
  std::ofstream(dir_ / "text.png") << "not an image at all";
  const std::string message = error_of((dir_ / "text.png").string());
  EXPECT_NE(message.find("cannot read"), std::string::npos) << message;
  EXPECT_NE(message.find("text.png"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace
}  // namespace wanbatch::io
