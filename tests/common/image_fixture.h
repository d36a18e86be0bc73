// The image resizing reference fixture (tests/reference/image_reference.py, made with Pillow):
// open it, or nullptr when it was not generated (no python3 with NumPy and PIL), and its images
// (I32 [H, W, 3] bytes) as io::Rgb8Image.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "fixture_path.h"
#include "io/image_reader.h"
#include "io/safetensors.h"

namespace wanbatch::testing {

inline constexpr const char* kNoImageFixture =
    "image_reference.safetensors was not generated (no python3 with numpy and PIL at configure "
    "time: apt-get install python3-pil)";

inline std::shared_ptr<io::SafetensorsFile> open_image_fixture() {
  const std::string path = fixture_path("image_reference.safetensors");
  if (!std::filesystem::exists(path)) return nullptr;
  return io::SafetensorsFile::open(path);
}

inline io::Rgb8Image rgb8_from(const core::Tensor& bytes) {
  io::Rgb8Image image;
  image.height = bytes.dim(0);
  image.width = bytes.dim(1);
  const int32_t* values = bytes.data<int32_t>();
  image.pixels.assign(values, values + bytes.numel());
  return image;
}

}  // namespace wanbatch::testing
