// Images for image-to-video items (issue 11): a PNG, JPEG, WebP, ... file (what FFmpeg's image
// decoders read) decoded to RGB as the official pipelines see it, PIL's convert("RGB") then
// torchvision's to_tensor and (x − 0.5) / 0.5: [3, H, W] f32 in [−1, 1], v = (byte / 255 − 0.5)
// / 0.5 in fp32; an alpha channel is dropped, grey is repeated. PNG pixels are exact; JPEG's
// YCbCr → RGB conversion and chroma upsampling are FFmpeg's, which may differ from libjpeg's (as
// PIL uses) by a level or two. A wanbatch built without FFmpeg throws a one-line error.
#pragma once

#include <string>

#include "core/tensor.h"

namespace wanbatch::io {

// Throws wanbatch::Error naming `path` when it is missing, not an image, or cannot be decoded.
core::Tensor read_image(const std::string& path);

}  // namespace wanbatch::io
