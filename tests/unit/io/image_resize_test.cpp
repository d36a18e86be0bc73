// io::resize_lanczos against Pillow's own bytes, io::resize_bicubic against torch's bicubic
// formula in float64, io::crop and io::rgb8_to_tensor by hand, and their one-line errors.
#include "io/image_resize.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "error_of.h"
#include "image_fixture.h"
#include "io/image_reader.h"

namespace wanbatch::io {
namespace {

using testing::error_of;

Rgb8Image ramp(int64_t width, int64_t height) {
  Rgb8Image image{width, height, std::vector<uint8_t>(static_cast<size_t>(3 * width * height))};
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 7);
  return image;
}

TEST(ImageResize, LanczosIsPillowByteForByte) {
  const auto fixture = testing::open_image_fixture();
  if (!fixture) GTEST_SKIP() << testing::kNoImageFixture;
  int cases = 0;
  for (int i = 0; fixture->contains("lanczos." + std::to_string(i) + ".input"); ++i, ++cases) {
    const std::string name = "lanczos." + std::to_string(i);
    const Rgb8Image input = testing::rgb8_from(fixture->tensor(name + ".input"));
    const Rgb8Image want = testing::rgb8_from(fixture->tensor(name + ".output"));
    const Rgb8Image got = resize_lanczos(input, want.width, want.height);
    ASSERT_EQ(got.width, want.width) << name;
    ASSERT_EQ(got.height, want.height) << name;
    ASSERT_EQ(got.pixels.size(), want.pixels.size()) << name;
    size_t differ = 0, first = 0;
    for (size_t j = 0; j < want.pixels.size(); ++j) {
      if (got.pixels[j] != want.pixels[j] && differ++ == 0) first = j;
    }
    EXPECT_EQ(differ, 0u) << name << " (" << input.width << "x" << input.height << " to "
                          << want.width << "x" << want.height << "): first at byte " << first
                          << ": " << int{got.pixels[first]} << ", Pillow "
                          << int{want.pixels[first]};
  }
  EXPECT_GE(cases, 10);
}

// fp32 (torch's arithmetic) against the float64 formula: 16 products of values ≤ 1 by weights
// ≤ ~1.3 summed in fp32, with fp32 weights and source positions, stay within a few fp32 ulps of 1
// (measured: ≤ 1.9e-6, the fixture's own fp32 storage included), so 5e-6 absolute; a wrong tap or
// weight would be off by 1e-2 or more.
constexpr float kBicubicTolerance = 5e-6f;

TEST(ImageResize, BicubicIsTorchsFormula) {
  const auto fixture = testing::open_image_fixture();
  if (!fixture) GTEST_SKIP() << testing::kNoImageFixture;
  int cases = 0;
  for (int i = 0; fixture->contains("bicubic." + std::to_string(i) + ".input"); ++i, ++cases) {
    const std::string name = "bicubic." + std::to_string(i);
    const core::Tensor input = fixture->tensor(name + ".input");
    const core::Tensor want = fixture->tensor(name + ".output");
    const core::Tensor got = resize_bicubic(input, want.dim(1), want.dim(2));
    ASSERT_EQ(got.shape(), want.shape()) << name;
    const std::vector<float> g = got.to_floats(), w = want.to_floats();
    float worst = 0.0f;
    for (size_t j = 0; j < w.size(); ++j) worst = std::max(worst, std::fabs(g[j] - w[j]));
    EXPECT_LE(worst, kBicubicTolerance) << name;
  }
  EXPECT_GE(cases, 6);
}

TEST(ImageResize, BicubicAtTheSameSizeIsTheIdentity) {
  const std::vector<float> values = {0.25f, -1.0f, 0.5f, 1.0f, -0.125f, 0.75f};
  const core::Tensor x = core::Tensor::from_vector(values, {1, 2, 3});
  EXPECT_EQ(resize_bicubic(x, 2, 3).to_floats(), values);
}

TEST(ImageResize, LanczosAtTheSameSizeIsACopy) {
  const Rgb8Image image = ramp(5, 4);
  EXPECT_EQ(resize_lanczos(image, 5, 4).pixels, image.pixels);
}

TEST(ImageResize, CropCopiesTheBox) {
  const Rgb8Image image = ramp(5, 4);
  const Rgb8Image box = crop(image, 1, 2, 3, 2);
  ASSERT_EQ(box.width, 3);
  ASSERT_EQ(box.height, 2);
  for (int64_t y = 0; y < 2; ++y) {
    for (int64_t x = 0; x < 3; ++x) {
      for (int64_t c = 0; c < 3; ++c) {
        EXPECT_EQ(box.pixels[3 * (y * 3 + x) + c], image.pixels[3 * ((y + 2) * 5 + x + 1) + c]);
      }
    }
  }
  EXPECT_EQ(crop(image, 0, 0, 5, 4).pixels, image.pixels);
}

TEST(ImageResize, Rgb8ToTensorIsTorchvisionsToTensor) {
  const Rgb8Image image = ramp(3, 2);
  const std::vector<float> got = rgb8_to_tensor(image).to_floats();
  ASSERT_EQ(got.size(), 18u);
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < 6; ++i) {
      const float byte = image.pixels[3 * i + c];
      EXPECT_EQ(got[c * 6 + i], (byte / 255.0f - 0.5f) / 0.5f);
    }
  }
}

