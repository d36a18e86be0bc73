// Normalisations over the last dimension, and the Wan fusions built on them. Statistics are
// accumulated in double so the CPU backend is a tight fp32 reference.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {
namespace {

// Mean and 1/sqrt(var + eps) of one row (biased variance, as LayerNorm uses).
void row_stats(const float* row, int64_t width, float eps, double& mean, double& inv_std) {
  double sum = 0.0;
  for (int64_t j = 0; j < width; ++j) sum += row[j];
  mean = sum / static_cast<double>(width);
  double var = 0.0;
  for (int64_t j = 0; j < width; ++j) {
    const double d = row[j] - mean;
    var += d * d;
  }
  var /= static_cast<double>(width);
  inv_std = 1.0 / std::sqrt(var + static_cast<double>(eps));
}

// Row r of a modulation tensor given as [D], [1, D] or [L, D].
const float* modulation_row(const float* base, const Tensor& m, int64_t r, int64_t width) {
  const bool per_row = m.ndim() == 2 && m.dim(0) > 1;
  return base + (per_row ? r * width : 0);
}

}  // namespace

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  FloatIn xin(x), win(weight), bin(bias);
  FloatOut o(out);
  const int64_t width = x.dim(-1), rows = width ? x.numel() / width : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xin.get() + r * width;
    float* dst = o.get() + r * width;
    double mean, inv_std;
    row_stats(row, width, eps, mean, inv_std);
    for (int64_t j = 0; j < width; ++j) {
      float v = static_cast<float>((row[j] - mean) * inv_std);
      if (win.get()) v *= win.get()[j];
      if (bin.get()) v += bin.get()[j];
      dst[j] = v;
    }
  }
  o.commit();
}

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  FloatIn xin(x), win(weight);
  FloatOut o(out);
  const int64_t width = x.dim(-1), rows = width ? x.numel() / width : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xin.get() + r * width;
    float* dst = o.get() + r * width;
    double sum_sq = 0.0;
    for (int64_t j = 0; j < width; ++j) sum_sq += static_cast<double>(row[j]) * row[j];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(width) + eps);
    for (int64_t j = 0; j < width; ++j) {
      float v = static_cast<float>(row[j] * inv_rms);
      if (win.get()) v *= win.get()[j];
      dst[j] = v;
    }
  }
  o.commit();
}

// Channel-first: the sum of squares over C is accumulated for all positions at once, walking each
// channel's contiguous plane, then every element is scaled by sqrt(C) / max(‖x[:, p]‖, 1e-12).
void rms_norm_channels(const Tensor& x, const Tensor& gamma, const Tensor& bias, Tensor& out) {
  FloatIn xin(x), gin(gamma), bin(bias);
  FloatOut o(out);
  const int64_t channels = x.dim(0), positions = channels ? x.numel() / channels : 0;
  constexpr double kNormEps = 1e-12;  // F.normalize's default
  std::vector<double> factor(static_cast<size_t>(positions), 0.0);
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = xin.get() + c * positions;
    for (int64_t p = 0; p < positions; ++p) factor[p] += static_cast<double>(plane[p]) * plane[p];
  }
  const double root_c = std::sqrt(static_cast<double>(channels));
  for (double& f : factor) f = root_c / std::max(std::sqrt(f), kNormEps);
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = xin.get() + c * positions;
    float* dst = o.get() + c * positions;
    const double g = gin.get()[c];
    const float b = bin.get() ? bin.get()[c] : 0.0f;
    for (int64_t p = 0; p < positions; ++p) {
      dst[p] = static_cast<float>(plane[p] * factor[p] * g) + b;
    }
  }
  o.commit();
}

void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                        Tensor& out) {
  FloatIn xin(x), shift_in(shift), scale_in(scale);
  FloatOut o(out);
  const int64_t rows = x.dim(0), width = x.dim(1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xin.get() + r * width;
    const float* sh = modulation_row(shift_in.get(), shift, r, width);
    const float* sc = modulation_row(scale_in.get(), scale, r, width);
    float* dst = o.get() + r * width;
    double mean, inv_std;
    row_stats(row, width, eps, mean, inv_std);
    for (int64_t j = 0; j < width; ++j) {
      const float normed = static_cast<float>((row[j] - mean) * inv_std);
      dst[j] = normed * (1.0f + sc[j]) + sh[j];
    }
  }
  o.commit();
}

void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate, Tensor& out) {
  FloatIn xin(x), yin(y), gin(gate);
  FloatOut o(out);
  const int64_t rows = x.dim(0), width = x.dim(1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = modulation_row(gin.get(), gate, r, width);
    for (int64_t j = 0; j < width; ++j) {
      const int64_t i = r * width + j;
      o.get()[i] = xin.get()[i] + yin.get()[i] * g[j];
    }
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
