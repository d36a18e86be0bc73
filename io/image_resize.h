// Image resampling as the official image-to-video pipelines do it: PIL's Lanczos resize and crop
// on 8-bit RGB (Wan2.2 textimage2video.py) and torch's bicubic interpolate on the [−1, 1] tensor
// (image2video.py). CPU only: the images are small and this runs once per item.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "io/image_reader.h"

namespace wanbatch::io {

// PIL's image.resize((width, height), Image.LANCZOS) on an RGB image, byte-exact to Pillow: its
// separable resampling (support widened by the scale when shrinking), its fixed-point
// coefficients and rounding, the horizontal pass before the vertical one as Pillow orders them.
Rgb8Image resize_lanczos(const Rgb8Image& image, int64_t width, int64_t height);

// PIL's image.crop((left, top, left + width, top + height)); the box must lie inside the image.
Rgb8Image crop(const Rgb8Image& image, int64_t left, int64_t top, int64_t width, int64_t height);

// torch.nn.functional.interpolate(image[None], size=(height, width), mode="bicubic",
// align_corners=False)[0] on a [C, H, W] f32 CPU tensor, computed in fp32 as torch does on the
// CPU: cubic convolution with A = −0.75, edge-clamped taps, no antialias, no clamping of the
// result (values may leave [−1, 1], as in the reference).
core::Tensor resize_bicubic(const core::Tensor& image, int64_t height, int64_t width);

}  // namespace wanbatch::io
