// The video size and conditioning image of an image-to-video item (issue 11), as the official
// pipelines derive them from the image and the item's area: Wan2.1/Wan2.2 image2video.py (the
// A14B/14B I2V models) and Wan2.2 textimage2video.py with utils.best_output_size (TI2V-5B).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "io/image_reader.h"

namespace wanbatch::model::wan {

struct PixelSize {
  int64_t width = 0, height = 0;
};

// image2video.py: the output size for an image of the given size and max_area (the item's
// width * height), the aspect ratio kept within the latent grid (multiples of vae_stride * patch
// pixels), computed in float64 as the Python does. Throws when max_area gives no latent cell.
PixelSize i2v_size(int64_t image_width, int64_t image_height, int64_t max_area,
                   int64_t vae_stride = 8, int64_t patch = 2);

// utils.best_output_size(w, h, multiple, multiple, max_area) as textimage2video.py calls it
// (multiple = patch * vae_stride = 32 for TI2V-5B).
PixelSize ti2v_size(int64_t image_width, int64_t image_height, int64_t max_area,
                    int64_t multiple = 32);

// textimage2video.py's conditioning image: Lanczos-resized to cover `size` (scale = max(ow / iw,
// oh / ih), rounded half to even), centre-cropped to it, to [3, oh, ow] f32 in [−1, 1].
core::Tensor ti2v_image(const io::Rgb8Image& image, PixelSize size);

// image2video.py's: the whole image as a [−1, 1] tensor, bicubic-resized to (size.height,
// size.width): [3, oh, ow] f32 (values may leave [−1, 1] slightly).
core::Tensor i2v_image(const io::Rgb8Image& image, PixelSize size);

}  // namespace wanbatch::model::wan
