// Element-wise CPU ops: casts, fills, activations, arithmetic with trailing broadcast, softmax.
#include <algorithm>
#include <cmath>

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
    return static_cast<float>(0.5 * d * (1.0 + std::tanh(kSqrt2OverPi * (d + 0.044715 * d * d * d))));
  });
}

void silu(const Tensor& x, Tensor& out) {
  unary(x, out, [](float v) { return static_cast<float>(v / (1.0 + std::exp(-static_cast<double>(v)))); });
}

void scale(const Tensor& x, float factor, Tensor& out) {
  unary(x, out, [factor](float v) { return v * factor; });
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  binary(a, b, out, [](float u, float v) { return u + v; });
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  binary(a, b, out, [](float u, float v) { return u * v; });
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

}  // namespace wanbatch::core::cpu
