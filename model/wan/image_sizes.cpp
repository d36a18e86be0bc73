// The official size rules in their float64 arithmetic: CPython's float floor division, libm's sqrt
// and pow, Python's round (half to even). This file is built with -ffp-contract=off so that no
// fused multiply-add changes a rounding.
#include "model/wan/image_sizes.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/image_resize.h"

namespace wanbatch::model::wan {
namespace {

// Python's a // b on floats (CPython's float divmod, which NumPy's floor_divide follows): the
// fmod-based quotient, floored, so that it is the exact floor of a / b for the positive values
// here.
double py_floordiv(double a, double b) {
  const double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, a / b);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

void check_sizes(int64_t image_width, int64_t image_height, int64_t max_area, const char* rule) {
  WB_CHECK(image_width >= 1 && image_height >= 1, rule, ": the image is ", image_width, "x",
           image_height, " pixels; it needs at least one");
  WB_CHECK(max_area >= 1 && max_area <= (int64_t{1} << 40), rule, ": max_area ", max_area,
           " (the item's width * height) is not a usable area");
}

}  // namespace

PixelSize i2v_size(int64_t image_width, int64_t image_height, int64_t max_area, int64_t vae_stride,
                   int64_t patch) {
  check_sizes(image_width, image_height, max_area, "i2v_size");
  WB_CHECK(vae_stride >= 1 && patch >= 1, "i2v_size: vae_stride ", vae_stride, " and patch ", patch,
           " must be positive");
  // image2video.py: aspect_ratio = h / w; lat = round(sqrt(max_area · ar) // stride // patch ·
  // patch) (and max_area / ar for the width), in float64.
  const double aspect_ratio = static_cast<double>(image_height) / static_cast<double>(image_width);
  const double area = static_cast<double>(max_area);
  const auto latent = [&](double side) {
    const double cells =
        py_floordiv(py_floordiv(side, static_cast<double>(vae_stride)), static_cast<double>(patch));
    return static_cast<int64_t>(std::nearbyint(cells * static_cast<double>(patch)));
  };
  const int64_t lat_h = latent(std::sqrt(area * aspect_ratio));
  const int64_t lat_w = latent(std::sqrt(area / aspect_ratio));
  WB_CHECK(lat_h >= 1 && lat_w >= 1, "i2v_size: max_area ", max_area, " for a ", image_width, "x",
           image_height, " image gives a ", lat_w * vae_stride, "x", lat_h * vae_stride,
           " video; the area must allow at least ", vae_stride * patch, " pixels each way");
  return {lat_w * vae_stride, lat_h * vae_stride};
}

PixelSize ti2v_size(int64_t image_width, int64_t image_height, int64_t max_area, int64_t multiple) {
  check_sizes(image_width, image_height, max_area, "ti2v_size");
  WB_CHECK(multiple >= 1, "ti2v_size: multiple ", multiple, " must be positive");
  // utils.best_output_size(w, h, dw, dh, expected_area) with dw = dh = multiple.
  const double d = static_cast<double>(multiple);
  const double area = static_cast<double>(max_area);
  const double ratio = static_cast<double>(image_width) / static_cast<double>(image_height);
  const double ow = std::pow(area * ratio, 0.5);  // Python's ** 0.5 is libm's pow
  const double oh = area / ow;
  const auto fail = [&] {
    return make_error("ti2v_size: max_area ", max_area, " for a ", image_width, "x", image_height,
                      " image leaves no ", multiple, "-pixel multiple each way");
  };
  // Width first: its multiple below ow, then the height's below what the area leaves.
  const int64_t ow1 = static_cast<int64_t>(py_floordiv(ow, d) * d);
  if (ow1 < 1) throw fail();
  const int64_t oh1 = static_cast<int64_t>(py_floordiv(area / static_cast<double>(ow1), d) * d);
  // Height first.
  const int64_t oh2 = static_cast<int64_t>(py_floordiv(oh, d) * d);
  if (oh1 < 1 || oh2 < 1) throw fail();
  const int64_t ow2 = static_cast<int64_t>(py_floordiv(area / static_cast<double>(oh2), d) * d);
  if (ow2 < 1) throw fail();
  // The one whose aspect ratio is nearer the image's (as a ratio either way round); ties go to
  // the height-first size, as in the Python's strict comparison.
  const double ratio1 = static_cast<double>(ow1) / static_cast<double>(oh1);
  const double ratio2 = static_cast<double>(ow2) / static_cast<double>(oh2);
  const double off1 = std::max(ratio / ratio1, ratio1 / ratio);
  const double off2 = std::max(ratio / ratio2, ratio2 / ratio);
  if (off1 < off2) return {ow1, oh1};
  return {ow2, oh2};
}

core::Tensor ti2v_image(const io::Rgb8Image& image, PixelSize size) {
  WB_CHECK(image.width >= 1 && image.height >= 1, "ti2v_image: the image is ", image.width, "x",
           image.height, " pixels");
  WB_CHECK(size.width >= 1 && size.height >= 1, "ti2v_image: cannot make a ", size.width, "x",
           size.height, " image");
  // textimage2video.py: scale to cover the output, Lanczos, centre crop.
  const double scale =
      std::max(static_cast<double>(size.width) / static_cast<double>(image.width),
               static_cast<double>(size.height) / static_cast<double>(image.height));
  // Python's round(): half to even, which nearbyint does in the default rounding mode.
  const auto scaled = [&](int64_t side) {
    return static_cast<int64_t>(std::nearbyint(static_cast<double>(side) * scale));
  };
  const int64_t width = scaled(image.width), height = scaled(image.height);
  WB_CHECK(width >= size.width && height >= size.height, "ti2v_image: the ", image.width, "x",
           image.height, " image scaled to ", width, "x", height, " does not cover ", size.width,
           "x", size.height);
  const io::Rgb8Image resized = io::resize_lanczos(image, width, height);
  const io::Rgb8Image cropped = io::crop(resized, (width - size.width) / 2,
                                         (height - size.height) / 2, size.width, size.height);
  return io::rgb8_to_tensor(cropped);
}

core::Tensor i2v_image(const io::Rgb8Image& image, PixelSize size) {
  return io::resize_bicubic(io::rgb8_to_tensor(image), size.height, size.width);
}

}  // namespace wanbatch::model::wan
