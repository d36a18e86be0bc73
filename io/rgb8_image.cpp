// The parts of io/image_reader.h that need no FFmpeg: 8-bit RGB to the pipelines' [−1, 1] tensor.
#include "core/error.h"
#include "io/image_reader.h"

namespace wanbatch::io {

core::Tensor rgb8_to_tensor(const Rgb8Image& image) {
  WB_CHECK(image.width >= 1 && image.height >= 1, "image of ", image.width, "x", image.height,
           " pixels: nothing to convert");
  const size_t pixels = static_cast<size_t>(image.width) * static_cast<size_t>(image.height);
  WB_CHECK(image.pixels.size() == 3 * pixels, "image of ", image.width, "x", image.height,
           " pixels holds ", image.pixels.size(), " bytes, not ", 3 * pixels);
  core::Tensor tensor = core::Tensor::empty({3, image.height, image.width}, core::DType::F32);
  float* out = tensor.data<float>();
  // torchvision's to_tensor divides the float bytes by 255, then .sub_(0.5).div_(0.5): three
  // fp32 roundings, kept in that order.
  for (size_t i = 0; i < pixels; ++i) {
    for (size_t c = 0; c < 3; ++c) {
      out[c * pixels + i] = (static_cast<float>(image.pixels[3 * i + c]) / 255.0f - 0.5f) / 0.5f;
    }
  }
  return tensor;
}

}  // namespace wanbatch::io
