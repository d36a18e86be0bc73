// Tensor: a typed, shaped, contiguous row-major view into shared storage on one device. Views
// (reshape, leading-dimension slices) share storage; copies move data across devices and dtypes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace wanbatch::core {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"

// A block of memory on one device, freed by its release function when the last owner goes.
class Storage {
 public:
  using Release = std::function<void(void*)>;
  Storage(void* data, size_t bytes, Device device, Release release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Fresh memory: 64-byte aligned on the host, cudaMalloc'd on a CUDA device.
  static std::shared_ptr<Storage> allocate(size_t bytes, Device device);
  // Memory owned elsewhere (an mmap'd file, say), kept alive by `owner` as long as this lives.
  static std::shared_ptr<Storage> borrow(void* data, size_t bytes, Device device,
                                         std::shared_ptr<const void> owner);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t bytes_;
  Device device_;
  Release release_;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::I64;
}
// Reduced-precision floats are stored as raw bits; data<uint16_t>() accepts bf16 and f16.

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false; used for optional arguments

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // A host tensor in page-locked memory when a CUDA device exists (so copies to a device can run
  // beside the ops, core/copy_stream.h), in ordinary host memory otherwise.
  static Tensor empty_pinned(const Shape& shape, DType dtype);
  // A copy in host memory from empty_pinned (--offload model: weights waiting off the device).
  Tensor to_pinned() const;
  // A view of `storage` starting `offset` bytes in; throws if it would run past the end.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t offset, const Shape& shape,
                             DType dtype);
  // A host tensor holding a copy of `values` (float → f32, int32_t → i32, int64_t → i64).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t offset() const { return offset_; }

  void* raw() const;
  // Typed pointer (host or device address); throws if T does not match the dtype.
  template <typename T>
  T* data() const;

  // Same elements, new shape (one dimension may be -1); shares storage.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the leading dimension; shares storage.
  Tensor slice(int64_t begin, int64_t end) const;
  // Row `index` of the leading dimension, that dimension dropped; shares storage.
  Tensor select(int64_t index) const;

  Tensor to(Device device) const;  // copy to another device (same dtype)
  Tensor to(DType dtype) const;    // converted copy on the same device
  Tensor clone() const;
  // Copies src's elements into this tensor's memory: numel must match; devices may differ; dtypes
  // may differ when both are on the host.
  void copy_from(const Tensor& src);

  // Host copy of the elements as fp32 (from any device and floating or integer dtype).
  std::vector<float> to_floats() const;
  std::string describe() const;  // "[2, 3] bf16 cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
};

}  // namespace wanbatch::core
