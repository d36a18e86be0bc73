// The CUDA runtime services core needs (memory, copies, conversions, device count), callable from
// plain C++. Implemented in core/cuda/runtime.cu, or by core/cuda_disabled.cpp in builds without
// CUDA, where each of them throws a clear error.
#pragma once

#include <cstddef>

#include "core/device.h"
#include "core/dtype.h"

namespace wanbatch::core::cuda {

int device_count();  // 0 when the driver reports no device (never throws)
void* allocate(size_t bytes, int device);
void release(void* pointer, int device);
// Synchronous copy between any two devices (host ↔ device, device ↔ device).
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Element conversion between dtypes on one device (same rules as core::convert_elements).
void convert(const void* src, DType from, void* dst, DType to, size_t count, int device);

}  // namespace wanbatch::core::cuda
