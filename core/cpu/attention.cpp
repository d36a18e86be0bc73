// Scaled dot-product attention on the CPU: per batch entry and head, scores = q·kᵀ·scale (+ bias),
// masked past the key length, softmax, times v. Query rows go in blocks so the score matrix stays
// small even for video-length sequences.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options) {
  FloatIn qin(q), kin(k), vin(v), bias_in(options.bias);
  FloatOut o(out);
  const int64_t batch = q.dim(0), lq = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t lk = k.dim(1), dv = v.dim(3);
  const float scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));
  constexpr int64_t kBlock = 256;
  std::vector<float> scores(static_cast<size_t>(kBlock * std::max<int64_t>(lk, 1)));

  for (int64_t b = 0; b < batch; ++b) {
    const int64_t keys = options.k_lens.empty() ? lk : options.k_lens[b];
    for (int64_t h = 0; h < heads; ++h) {
      const float* qbh = qin.get() + (b * lq * heads + h) * d;
      const float* kbh = kin.get() + (b * lk * heads + h) * d;
      const float* vbh = vin.get() + (b * lk * heads + h) * dv;
      float* obh = o.get() + (b * lq * heads + h) * dv;
      for (int64_t i0 = 0; i0 < lq; i0 += kBlock) {
        const int64_t rows = std::min(kBlock, lq - i0);
        if (keys == 0) {  // every key masked: the output rows are zero
          for (int64_t i = 0; i < rows; ++i) std::fill_n(obh + (i0 + i) * heads * dv, dv, 0.0f);
          continue;
        }
        // scores[rows, keys] = q · kᵀ · scale (rows and keys strided by heads·dim)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                    static_cast<int>(keys), static_cast<int>(d), scale,
                    qbh + i0 * heads * d, static_cast<int>(heads * d), kbh,
                    static_cast<int>(heads * d), 0.0f, scores.data(), static_cast<int>(keys));
        for (int64_t i = 0; i < rows; ++i) {
          float* row = scores.data() + i * keys;
          if (const float* bias = bias_in.get()) {
            const float* brow = bias + (h * lq + i0 + i) * lk;
            for (int64_t j = 0; j < keys; ++j) row[j] += brow[j];
          }
          const float peak = *std::max_element(row, row + keys);
          double sum = 0.0;
          for (int64_t j = 0; j < keys; ++j) {
            row[j] = std::exp(row[j] - peak);
            sum += row[j];
          }
          const float inv = static_cast<float>(1.0 / sum);
          for (int64_t j = 0; j < keys; ++j) row[j] *= inv;
        }
        // out rows = probabilities · v
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                    static_cast<int>(dv), static_cast<int>(keys), 1.0f, scores.data(),
                    static_cast<int>(keys), vbh, static_cast<int>(heads * dv), 0.0f,
                    obh + i0 * heads * dv, static_cast<int>(heads * dv));
      }
    }
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
