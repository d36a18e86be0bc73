#include "core/cpu/float_buffers.h"

namespace wanbatch::core::cpu {

FloatIn::FloatIn(const Tensor& tensor) {
  if (!tensor.defined()) return;
  if (tensor.dtype() == DType::F32) {
    data_ = tensor.data<float>();
  } else {
    converted_ = tensor.to(DType::F32);
    data_ = converted_.data<float>();
  }
}

FloatOut::FloatOut(Tensor& tensor) : target_(tensor) {
  if (tensor.dtype() == DType::F32) {
    data_ = tensor.data<float>();
  } else {
    buffer_ = Tensor::empty(tensor.shape(), DType::F32);
    data_ = buffer_.data<float>();
  }
}

void FloatOut::commit() {
  if (buffer_.defined()) target_.copy_from(buffer_);
}

}  // namespace wanbatch::core::cpu
