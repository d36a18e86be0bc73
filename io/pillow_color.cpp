#include "io/pillow_color.h"

#include <algorithm>
#include <vector>

#include "io/image_reader.h"

namespace wanbatch::io {
namespace {

// jdcolor.c's tables: 16-bit fixed point, ONE_HALF rounding where libjpeg adds it.
constexpr int kShift = 16;
constexpr int32_t kHalf = int32_t{1} << (kShift - 1);
constexpr int32_t fix(double x) { return static_cast<int32_t>(x * (1 << kShift) + 0.5); }

struct YccTables {
  int cr_r[256], cb_b[256];
  int32_t cr_g[256], cb_g[256];
  YccTables() {
    for (int i = 0; i < 256; ++i) {
      const int32_t x = i - 128;
      // >> on negative values is an arithmetic shift, as libjpeg's RIGHT_SHIFT assumes.
      cr_r[i] = (fix(1.40200) * x + kHalf) >> kShift;
      cb_b[i] = (fix(1.77200) * x + kHalf) >> kShift;
      cr_g[i] = -fix(0.71414) * x;
      cb_g[i] = -fix(0.34414) * x + kHalf;
    }
  }
};

uint8_t clamp_byte(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// One chroma plane upsampled to width × height (jdsample.c): h2v1_fancy_upsample horizontally,
// h2v2_fancy_upsample (vertical 3:1 column sums, then horizontal 3:1 with biases 8 and 7) for
// both; the edge samples are the nearest ones (libjpeg's edge rules).
std::vector<uint8_t> upsample(const uint8_t* plane, int stride, int width, int height, int log2_w,
                              int log2_h) {
  const int cw = (width + (1 << log2_w) - 1) >> log2_w;
  const int ch = (height + (1 << log2_h) - 1) >> log2_h;
  auto at = [&](int x, int y) { return int{plane[static_cast<size_t>(y) * stride + x]}; };
  std::vector<uint8_t> out(static_cast<size_t>(width) * height);
  // Vertical first (as column sums, ×4 when vertically subsampled, ×1 otherwise).
  std::vector<int> sums(static_cast<size_t>(cw));
  for (int y = 0; y < height; ++y) {
    const int cy = y >> log2_h;
    int scale = 1;
    if (log2_h == 1) {
      // Output row 2r takes row r−1 as its farther neighbour, 2r+1 row r+1 (the edge rows repeat).
      const int other = std::clamp((y & 1) ? cy + 1 : cy - 1, 0, ch - 1);
      for (int x = 0; x < cw; ++x) sums[x] = 3 * at(x, cy) + at(x, other);
      scale = 4;
    } else {
      for (int x = 0; x < cw; ++x) sums[x] = at(x, cy);
    }
    uint8_t* row = out.data() + static_cast<size_t>(y) * width;
    if (log2_w == 0) {
      for (int x = 0; x < width; ++x) {
        row[x] = static_cast<uint8_t>(scale == 4 ? (sums[x] + 1 + (y & 1)) >> 2 : sums[x]);
      }
      continue;
    }
    for (int x = 0; x < width; ++x) {
      const int c = x >> 1;
      const int here = sums[c];
      if (cw == 1) {
        row[x] = static_cast<uint8_t>(scale == 4 ? (here * 4 + 8 - (x & 1)) >> 4 : here);
        continue;
      }
      if (scale == 4) {  // h2v2: (3·this + other + 8 or 7) >> 4
        if (x == 0) {
          row[x] = static_cast<uint8_t>((here * 4 + 8) >> 4);
        } else if (x == 2 * cw - 1) {
          row[x] = static_cast<uint8_t>((here * 4 + 7) >> 4);
        } else {
          const int other = (x & 1) ? sums[std::min(c + 1, cw - 1)] : sums[c - 1];
          row[x] = static_cast<uint8_t>((here * 3 + other + ((x & 1) ? 7 : 8)) >> 4);
        }
      } else {  // h2v1: (3·this + other + 1 or 2) >> 2
        if (x == 0 || x == 2 * cw - 1) {
          row[x] = static_cast<uint8_t>(here);
        } else {
          const int other = (x & 1) ? sums[std::min(c + 1, cw - 1)] : sums[c - 1];
          row[x] = static_cast<uint8_t>((here * 3 + other + ((x & 1) ? 2 : 1)) >> 2);
        }
      }
    }
  }
  return out;
}

// libwebp's VP8YUVToR/G/B: 14-bit fixed point, 6 fractional bits left before the clip.
constexpr int kWebpFix = 6;
int mult_hi(int v, int coefficient) { return (v * coefficient) >> 8; }
uint8_t webp_clip(int v) {
  constexpr int kMask = (256 << kWebpFix) - 1;
  return static_cast<uint8_t>((v & ~kMask) == 0 ? v >> kWebpFix : v < 0 ? 0 : 255);
}
void webp_pixel(int y, int u, int v, uint8_t* rgb) {
  rgb[0] = webp_clip(mult_hi(y, 19077) + mult_hi(v, 26149) - 14234);
  rgb[1] = webp_clip(mult_hi(y, 19077) - mult_hi(u, 6419) - mult_hi(v, 13320) + 8708);
  rgb[2] = webp_clip(mult_hi(y, 19077) + mult_hi(u, 33050) - 17685);
}

// One pair of output rows (`top` and, unless null, `bottom`) from the chroma rows around them
// (top_u/v above, cur_u/v below), as libwebp's UpsampleRgbLinePair: u and v packed in one word.
void webp_row_pair(const uint8_t* top_y, const uint8_t* bottom_y, const uint8_t* top_u,
                   const uint8_t* top_v, const uint8_t* cur_u, const uint8_t* cur_v,
                   uint8_t* top_rgb, uint8_t* bottom_rgb, int width) {
  auto load = [](uint8_t u, uint8_t v) { return uint32_t{u} | (uint32_t{v} << 16); };
  auto put = [](int y, uint32_t uv, uint8_t* rgb) {
    webp_pixel(y, static_cast<int>(uv & 0xff), static_cast<int>(uv >> 16), rgb);
  };
  const int last_pair = (width - 1) >> 1;
  uint32_t tl = load(top_u[0], top_v[0]), l = load(cur_u[0], cur_v[0]);
  put(top_y[0], (3 * tl + l + 0x00020002u) >> 2, top_rgb);
  if (bottom_y) put(bottom_y[0], (3 * l + tl + 0x00020002u) >> 2, bottom_rgb);
  for (int x = 1; x <= last_pair; ++x) {
    const uint32_t t = load(top_u[x], top_v[x]), c = load(cur_u[x], cur_v[x]);
    const uint32_t average = tl + t + l + c + 0x00080008u;
    const uint32_t diag_12 = (average + 2 * (t + l)) >> 3;
    const uint32_t diag_03 = (average + 2 * (tl + c)) >> 3;
    put(top_y[2 * x - 1], (diag_12 + tl) >> 1, top_rgb + 3 * (2 * x - 1));
    put(top_y[2 * x], (diag_03 + t) >> 1, top_rgb + 3 * (2 * x));
    if (bottom_y) {
      put(bottom_y[2 * x - 1], (diag_03 + l) >> 1, bottom_rgb + 3 * (2 * x - 1));
      put(bottom_y[2 * x], (diag_12 + c) >> 1, bottom_rgb + 3 * (2 * x));
    }
    tl = t;
    l = c;
  }
  if (!(width & 1)) {
    put(top_y[width - 1], (3 * tl + l + 0x00020002u) >> 2, top_rgb + 3 * (width - 1));
    if (bottom_y)
      put(bottom_y[width - 1], (3 * l + tl + 0x00020002u) >> 2, bottom_rgb + 3 * (width - 1));
  }
}

}  // namespace

void webp_yuv420_to_rgb(const uint8_t* const planes[3], const int strides[3], int width, int height,
                        Rgb8Image& out) {
  auto y_row = [&](int r) { return planes[0] + static_cast<size_t>(r) * strides[0]; };
  auto u_row = [&](int r) { return planes[1] + static_cast<size_t>(r) * strides[1]; };
  auto v_row = [&](int r) { return planes[2] + static_cast<size_t>(r) * strides[2]; };
  auto rgb_row = [&](int r) { return out.pixels.data() + static_cast<size_t>(r) * width * 3; };
  // Row 0 alone (its chroma row above is itself), then rows 2k−1 and 2k from chroma rows k−1 and
  // k, and a last odd-numbered row alone (its chroma row below is the last one).
  webp_row_pair(y_row(0), nullptr, u_row(0), v_row(0), u_row(0), v_row(0), rgb_row(0), nullptr,
                width);
  int k = 1;
  for (; 2 * k < height; ++k) {
    webp_row_pair(y_row(2 * k - 1), y_row(2 * k), u_row(k - 1), v_row(k - 1), u_row(k), v_row(k),
                  rgb_row(2 * k - 1), rgb_row(2 * k), width);
  }
  if (2 * k - 1 < height) {
    webp_row_pair(y_row(2 * k - 1), nullptr, u_row(k - 1), v_row(k - 1), u_row(k - 1), v_row(k - 1),
                  rgb_row(2 * k - 1), nullptr, width);
  }
}

bool jpeg_ycc_to_rgb(const uint8_t* const planes[3], const int strides[3], int width, int height,
                     int log2_w, int log2_h, Rgb8Image& out) {
  if (log2_w < 0 || log2_w > 1 || log2_h < 0 || log2_h > 1) return false;
  static const YccTables tables;
  const std::vector<uint8_t> cb = upsample(planes[1], strides[1], width, height, log2_w, log2_h);
  const std::vector<uint8_t> cr = upsample(planes[2], strides[2], width, height, log2_w, log2_h);
  for (int y = 0; y < height; ++y) {
    const uint8_t* luma = planes[0] + static_cast<size_t>(y) * strides[0];
    uint8_t* rgb = out.pixels.data() + static_cast<size_t>(y) * width * 3;
    for (int x = 0; x < width; ++x) {
      const size_t i = static_cast<size_t>(y) * width + x;
      const int l = luma[x], b = cb[i], r = cr[i];
      rgb[3 * x + 0] = clamp_byte(l + tables.cr_r[r]);
      rgb[3 * x + 1] = clamp_byte(l + ((tables.cb_g[b] + tables.cr_g[r]) >> kShift));
      rgb[3 * x + 2] = clamp_byte(l + tables.cb_b[b]);
    }
  }
  return true;
}

}  // namespace wanbatch::io
