// 3-D convolution on the CPU by im2col and GEMM, one output frame at a time and, for large frames,
// a block of output rows at a time, so the column buffer stays bounded (about 32 MiB) whatever
// the frame size.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {
namespace {

constexpr int64_t kMaxColumnFloats = int64_t{8} << 20;

// The output columns xo whose input column xo·stride + dx − pad lies inside [0, w): [lo, hi).
void valid_range(int64_t dx, int64_t stride, int64_t pad, int64_t w, int64_t ow, int64_t& lo,
                 int64_t& hi) {
  lo = 0;
  while (lo < ow && lo * stride + dx - pad < 0) ++lo;
  hi = ow;
  while (hi > lo && (hi - 1) * stride + dx - pad >= w) --hi;
}

// bias[o] added to `span` outputs of every output channel o (rows `stride` apart).
void add_bias(const float* bias, int64_t oc, float* out, int64_t span, int64_t stride) {
  if (!bias) return;
  for (int64_t oi = 0; oi < oc; ++oi) {
    float* row = out + oi * stride;
    std::for_each(row, row + span, [v = bias[oi]](float& e) { e += v; });
  }
}

}  // namespace

void conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias,
            const ops::Conv3dParams& params, Tensor& out) {
  FloatIn xin(x), win(weight), bin(bias);
  FloatOut o(out);
  const bool batched = x.ndim() == 5;
  const int64_t batch = batched ? x.dim(0) : 1;
  const int64_t c = x.dim(-4), t = x.dim(-3), h = x.dim(-2), w = x.dim(-1);
  const int64_t oc = weight.dim(0), kt = weight.dim(2), kh = weight.dim(3), kw = weight.dim(4);
  const int64_t ot = out.dim(-3), oh = out.dim(-2), ow = out.dim(-1);
  const auto& s = params.stride;
  const auto& p = params.padding;
  const int64_t patch = c * kt * kh * kw, plane = oh * ow;
  if (plane == 0 || oc == 0) return o.commit();
  const int64_t block_rows =
      std::clamp<int64_t>(kMaxColumnFloats / std::max<int64_t>(patch * ow, 1), 1, oh);
  // A 1×1×1 kernel without stride or padding reads the input frame as it is: no columns.
  const bool pointwise = patch == c && s == std::array<int64_t, 3>{1, 1, 1} &&
                         std::all_of(p.begin(), p.end(), [](int64_t v) { return v == 0; });

  std::vector<float> columns(pointwise ? 0 : static_cast<size_t>(patch * block_rows * ow));
  std::vector<int64_t> x_lo(static_cast<size_t>(kw)), x_hi(static_cast<size_t>(kw));
  for (int64_t dx = 0; dx < kw; ++dx) valid_range(dx, s[2], p[4], w, ow, x_lo[dx], x_hi[dx]);

  for (int64_t n = 0; n < batch; ++n) {
    const float* xn = xin.get() + n * c * t * h * w;
    float* on = o.get() + n * oc * ot * plane;
    for (int64_t to = 0; to < ot; ++to) {
      if (pointwise) {
        float* dst = on + to * plane;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(oc),
                    static_cast<int>(plane), static_cast<int>(c), 1.0f, win.get(),
                    static_cast<int>(c), xn + to * plane, static_cast<int>(t * plane), 0.0f, dst,
                    static_cast<int>(ot * plane));
        add_bias(bin.get(), oc, dst, plane, ot * plane);
        continue;
      }
      for (int64_t y0 = 0; y0 < oh; y0 += block_rows) {
        const int64_t rows = std::min(block_rows, oh - y0), span = rows * ow;
        // columns[(ci, dt, dy, dx), (yo − y0, xo)] = the padded input at the tap's position
        for (int64_t ci = 0; ci < c; ++ci) {
          for (int64_t dt = 0; dt < kt; ++dt) {
            const int64_t ti = to * s[0] + dt - p[0];
            for (int64_t dy = 0; dy < kh; ++dy) {
              for (int64_t dx = 0; dx < kw; ++dx) {
                float* col = columns.data() + (((ci * kt + dt) * kh + dy) * kw + dx) * span;
                for (int64_t r = 0; r < rows; ++r) {
                  float* dst = col + r * ow;
                  const int64_t yi = (y0 + r) * s[1] + dy - p[2];
                  if (ti < 0 || ti >= t || yi < 0 || yi >= h) {
                    std::fill(dst, dst + ow, 0.0f);
                    continue;
                  }
                  const float* src = xn + ((ci * t + ti) * h + yi) * w + dx - p[4];
                  const int64_t lo = x_lo[dx], hi = x_hi[dx];
                  std::fill(dst, dst + lo, 0.0f);
                  if (s[2] == 1) {
                    std::copy(src + lo, src + hi, dst + lo);
                  } else {
                    for (int64_t xo = lo; xo < hi; ++xo) dst[xo] = src[xo * s[2]];
                  }
                  std::fill(dst + hi, dst + ow, 0.0f);
                }
              }
            }
          }
        }
        // out[o, to, y0 .. y0+rows, :] = weight[o, patch] · columns[patch, span]; rows of out
        // are ot·plane apart
        float* dst = on + to * plane + y0 * ow;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(oc),
                    static_cast<int>(span), static_cast<int>(patch), 1.0f, win.get(),
                    static_cast<int>(patch), columns.data(), static_cast<int>(span), 0.0f, dst,
                    static_cast<int>(ot * plane));
        add_bias(bin.get(), oc, dst, span, ot * plane);
      }
    }
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
