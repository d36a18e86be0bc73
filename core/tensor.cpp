#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/cuda/runtime.h"
#include "core/error.h"

namespace wanbatch::core {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

Storage::Storage(void* data, size_t bytes, Device device, Release release)
    : data_(data), bytes_(bytes), device_(device), release_(std::move(release)) {}

Storage::~Storage() {
  if (release_) release_(data_);
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes, Device device) {
  if (device.is_cuda()) {
    void* p = cuda::allocate(bytes, device.index);
    int index = device.index;
    return std::make_shared<Storage>(p, bytes, device,
                                     [index](void* q) { cuda::release(q, index); });
  }
  constexpr size_t kAlignment = 64;
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (!p) throw make_error("out of host memory allocating ", bytes, " bytes");
  return std::make_shared<Storage>(p, bytes, device, [](void* q) { std::free(q); });
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t bytes, Device device,
                                         std::shared_ptr<const void> owner) {
  return std::make_shared<Storage>(data, bytes, device, [owner](void*) {});
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) WB_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return from_storage(Storage::allocate(bytes, device), 0, shape, dtype);
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  if (cuda::device_count() == 0) return empty(shape, dtype);
  for (int64_t d : shape) WB_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(cuda::allocate_pinned(bytes), bytes, Device::cpu(),
                                           [](void* p) { cuda::release_pinned(p); });
  return from_storage(std::move(storage), 0, shape, dtype);
}

Tensor Tensor::to_pinned() const {
  Tensor t = empty_pinned(shape_, dtype_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(Shape(shape), dtype, Device::cpu());
  std::memset(t.raw(), 0, t.nbytes());
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t offset, const Shape& shape,
                            DType dtype) {
  WB_CHECK(storage != nullptr, "tensor view of a null storage");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = storage->device();
  t.offset_ = offset;
  WB_CHECK(offset + t.nbytes() <= storage->bytes(), "tensor view ", shape_str(shape), " ",
           dtype_name(dtype), " at byte ", offset, " runs past its storage of ", storage->bytes(),
           " bytes");
  t.storage_ = std::move(storage);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  WB_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
           "from_vector: ", values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int j = i < 0 ? i + n : i;
  WB_CHECK(j >= 0 && j < n, "dimension ", i, " out of range for tensor ", describe());
  return shape_[j];
}

void* Tensor::raw() const {
  WB_CHECK(defined(), "use of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_;
}

template <typename T>
T* Tensor::data() const {
  constexpr bool is_half = std::is_same_v<T, uint16_t>;
  constexpr bool is_byte = std::is_same_v<T, uint8_t>;
  bool ok;
  if constexpr (is_half) {
    ok = dtype_ == DType::BF16 || dtype_ == DType::F16;
  } else if constexpr (is_byte) {
    ok = dtype_ == DType::F8E4M3;
  } else {
    ok = dtype_ == dtype_of<T>();
  }
  WB_CHECK(ok, "tensor ", describe(), " accessed with the wrong element type");
  return static_cast<T*>(raw());
}
template float* Tensor::data<float>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint16_t* Tensor::data<uint16_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;

Tensor Tensor::reshape(const Shape& shape) const {
  Shape resolved = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      WB_CHECK(infer < 0, "reshape ", shape_str(shape), ": more than one -1");
      infer = static_cast<int>(i);
    } else {
      WB_CHECK(resolved[i] >= 0, "reshape to ", shape_str(shape), ": negative dimension");
      known *= resolved[i];
    }
  }
  if (infer >= 0) {
    WB_CHECK(known > 0 && numel() % known == 0, "cannot reshape ", describe(), " to ",
             shape_str(shape));
    resolved[infer] = numel() / known;
  }
  WB_CHECK(shape_numel(resolved) == numel(), "cannot reshape ", describe(), " to ",
           shape_str(shape));
  return from_storage(storage_, offset_, resolved, dtype_);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  WB_CHECK(ndim() >= 1, "slice of a scalar tensor");
  WB_CHECK(0 <= begin && begin <= end && end <= shape_[0], "slice [", begin, ", ", end,
           ") out of range for ", describe());
  Shape shape = shape_;
  shape[0] = end - begin;
  const size_t row_bytes =
      static_cast<size_t>(shape_numel(Shape(shape_.begin() + 1, shape_.end()))) *
      dtype_size(dtype_);
  return from_storage(storage_, offset_ + static_cast<size_t>(begin) * row_bytes, shape, dtype_);
}

Tensor Tensor::select(int64_t index) const {
  Tensor row = slice(index, index + 1);
  return row.reshape(Shape(shape_.begin() + 1, shape_.end()));
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype, device_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::clone() const { return to(dtype_); }

void Tensor::copy_from(const Tensor& src) {
  WB_CHECK(src.numel() == numel(), "copy of ", src.describe(), " into ", describe(),
           ": element counts differ");
  if (numel() == 0) return;
  if (src.dtype_ == dtype_) {
    if (device_.is_cpu() && src.device_.is_cpu()) {
      std::memmove(raw(), src.raw(), nbytes());
    } else {
      cuda::copy(raw(), device_, src.raw(), src.device_, nbytes());
    }
    return;
  }
  if (device_.is_cpu() && src.device_.is_cpu()) {
    convert_elements(src.raw(), src.dtype_, raw(), dtype_, static_cast<size_t>(numel()));
  } else if (device_ == src.device_) {
    cuda::convert(src.raw(), src.dtype_, raw(), dtype_, static_cast<size_t>(numel()),
                  device_.index);
  } else {
    copy_from(src.to(device_));  // move first, convert on the destination device
  }
}

std::vector<float> Tensor::to_floats() const {
  const Tensor host = device_.is_cpu() ? *this : to(Device::cpu());
  std::vector<float> values(static_cast<size_t>(numel()));
  convert_elements(host.raw(), dtype_, values.data(), DType::F32, values.size());
  return values;
}

std::string Tensor::describe() const {
  if (!defined()) return "<undefined tensor>";
  return shape_str(shape_) + " " + std::string(dtype_name(dtype_)) + " " + device_.str();
}

}  // namespace wanbatch::core
