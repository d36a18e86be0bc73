// PIL's Lanczos resize (libImaging/Resample.c) and torch's CPU bicubic interpolate
// (aten/src/ATen/native/cpu/UpSampleKernel.cpp, UpSample.h), reproduced operation by operation:
// the same double/float types, the same evaluation order, no fused multiply-adds (this file is
// built with -ffp-contract=off), so that the results are those of the reference libraries.
#include "io/image_resize.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.h"

namespace wanbatch::io {
namespace {

// The largest side handled: Pillow's coefficient and index arithmetic is in int.
constexpr int64_t kMaxSide = 1 << 20;

void check_rgb8(const Rgb8Image& image, const char* what) {
  WB_CHECK(
      image.width >= 1 && image.height >= 1 && image.width <= kMaxSide && image.height <= kMaxSide,
      what, ": an image of ", image.width, "x", image.height, " pixels cannot be resampled");
  WB_CHECK(image.pixels.size() == static_cast<size_t>(3 * image.width * image.height), what,
           ": image of ", image.width, "x", image.height, " pixels holds ", image.pixels.size(),
           " bytes, not ", 3 * image.width * image.height);
}

// ---- Pillow's Lanczos ----

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x;
}

// Lanczos-3: sinc windowed by the central lobe of a sinc three times wider.
double lanczos(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

// One output pixel's taps along one axis: source pixels first .. first + weights.size() - 1.
struct Taps {
  int first = 0;
  std::vector<int32_t> weights;  // fixed point, kPrecisionBits fraction bits
};

constexpr int kPrecisionBits = 32 - 8 - 2;  // 8 bits of result, 2 of headroom for lobes

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for box (0, in_size): a filter stretched by
// the scale when shrinking (an antialiasing low-pass), weights normalised to sum 1 in double, then
// rounded half away from zero to fixed point.
std::vector<Taps> lanczos_taps(int64_t in_size, int64_t out_size) {
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);  // Pillow's box is float
  const double scale = static_cast<double>(in1 - in0) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 3.0 * filterscale;
  const double inv_filterscale = 1.0 / filterscale;
  std::vector<Taps> taps(static_cast<size_t>(out_size));
  std::vector<double> k;
  for (int xx = 0; xx < static_cast<int>(out_size); ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    // C's truncating (int) casts, as Pillow rounds the bounds.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), static_cast<int>(in_size));
    const int count = std::max(xmax - xmin, 0);
    k.assign(static_cast<size_t>(count), 0.0);
    double ww = 0.0;
    for (int x = 0; x < count; ++x) {
      const double w = lanczos((x + xmin - center + 0.5) * inv_filterscale);
      k[x] = w;
      ww += w;
    }
    if (ww != 0.0) {
      for (double& w : k) w /= ww;
    }
    Taps& t = taps[static_cast<size_t>(xx)];
    t.first = xmin;
    t.weights.resize(static_cast<size_t>(count));
    for (int x = 0; x < count; ++x) {
      const double scaled = k[x] * (1 << kPrecisionBits);
      t.weights[x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
  }
  return taps;
}

// Pillow's clip8: the fixed-point sum (with its +0.5 bias) to a byte, saturating.
uint8_t clip8(int sum) { return static_cast<uint8_t>(std::clamp(sum >> kPrecisionBits, 0, 255)); }

// Pillow's two passes, each on R, G and B alike: along the rows, then along the columns.
Rgb8Image resample_horizontal(const Rgb8Image& in, int64_t width) {
  const std::vector<Taps> taps = lanczos_taps(in.width, width);
  Rgb8Image out{width, in.height, std::vector<uint8_t>(static_cast<size_t>(3 * width * in.height))};
  for (int64_t y = 0; y < in.height; ++y) {
    const uint8_t* row = in.pixels.data() + 3 * y * in.width;
    uint8_t* dst = out.pixels.data() + 3 * y * width;
    for (int64_t xx = 0; xx < width; ++xx) {
      const Taps& t = taps[static_cast<size_t>(xx)];
      for (int c = 0; c < 3; ++c) {
        int sum = 1 << (kPrecisionBits - 1);
        for (size_t x = 0; x < t.weights.size(); ++x) {
          sum += row[3 * (t.first + static_cast<int64_t>(x)) + c] * t.weights[x];
        }
        dst[3 * xx + c] = clip8(sum);
      }
    }
  }
  return out;
}

Rgb8Image resample_vertical(const Rgb8Image& in, int64_t height) {
  const std::vector<Taps> taps = lanczos_taps(in.height, height);
  const int64_t stride = 3 * in.width;
  Rgb8Image out{in.width, height, std::vector<uint8_t>(static_cast<size_t>(stride * height))};
  for (int64_t yy = 0; yy < height; ++yy) {
    const Taps& t = taps[static_cast<size_t>(yy)];
    const uint8_t* top = in.pixels.data() + t.first * stride;
    uint8_t* dst = out.pixels.data() + yy * stride;
    for (int64_t i = 0; i < stride; ++i) {
      int sum = 1 << (kPrecisionBits - 1);
      for (size_t y = 0; y < t.weights.size(); ++y) {
        sum += top[static_cast<int64_t>(y) * stride + i] * t.weights[y];
      }
      dst[i] = clip8(sum);
    }
  }
  return out;
}

// ---- torch's bicubic ----

// UpSample.h's cubic convolution (A = −0.75) in fp32, in its evaluation order.
float cubic_inner(float x, float a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }
float cubic_outer(float x, float a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }

struct CubicTaps {
  int64_t index[4];
  float weight[4];
};

// HelperInterpCubic::compute_indices_weights with align_corners=False and no scale factor: the
// source position scale·(dst + 0.5) − 0.5 in fp32 (not clamped at 0 for cubic), its floor and
// fraction, four edge-clamped taps.
std::vector<CubicTaps> cubic_taps(int64_t in_size, int64_t out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  std::vector<CubicTaps> taps(static_cast<size_t>(out_size));
  for (int64_t i = 0; i < out_size; ++i) {
    const float real = scale * (static_cast<float>(i) + 0.5f) - 0.5f;
    const int64_t index =
        std::min(static_cast<int64_t>(std::floor(real)), in_size - 1);  // torch's guard
    const float t = std::min(std::max(real - static_cast<float>(index), 0.0f), 1.0f);
    const float a = -0.75f;
    CubicTaps& tap = taps[static_cast<size_t>(i)];
    // Torch adds and subtracts these in double (its literals are 1.0) and rounds back to float.
    tap.weight[0] = cubic_outer(static_cast<float>(static_cast<double>(t) + 1.0), a);
    tap.weight[1] = cubic_inner(t, a);
    const float t2 = static_cast<float>(1.0 - static_cast<double>(t));
    tap.weight[2] = cubic_inner(t2, a);
    tap.weight[3] = cubic_outer(static_cast<float>(static_cast<double>(t2) + 1.0), a);
    for (int j = 0; j < 4; ++j) {
      tap.index[j] = std::clamp<int64_t>(index - 1 + j, 0, in_size - 1);
    }
  }
  return taps;
}

}  // namespace

Rgb8Image resize_lanczos(const Rgb8Image& image, int64_t width, int64_t height) {
  check_rgb8(image, "resize_lanczos");
  WB_CHECK(width >= 1 && height >= 1 && width <= kMaxSide && height <= kMaxSide,
           "resize_lanczos: cannot resize to ", width, "x", height, " pixels");
  // Pillow skips the pass of an axis whose size does not change, and runs the horizontal pass
  // first (rounding to bytes in between).
  Rgb8Image out = width != image.width ? resample_horizontal(image, width) : image;
  if (height != image.height) out = resample_vertical(out, height);
  return out;
}

Rgb8Image crop(const Rgb8Image& image, int64_t left, int64_t top, int64_t width, int64_t height) {
  check_rgb8(image, "crop");
  WB_CHECK(width >= 1 && height >= 1 && left >= 0 && top >= 0 && left + width <= image.width &&
               top + height <= image.height,
           "crop: the box ", width, "x", height, " at (", left, ", ", top, ") is not inside the ",
           image.width, "x", image.height, " image");
  Rgb8Image out{width, height, std::vector<uint8_t>(static_cast<size_t>(3 * width * height))};
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* src = image.pixels.data() + 3 * ((top + y) * image.width + left);
    std::copy(src, src + 3 * width, out.pixels.data() + 3 * y * width);
  }
  return out;
}

core::Tensor resize_bicubic(const core::Tensor& image, int64_t height, int64_t width) {
  WB_CHECK(image.device().is_cpu() && image.dtype() == core::DType::F32 && image.ndim() == 3,
           "resize_bicubic: expected a [C, H, W] f32 CPU tensor, got ",
           core::shape_str(image.shape()), " on ", image.device().str());
  const int64_t channels = image.dim(0), in_h = image.dim(1), in_w = image.dim(2);
  WB_CHECK(channels >= 1 && in_h >= 1 && in_w >= 1, "resize_bicubic: empty input ",
           core::shape_str(image.shape()));
  WB_CHECK(height >= 1 && width >= 1, "resize_bicubic: cannot resize to ", height, "x", width);
  const std::vector<CubicTaps> rows = cubic_taps(in_h, height);
  const std::vector<CubicTaps> cols = cubic_taps(in_w, width);
  core::Tensor out = core::Tensor::empty({channels, height, width}, core::DType::F32);
  const float* src = image.data<float>();
  float* dst = out.data<float>();
  // Torch's non-separable loop: per output value, each of the 4 rows interpolated along the width
  // (x·w accumulated left to right), then those 4 values combined with the row weights.
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = src + c * in_h * in_w;
    for (int64_t oy = 0; oy < height; ++oy) {
      const CubicTaps& r = rows[static_cast<size_t>(oy)];
      for (int64_t ox = 0; ox < width; ++ox) {
        const CubicTaps& q = cols[static_cast<size_t>(ox)];
        float output = 0.0f;
        for (int j = 0; j < 4; ++j) {
          const float* line = plane + r.index[j] * in_w;
          float t = line[q.index[0]] * q.weight[0];
          for (int k = 1; k < 4; ++k) t += line[q.index[k]] * q.weight[k];
          output = j == 0 ? t * r.weight[0] : output + t * r.weight[j];
        }
        dst[(c * height + oy) * width + ox] = output;
      }
    }
  }
  return out;
}

}  // namespace wanbatch::io
