// Wan's 3D rotary position embedding (wan-spec "3D RoPE"), computed in float64 as the reference
// does: channel pairs (2j, 2j+1) are complex numbers rotated by angle position·frequency, where
// the first pairs take the frame position, the next the row, the last the column.
#include <cmath>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {
namespace {

// Per channel pair: which grid axis (0 frame, 1 height, 2 width) and its frequency.
struct PairFrequency {
  int axis;
  double frequency;
};

std::vector<PairFrequency> pair_frequencies(int64_t head_dim) {
  const int64_t sixth = head_dim / 6;
  const int64_t part_dims[3] = {head_dim - 4 * sixth, 2 * sixth, 2 * sixth};
  std::vector<PairFrequency> pairs;
  for (int axis = 0; axis < 3; ++axis) {
    for (int64_t i = 0; i < part_dims[axis]; i += 2) {
      const double exponent = static_cast<double>(i) / static_cast<double>(part_dims[axis]);
      pairs.push_back({axis, 1.0 / std::pow(10000.0, exponent)});
    }
  }
  return pairs;
}

}  // namespace

void rope_3d(const Tensor& x, const ops::RopeGrid& grid, int64_t token_offset, Tensor& out) {
  FloatIn xin(x);
  FloatOut o(out);
  const int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  const int64_t real_tokens = grid.frames * grid.height * grid.width;
  const std::vector<PairFrequency> pairs = pair_frequencies(head_dim);
  const int64_t pair_count = head_dim / 2;
  std::vector<double> cos_table(static_cast<size_t>(pair_count)), sin_table(cos_table.size());

  for (int64_t t = 0; t < tokens; ++t) {
    const float* src = xin.get() + t * heads * head_dim;
    float* dst = o.get() + t * heads * head_dim;
    const int64_t g = token_offset + t;
    if (g >= real_tokens) {  // sequence padding: unchanged
      for (int64_t c = 0; c < heads * head_dim; ++c) dst[c] = src[c];
      continue;
    }
    const int64_t position[3] = {g / (grid.height * grid.width), (g / grid.width) % grid.height,
                                 g % grid.width};
    for (int64_t j = 0; j < pair_count; ++j) {
      const double angle = static_cast<double>(position[pairs[j].axis]) * pairs[j].frequency;
      cos_table[j] = std::cos(angle);
      sin_table[j] = std::sin(angle);
    }
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < pair_count; ++j) {
        const int64_t c = h * head_dim + 2 * j;
        const double re = src[c], im = src[c + 1];
        dst[c] = static_cast<float>(re * cos_table[j] - im * sin_table[j]);
        dst[c + 1] = static_cast<float>(re * sin_table[j] + im * cos_table[j]);
      }
    }
  }
  o.commit();
}

// The fusion's reference is the composition itself: rms_norm over H·D into an fp32 temporary,
// then rope_3d from it into out (so out may alias x).
void rms_norm_rope(const Tensor& x, const Tensor& weight, float eps, const ops::RopeGrid& grid,
                   int64_t token_offset, Tensor& out) {
  const int64_t tokens = x.dim(0), width = x.dim(1) * x.dim(2);
  Tensor normed = Tensor::empty(x.shape(), DType::F32);
  Tensor normed_rows = normed.reshape({tokens, width});
  rms_norm(x.reshape({tokens, width}), weight, eps, normed_rows);
  rope_3d(normed, grid, token_offset, out);
}

}  // namespace wanbatch::core::cpu
