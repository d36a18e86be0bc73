// Element-wise CPU ops: casts, fills, activations, arithmetic with trailing broadcast, softmax.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {
namespace {

template <typename F>
void unary(const Tensor& x, Tensor& out, F f) {
  FloatIn xin(x);
  FloatOut o(out);
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) o.get()[i] = f(xin.get()[i]);
  o.commit();
}

// b repeats over a's leading dimensions: element i of a pairs with element i mod |b| of b.
template <typename F>
void binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  FloatIn ain(a), bin(b);
  FloatOut o(out);
  const int64_t n = a.numel(), m = b.numel();
  for (int64_t i = 0; i < n; ++i) o.get()[i] = f(ain.get()[i], bin.get()[m == n ? i : i % m]);
  o.commit();
}

}  // namespace

void cast(const Tensor& x, Tensor& out) { out.copy_from(x); }

void fill(Tensor& out, float value) {
  FloatOut o(out);
  std::fill(o.get(), o.get() + out.numel(), value);
  o.commit();
}

void gelu_tanh(const Tensor& x, Tensor& out) {
  unary(x, out, [](float v) {
    const double kSqrt2OverPi = 0.7978845608028654;
    const double d = v;
    return static_cast<float>(0.5 * d *
                              (1.0 + std::tanh(kSqrt2OverPi * (d + 0.044715 * d * d * d))));
  });
}

void gelu_erf(const Tensor& x, Tensor& out) {
  unary(x, out, [](float v) {
    const double d = v;
    return static_cast<float>(0.5 * d * (1.0 + std::erf(d * 0.7071067811865476)));
  });
}

void silu(const Tensor& x, Tensor& out) {
  unary(x, out,
        [](float v) { return static_cast<float>(v / (1.0 + std::exp(-static_cast<double>(v)))); });
}

void scale(const Tensor& x, float factor, Tensor& out) {
  unary(x, out, [factor](float v) { return v * factor; });
}

void linear_combination(const std::vector<double>& coefficients,
                        const std::vector<const Tensor*>& inputs, Tensor& out) {
  std::vector<FloatIn> in;
  in.reserve(inputs.size());
  for (const Tensor* x : inputs) in.emplace_back(*x);
  FloatOut o(out);
  const int64_t n = out.numel();
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0.0;
    for (size_t k = 0; k < in.size(); ++k) sum += coefficients[k] * in[k].get()[i];
    o.get()[i] = static_cast<float>(sum);
  }
  o.commit();
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  binary(a, b, out, [](float u, float v) { return u + v; });
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  binary(a, b, out, [](float u, float v) { return u * v; });
}

void clamp(const Tensor& x, float lo, float hi, Tensor& out) {
  unary(x, out, [lo, hi](float v) { return std::min(std::max(v, lo), hi); });
}

void channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& out) {
  FloatIn xin(x), scale_in(scale), shift_in(shift);
  FloatOut o(out);
  const int64_t channels = x.dim(0), plane = channels ? x.numel() / channels : 0;
  for (int64_t c = 0; c < channels; ++c) {
    const float a = scale_in.get()[c], b = shift_in.get()[c];
    const float* src = xin.get() + c * plane;
    float* dst = o.get() + c * plane;
    for (int64_t i = 0; i < plane; ++i) dst[i] = src[i] * a + b;
  }
  o.commit();
}

void softmax(const Tensor& x, Tensor& out) {
  FloatIn xin(x);
  FloatOut o(out);
  const int64_t width = x.dim(-1), rows = width ? x.numel() / width : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xin.get() + r * width;
    float* dst = o.get() + r * width;
    const float peak = *std::max_element(row, row + width);
    double sum = 0.0;
    for (int64_t j = 0; j < width; ++j) sum += std::exp(static_cast<double>(row[j]) - peak);
    for (int64_t j = 0; j < width; ++j) {
      dst[j] = static_cast<float>(std::exp(static_cast<double>(row[j]) - peak) / sum);
    }
  }
  o.commit();
}

// Element (i0, i1, ...) of out comes from x at the same indices reordered by perm; the source
// offset is advanced incrementally like an odometer, so there is no division per element.
void permute(const Tensor& x, const std::vector<int>& perm, Tensor& out) {
  const int n = x.ndim();
  const size_t element = dtype_size(x.dtype());
  std::vector<int64_t> in_strides(n), stride(n), extent(n), index(n, 0);
  int64_t s = 1;
  for (int d = n - 1; d >= 0; --d) {
    in_strides[d] = s;
    s *= x.dim(d);
  }
  for (int d = 0; d < n; ++d) {
    extent[d] = out.dim(d);
    stride[d] = in_strides[perm[d]];
  }
  const auto* src = static_cast<const char*>(x.raw());
  auto* dst = static_cast<char*>(out.raw());
  const int64_t total = out.numel();
  int64_t offset = 0;
  for (int64_t i = 0; i < total; ++i) {
    std::memcpy(dst + i * element, src + offset * element, element);
    for (int d = n - 1; d >= 0; --d) {
      offset += stride[d];
      if (++index[d] < extent[d]) break;
      offset -= stride[d] * extent[d];
      index[d] = 0;
    }
  }
}

void sinusoidal_embedding(const Tensor& timesteps, Tensor& out) {
  FloatIn tin(timesteps);
  FloatOut o(out);
  const int64_t count = timesteps.numel(), dim = out.dim(1), half = dim / 2;
  for (int64_t r = 0; r < count; ++r) {
    const double t = tin.get()[r];
    float* row = o.get() + r * dim;
    for (int64_t i = 0; i < half; ++i) {
      const double angle =
          t * std::pow(10000.0, -static_cast<double>(i) / static_cast<double>(half));
      row[i] = static_cast<float>(std::cos(angle));
      row[half + i] = static_cast<float>(std::sin(angle));
    }
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
