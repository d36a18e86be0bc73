// 3-D convolution on the CPU by im2col and GEMM, one output frame at a time so the column buffer
// stays the size of one frame's patches.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {

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
  std::vector<float> columns(static_cast<size_t>(patch * plane));

  for (int64_t n = 0; n < batch; ++n) {
    const float* xn = xin.get() + n * c * t * h * w;
    float* on = o.get() + n * oc * ot * plane;
    for (int64_t to = 0; to < ot; ++to) {
      // columns[(ci, dt, dy, dx), (yo, xo)] = padded input at the tap's position
      for (int64_t ci = 0; ci < c; ++ci) {
        for (int64_t dt = 0; dt < kt; ++dt) {
          const int64_t ti = to * s[0] + dt - p[0];
          for (int64_t dy = 0; dy < kh; ++dy) {
            for (int64_t dx = 0; dx < kw; ++dx) {
              float* col = columns.data() + (((ci * kt + dt) * kh + dy) * kw + dx) * plane;
              for (int64_t yo = 0; yo < oh; ++yo) {
                const int64_t yi = yo * s[1] + dy - p[2];
                for (int64_t xo = 0; xo < ow; ++xo) {
                  const int64_t xi = xo * s[2] + dx - p[4];
                  const bool inside = ti >= 0 && ti < t && yi >= 0 && yi < h && xi >= 0 && xi < w;
                  col[yo * ow + xo] = inside ? xn[((ci * t + ti) * h + yi) * w + xi] : 0.0f;
                }
              }
            }
          }
        }
      }
      // out[o, to, :, :] = weight[o, patch] · columns[patch, plane]; rows of out are ot·plane apart
      float* frame = on + to * plane;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(oc),
                  static_cast<int>(plane), static_cast<int>(patch), 1.0f, win.get(),
                  static_cast<int>(patch), columns.data(), static_cast<int>(plane), 0.0f, frame,
                  static_cast<int>(ot * plane));
      if (const float* b = bin.get()) {
        for (int64_t oi = 0; oi < oc; ++oi) {
          float* dst = frame + oi * ot * plane;
          std::for_each(dst, dst + plane, [v = b[oi]](float& e) { e += v; });
        }
      }
    }
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
