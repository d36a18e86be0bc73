// A small PNG for image-to-video tests: a smooth colour pattern of any size, written through
// io::write_png_frames (so it needs FFmpeg, as reading images does).
#pragma once

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/video_writer.h"

namespace wanbatch::testing {

// Writes `path` (a .png), `width` × `height`; `phase` varies the picture.
inline void write_test_png(const std::filesystem::path& path, int64_t width, int64_t height,
                           float phase = 0.0f) {
  std::vector<float> pixels(static_cast<size_t>(3 * width * height));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        pixels[static_cast<size_t>((c * height + y) * width + x)] =
            0.9f * std::sin(0.3f * static_cast<float>(x) + 0.2f * static_cast<float>(y * (c + 1)) +
                            phase + 2.0f * static_cast<float>(c));
  const std::filesystem::path folder = path.string() + ".frames";
  io::write_png_frames(folder.string(), core::Tensor::from_vector(pixels, {3, 1, height, width}));
  std::filesystem::rename(folder / "frame_00000.png", path);
  std::filesystem::remove_all(folder);
}

}  // namespace wanbatch::testing
