// fp32 views of op arguments for the CPU kernels: f32 tensors are used in place, other dtypes are
// converted to a temporary fp32 copy (inputs) or computed in fp32 and converted back (outputs).
#pragma once

#include "core/tensor.h"

namespace wanbatch::core::cpu {

class FloatIn {
 public:
  explicit FloatIn(const Tensor& tensor);  // an undefined tensor gives a null pointer
  const float* get() const { return data_; }

 private:
  Tensor converted_;
  const float* data_ = nullptr;
};

class FloatOut {
 public:
  explicit FloatOut(Tensor& tensor);
  float* get() const { return data_; }
  // Writes the fp32 results into the output tensor when it is not f32; call once, after compute.
  void commit();

 private:
  Tensor& target_;
  Tensor buffer_;
  float* data_ = nullptr;
};

}  // namespace wanbatch::core::cpu
