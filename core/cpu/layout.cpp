// Data-movement CPU ops: slices along any dimension, repeats, means over a dimension and nearest
// 2× upsampling. A tensor is seen as [outer, extent, inner] around the dimension in question, so
// each op is a few nested loops over contiguous runs.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {
namespace {

// Product of the dimensions before / after `dim`.
int64_t outer_size(const Tensor& x, int dim) {
  int64_t n = 1;
  for (int i = 0; i < dim; ++i) n *= x.dim(i);
  return n;
}
int64_t inner_size(const Tensor& x, int dim) {
  int64_t n = 1;
  for (int i = dim + 1; i < x.ndim(); ++i) n *= x.dim(i);
  return n;
}

}  // namespace

void copy_slice(const Tensor& src, int dim, int64_t src_begin, Tensor& dst, int64_t dst_begin,
                int64_t count) {
  const size_t element = dtype_size(src.dtype());
  const int64_t outer = outer_size(src, dim), inner = inner_size(src, dim);
  const int64_t src_extent = src.dim(dim), dst_extent = dst.dim(dim);
  const auto* from = static_cast<const char*>(src.raw());
  auto* to = static_cast<char*>(dst.raw());
  const size_t run = static_cast<size_t>(count * inner) * element;  // contiguous in both
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(to + ((o * dst_extent + dst_begin) * inner) * element,
                from + ((o * src_extent + src_begin) * inner) * element, run);
  }
}

void repeat_interleave(const Tensor& x, int dim, Tensor& out) {
  const size_t element = dtype_size(x.dtype());
  const int64_t outer = outer_size(x, dim), inner = inner_size(x, dim);
  const int64_t extent = x.dim(dim), repeats = out.dim(dim) / extent;
  const auto* from = static_cast<const char*>(x.raw());
  auto* to = static_cast<char*>(out.raw());
  const size_t run = static_cast<size_t>(inner) * element;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < extent; ++i) {
      const char* src = from + (o * extent + i) * run;
      for (int64_t r = 0; r < repeats; ++r) {
        std::memcpy(to + ((o * extent + i) * repeats + r) * run, src, run);
      }
    }
  }
}

void mean_dim(const Tensor& x, int dim, Tensor& out) {
  FloatIn xin(x);
  FloatOut o(out);
  const int64_t outer = outer_size(x, dim), inner = inner_size(x, dim), extent = x.dim(dim);
  std::vector<double> sum(static_cast<size_t>(inner));
  for (int64_t a = 0; a < outer; ++a) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t i = 0; i < extent; ++i) {
      const float* row = xin.get() + (a * extent + i) * inner;
      for (int64_t j = 0; j < inner; ++j) sum[j] += row[j];
    }
    float* dst = o.get() + a * inner;
    for (int64_t j = 0; j < inner; ++j) dst[j] = static_cast<float>(sum[j] / extent);
  }
  o.commit();
}

void upsample_nearest_2x(const Tensor& x, Tensor& out) {
  FloatIn xin(x);
  FloatOut o(out);
  const int64_t h = x.dim(-2), w = x.dim(-1), planes = h * w > 0 ? x.numel() / (h * w) : 0;
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = xin.get() + p * h * w;
    float* dst = o.get() + p * 4 * h * w;
    for (int64_t y = 0; y < h; ++y) {
      float* row = dst + 2 * y * 2 * w;
      for (int64_t i = 0; i < w; ++i) row[2 * i] = row[2 * i + 1] = src[y * w + i];
      std::memcpy(row + 2 * w, row, static_cast<size_t>(2 * w) * sizeof(float));  // row 2y + 1
    }
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
