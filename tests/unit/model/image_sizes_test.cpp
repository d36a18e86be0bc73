// model::wan image sizes and conditioning images against the official rules re-written in Python
// (tests/reference/image_reference.py): every size exactly, the TI2V image (Pillow Lanczos + crop)
// exactly, the I2V image (torch's bicubic) within fp32 rounding; and the errors for degenerate
// input.
#include "model/wan/image_sizes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "error_of.h"
#include "image_fixture.h"
#include "io/video_writer.h"
#include "temp_dir_test.h"

namespace wanbatch::model::wan {
namespace {

using testing::error_of;

TEST(ImageSizes, KnownSizes) {
  // Images of the official default sizes keep their size at their own area.
  EXPECT_EQ(i2v_size(1920, 1080, 1280 * 720).width, 1280);
  EXPECT_EQ(i2v_size(1920, 1080, 1280 * 720).height, 720);
  EXPECT_EQ(i2v_size(480, 832, 832 * 480).width, 480);
  EXPECT_EQ(i2v_size(480, 832, 832 * 480).height, 832);
  // A 4:3 image at the 720p area (values from the Python rule).
  EXPECT_EQ(i2v_size(640, 480, 1280 * 720).width, 1104);
  EXPECT_EQ(i2v_size(640, 480, 1280 * 720).height, 816);
  // TI2V-5B's 1280*704 area.
  EXPECT_EQ(ti2v_size(1920, 1080, 1280 * 704).width, 1248);
  EXPECT_EQ(ti2v_size(1920, 1080, 1280 * 704).height, 704);
  EXPECT_EQ(ti2v_size(640, 480, 1280 * 704).width, 1088);
  EXPECT_EQ(ti2v_size(640, 480, 1280 * 704).height, 800);
}

// Rows (image width, image height, area, width, height), −1 where the Python fails.
void check_rows(const core::Tensor& rows, bool ti2v) {
  const int64_t* r = rows.data<int64_t>();
  ASSERT_EQ(rows.dim(1), 5);
  int errors = 0;
  for (int64_t i = 0; i < rows.dim(0); ++i, r += 5) {
    const auto size = [&] {
      return ti2v ? ti2v_size(r[0], r[1], r[2]) : i2v_size(r[0], r[1], r[2]);
    };
    const std::string where =
        std::to_string(r[0]) + "x" + std::to_string(r[1]) + " image, area " + std::to_string(r[2]);
    if (r[3] < 0) {
      ++errors;
      const std::string message = error_of(size);
      EXPECT_NE(message.find(ti2v ? "ti2v_size" : "i2v_size"), std::string::npos) << where;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      continue;
    }
    const PixelSize got = size();
    EXPECT_EQ(got.width, r[3]) << where;
    EXPECT_EQ(got.height, r[4]) << where;
  }
  EXPECT_GT(errors, 0);  // the fixture covers the too-small areas too
}

TEST(ImageSizes, I2vSizesAreImage2videoPys) {
  const auto fixture = testing::open_image_fixture();
  if (!fixture) GTEST_SKIP() << testing::kNoImageFixture;
  check_rows(fixture->tensor("sizes.i2v"), false);
}

TEST(ImageSizes, Ti2vSizesAreBestOutputSizes) {
  const auto fixture = testing::open_image_fixture();
  if (!fixture) GTEST_SKIP() << testing::kNoImageFixture;
  check_rows(fixture->tensor("sizes.ti2v"), true);
}

TEST(ImageSizes, DegenerateInputIsOneLineError) {
  io::Rgb8Image empty;
  const std::vector<std::string> messages = {
      error_of([] { i2v_size(0, 10, 1280 * 720); }),
      error_of([] { i2v_size(10, -1, 1280 * 720); }),
      error_of([] { i2v_size(10, 10, 0); }),
      error_of([] { i2v_size(10, 10, 255); }),  // under one 16x16 latent patch
      error_of([] { i2v_size(10, 10, 1280 * 720, 0); }),
      error_of([] { ti2v_size(0, 10, 1280 * 704); }),
      error_of([] { ti2v_size(10, 10, -5); }),
      error_of([] { ti2v_size(10, 10, 1023); }),
      error_of([] { ti2v_size(10, 10, 1024, 0); }),
      error_of([&] {
        ti2v_image(empty, {32, 32});
      }),
      error_of([&] {
        i2v_image(empty, {32, 32});
      }),
  };
  for (const std::string& message : messages) {
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  const PixelSize tiny = i2v_size(10, 10, 256);
  EXPECT_EQ(tiny.width, 16);
  EXPECT_EQ(tiny.height, 16);
  EXPECT_EQ(ti2v_size(10, 10, 1024).width, 32);
}

#if WANBATCH_TEST_VIDEO
class ImagePreparation : public testing::TempDirTest {};

// The fixture's images go through a PNG file and io::read_image_rgb8, as an item's image would.
TEST_F(ImagePreparation, MatchesTheOfficialPipelines) {
  const auto fixture = testing::open_image_fixture();
  if (!fixture) GTEST_SKIP() << testing::kNoImageFixture;
  for (int i = 0; i < 2; ++i) {
    const std::string name = "pipeline." + std::to_string(i);
    const io::Rgb8Image want_image = testing::rgb8_from(fixture->tensor(name + ".image"));
    // Frame values that write_png_frames turns back into exactly these bytes.
    const int64_t h = want_image.height, w = want_image.width;
    std::vector<float> values(static_cast<size_t>(3 * h * w));
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t p = 0; p < h * w; ++p) {
        values[c * h * w + p] = (want_image.pixels[3 * p + c] + 0.5f) / 255.0f * 2.0f - 1.0f;
      }
    }
    const std::string dir = (dir_ / name).string();
    io::write_png_frames(dir, core::Tensor::from_vector(values, {3, 1, h, w}));
    const io::Rgb8Image image = io::read_image_rgb8(dir + "/frame_00000.png");
    ASSERT_EQ(image.pixels, want_image.pixels) << name;

    // TI2V: Pillow bytes, then to_tensor's fp32 steps: exact.
    const core::Tensor ti2v_want_size = fixture->tensor(name + ".ti2v_size");
    const PixelSize ti2v = ti2v_size(w, h, 64 * 32);
    ASSERT_EQ(ti2v.width, ti2v_want_size.data<int64_t>()[0]) << name;
    ASSERT_EQ(ti2v.height, ti2v_want_size.data<int64_t>()[1]) << name;
    const core::Tensor ti2v_got = ti2v_image(image, ti2v);
    const core::Tensor ti2v_want = fixture->tensor(name + ".ti2v");
    ASSERT_EQ(ti2v_got.shape(), ti2v_want.shape()) << name;
    EXPECT_EQ(ti2v_got.to_floats(), ti2v_want.to_floats()) << name;

    // I2V: torch's bicubic in fp32 against float64, as in image_resize_test (5e-6: a few fp32
    // ulps of the sums of 16 weighted values ≤ 1).
    const core::Tensor i2v_want_size = fixture->tensor(name + ".i2v_size");
    const PixelSize i2v = i2v_size(w, h, 64 * 48);
    ASSERT_EQ(i2v.width, i2v_want_size.data<int64_t>()[0]) << name;
    ASSERT_EQ(i2v.height, i2v_want_size.data<int64_t>()[1]) << name;
    const core::Tensor i2v_got = i2v_image(image, i2v);
    const core::Tensor i2v_want = fixture->tensor(name + ".i2v");
    ASSERT_EQ(i2v_got.shape(), i2v_want.shape()) << name;
    const std::vector<float> g = i2v_got.to_floats(), wv = i2v_want.to_floats();
    float worst = 0.0f;
    for (size_t j = 0; j < wv.size(); ++j) worst = std::max(worst, std::fabs(g[j] - wv[j]));
    EXPECT_LE(worst, 5e-6f) << name;
  }
}
#endif

}  // namespace
}  // namespace wanbatch::model::wan