TEST(ImageResize, BadInputIsOneLineError) {
  const Rgb8Image image = ramp(5, 4);
  const Rgb8Image empty;
  Rgb8Image short_buffer = image;
  short_buffer.pixels.pop_back();
  const std::vector<std::string> messages = {
      error_of([&] { resize_lanczos(image, 0, 3); }),
      error_of([&] { resize_lanczos(empty, 3, 3); }),
      error_of([&] { resize_lanczos(short_buffer, 3, 3); }),
      error_of([&] { crop(image, 3, 0, 3, 4); }),
      error_of([&] { crop(image, -1, 0, 2, 2); }),
      error_of([&] { crop(image, 0, 0, 0, 2); }),
      error_of([&] { rgb8_to_tensor(empty); }),
      error_of([&] { rgb8_to_tensor(short_buffer); }),
      error_of([&] {
        resize_bicubic(core::Tensor::zeros({3, 4}, core::DType::F32), 2, 2);
      }),
      error_of([&] {
        resize_bicubic(core::Tensor::zeros({3, 0, 4}, core::DType::F32), 2, 2);
      }),
      error_of([&] {
        resize_bicubic(core::Tensor::zeros({3, 4, 4}, core::DType::F32), 0, 2);
      }),
  };
  for (const std::string& message : messages) {
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_NE(messages[3].find("not inside the 5x4 image"), std::string::npos) << messages[3];
}

#if WANBATCH_TEST_VIDEO
// JPEG: FFmpeg's IDCT is not libjpeg's; the colour step is (io/pillow_color.h). Measured worst: 3
// levels of 255 (4:2:0, 4:2:2 and 4:4:4 alike, on the fixture's noisy, striped test images); with
// FFmpeg's own conversion it was 114 at 4:2:0. One level of margin.
constexpr int kJpegLevels = 4;

// What FFmpeg decodes from the files users give against what Pillow (the official pipelines'
// reader) decodes from them, at odd and even sizes and 1×1: WebP (lossless and lossy) exactly,
// JPEG (4:2:0, 4:2:2, 4:4:4) within kJpegLevels.
TEST(ImageDecode, MatchesPillowWhereTheFormatAllows) {
  const auto fixture = testing::open_image_fixture();
  if (!fixture) GTEST_SKIP() << testing::kNoImageFixture;
  struct Case {
    const char* name;
    const char* extension;
    int max_levels;
  };
  for (const char* size : {"61x45", "64x48", "1x1", "2x3"}) {
    for (const Case& c :
         {Case{"jpeg_420", "jpg", kJpegLevels}, Case{"jpeg_422", "jpg", kJpegLevels},
          Case{"jpeg_444", "jpg", kJpegLevels}, Case{"webp_lossless", "webp", 0},
          Case{"webp_lossy", "webp", 0}}) {
      const std::string name = std::string(c.name) + "_" + size;
      const Rgb8Image want = testing::rgb8_from(fixture->tensor("decode." + name));
      const Rgb8Image got =
          read_image_rgb8(testing::fixture_path("image_reference." + name + "." + c.extension));
      ASSERT_EQ(got.width, want.width) << name;
      ASSERT_EQ(got.height, want.height) << name;
      int worst = 0;
      size_t differing = 0;
      for (size_t k = 0; k < got.pixels.size(); ++k) {
        const int d = std::abs(int{got.pixels[k]} - int{want.pixels[k]});
        worst = std::max(worst, d);
        differing += d != 0;
      }
      std::printf("%s: worst %d levels, %zu of %zu bytes differ\n", name.c_str(), worst, differing,
                  got.pixels.size());
      EXPECT_LE(worst, c.max_levels) << name;
    }
  }
}
#endif

}  // namespace
}  // namespace wanbatch::io
