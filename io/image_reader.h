// Images for image-to-video items (issue 11): a PNG, JPEG, WebP, ... file (what FFmpeg's image
// decoders read) decoded to RGB as the official pipelines see it, PIL's convert("RGB") then
// torchvision's to_tensor and (x − 0.5) / 0.5: [3, H, W] f32 in [−1, 1], v = (byte / 255 − 0.5)
// / 0.5 in fp32; an alpha channel is dropped, grey is repeated. PNG and WebP (lossless and
// lossy) pixels are exactly Pillow's; JPEG's are within a few levels (FFmpeg decodes the DCT, the
// colour conversion is libjpeg's: io/pillow_color.h). A wanbatch built without FFmpeg throws a
// one-line error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanbatch::io {

// 8-bit RGB as PIL's mode "RGB": `height` rows of `width` * 3 bytes, R, G, B interleaved.
struct Rgb8Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

// Throws wanbatch::Error naming `path` when it is missing, not an image, or cannot be decoded.
Rgb8Image read_image_rgb8(const std::string& path);

// torchvision's to_tensor(image).sub_(0.5).div_(0.5): [3, H, W] f32, (byte / 255 − 0.5) / 0.5.
// Throws when the pixel buffer does not hold width * height * 3 bytes. Needs no FFmpeg.
core::Tensor rgb8_to_tensor(const Rgb8Image& image);

// rgb8_to_tensor(read_image_rgb8(path)).
core::Tensor read_image(const std::string& path);

}  // namespace wanbatch::io
