// Helpers the CUDA op tests share: fresh random host inputs, GPU copies, outputs poisoned before
// an op runs, labels, and the comparisons of a GPU result with its CPU twin's that name the first
// differing elements. Header-only; each test file keeps its own tolerances and says why.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace wanbatch::core::cuda_test {

// Uniform random values in [lo, hi) stored as `dtype` on the host (rounded to nearest even).
inline Tensor random_tensor(const Shape& shape, DType dtype, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(lo, hi);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& v : values) v = uniform(rng);
  const Tensor f32 = Tensor::from_vector(values, shape);
  return dtype == DType::F32 ? f32 : f32.to(dtype);
}

// A copy on GPU 0; an undefined tensor (an absent optional operand) stays undefined.
inline Tensor on_gpu(const Tensor& host) {
  return host.defined() ? host.to(Device::cuda(0)) : Tensor();
}

// A GPU output whose every element is NaN (integers: a sentinel), written on gpu's stream, so an
// element the op forgets to write fails the comparison.
inline Tensor poisoned(const Context& gpu, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
  ops::fill(gpu, t, is_floating(dtype) ? std::numeric_limits<float>::quiet_NaN() : -12345.0f);
  return t;
}

// "op dtype shape" or "op dtype a with b", for the failure messages.
inline std::string label(const std::string& op, DType dtype, const Shape& a, const Shape& b = {}) {
  std::string s = op + " " + std::string(dtype_name(dtype)) + " " + shape_str(a);
  if (!b.empty()) s += " with " + shape_str(b);
  return s;
}

// Indices of the elements whose bytes differ between two host tensors of the same dtype and
// element count.
inline std::vector<int64_t> differing_elements(const Tensor& a, const Tensor& b) {
  const size_t size = dtype_size(a.dtype());
  const auto* pa = static_cast<const unsigned char*>(a.raw());
  const auto* pb = static_cast<const unsigned char*>(b.raw());
  std::vector<int64_t> differing;
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (std::memcmp(pa + i * size, pb + i * size, size) != 0) differing.push_back(i);
  }
  return differing;
}

// Same dtype, shape and bytes; names the first differing elements (as floats) otherwise.
inline void expect_identical(const Tensor& cpu, const Tensor& gpu, const std::string& what) {
  const Tensor host = gpu.to(Device::cpu());
  ASSERT_EQ(cpu.dtype(), host.dtype()) << what;
  ASSERT_EQ(cpu.shape(), host.shape()) << what;
  const std::vector<int64_t> differing = differing_elements(cpu, host);
  if (differing.empty()) return;
  const std::vector<float> cf = cpu.to_floats(), gf = host.to_floats();
  std::string examples;
  for (size_t k = 0; k < std::min<size_t>(differing.size(), 5); ++k) {
    const int64_t i = differing[k];
    examples += "\n  [" + std::to_string(i) + "] cpu " + std::to_string(cf[i]) + ", gpu " +
                std::to_string(gf[i]);
  }
  ADD_FAILURE() << what << ": " << differing.size() << " of " << cpu.numel() << " elements differ"
                << examples;
}

// |gpu − reference| ≤ bound[i] for every element, compared as floats (a NaN never passes); names
// the first failures otherwise. The reference may have a wider dtype than gpu (an fp32 reference
// of a bf16 op); the shapes must match.
template <typename Bound>
void expect_within(const Tensor& reference, const Tensor& gpu, const std::vector<Bound>& bound,
                   const std::string& what) {
  const Tensor host = gpu.to(Device::cpu());
  ASSERT_EQ(reference.shape(), host.shape()) << what;
  const std::vector<float> r = reference.to_floats(), g = host.to_floats();
  ASSERT_EQ(bound.size(), r.size()) << what;
  int64_t failures = 0;
  double worst = 0.0;
  std::string examples;
  for (size_t i = 0; i < r.size(); ++i) {
    const double error = std::fabs(static_cast<double>(g[i]) - r[i]);
    if (std::isfinite(error) && bound[i] > 0) worst = std::max(worst, error / bound[i]);
    if (!(error <= bound[i]) && ++failures <= 5) {
      examples += "\n  [" + std::to_string(i) + "] cpu " + std::to_string(r[i]) + ", gpu " +
                  std::to_string(g[i]) + ", bound " + std::to_string(bound[i]);
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << r.size()
                         << " outside the bound (worst finite at " << worst << " of it)"
                         << examples;
}

// Position of a bf16/f16 value on the number line in units of its last place (±0 both 0), so
// that neighbouring representable values are 1 apart.
inline int32_t ulp_position(uint16_t bits) {
  const int32_t magnitude = bits & 0x7fff;
  return (bits & 0x8000) ? -magnitude : magnitude;
}

}  // namespace wanbatch::core::cuda_test
