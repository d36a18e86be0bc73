// Test-only support for the core::ops reference tests: a reader for the NumPy-generated fixture
// (tests/reference/ops_reference.py writes a safetensors file of F32 tensors), an element-wise
// closeness check that names the worst element, and a check that an op accepts reduced-precision
// tensors. The reader is deliberately independent of io/ so that these tests check core alone.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanbatch::test {

class Fixture {
 public:
  // Reads every tensor of a safetensors file; throws wanbatch::Error on a malformed file or a
  // dtype other than F32.
  static Fixture load(const std::string& path);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The stored tensor; its storage is shared, so clone() it before writing. Throws if absent.
  const core::Tensor& get(const std::string& name) const;
  // A copy the caller may write to (for tests where out aliases an input).
  core::Tensor copy(const std::string& name) const { return get(name).clone(); }
  // A one-element parameter tensor ("<case>.eps", "<case>.scale", ...).
  float scalar(const std::string& name) const;
  // Integral parameters stored as F32 ("<case>.k_lens", "<case>.grid", ...).
  std::vector<int64_t> ints(const std::string& name) const;

 private:
  std::map<std::string, core::Tensor> tensors_;
};

// WANBATCH_FIXTURE_DIR/ops_reference.safetensors, loaded on first use.
const Fixture& ops_fixture();

// A fresh host tensor of `like`'s shape (`dtype` F32 unless given).
core::Tensor empty_like(const core::Tensor& like, core::DType dtype = core::DType::F32);

// Passes when shapes match and |got − want| ≤ atol + rtol·|want| for every element (both read as
// fp32); otherwise says how many elements fail and which is worst, with its index and values.
::testing::AssertionResult all_close(const core::Tensor& got, const core::Tensor& want, double atol,
                                     double rtol);

// An op under test: reads `inputs` (same order every call) and writes `out`.
using OpRun = std::function<void(const std::vector<core::Tensor>& inputs, core::Tensor& out)>;

// Checks that `op` accepts reduced-precision (bf16/f16) tensors. The expected result is the fp32
// path run on the inputs rounded to `dtype`. Three variants are compared with it:
//   all inputs in `dtype`, fp32 output: the same fp32 computation, so within fp32 noise (1e-5);
//   fp32 inputs (already rounded), output in `dtype`: within one rounding to `dtype`;
//   all inputs and the output in `dtype`: within one rounding to `dtype`.
::testing::AssertionResult reduced_precision_matches(const OpRun& op,
                                                     const std::vector<core::Tensor>& inputs,
                                                     const core::Shape& out_shape,
                                                     core::DType dtype);

}  // namespace wanbatch::test
