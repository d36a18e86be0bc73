// The CUDA runtime services core needs (memory, copies, conversions, device count), callable from
// plain C++. Implemented in core/cuda/runtime.cu, or by core/cuda_disabled.cpp in builds without
// CUDA, where each of them throws a clear error.
#pragma once

#include <cstddef>

#include "core/device.h"
#include "core/dtype.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; plain C++ callers need not see CUDA headers

namespace wanbatch::core {
class Context;
}  // namespace wanbatch::core

namespace wanbatch::core::cuda {

int device_count();  // 0 when the driver reports no device (never throws)

// Device memory comes from the device's stream-ordered memory pool (cudaMallocAsync), which keeps
// freed memory for reuse instead of returning it to the driver: after the first denoising step,
// allocating and freeing the same tensors costs no cudaMalloc/cudaFree round trip and no device
// synchronization. How the stream ordering stays safe is explained in runtime.cu.
void* allocate(size_t bytes, int device);
void release(void* pointer, int device);  // never throws

// Bytes of pool memory in use on `device` now, and the most in use since the process started or
// the last reset_peak_device_bytes (memory in tensors; not the pool's cache, not library
// workspaces). 0 without CUDA.
size_t current_device_bytes(int device);
size_t peak_device_bytes(int device);
void reset_peak_device_bytes(int device);
// Bytes the pool holds from the driver on `device` (in tensors, or cached for reuse): it grows
// only when the cache has no block to fit, which tests use to show that a denoising step after the
// first allocates nothing new. 0 without CUDA.
size_t reserved_device_bytes(int device);
// How many device tensors allocate() has handed out on `device` since the process started (0
// without CUDA): a step that allocates nothing leaves it unchanged.
size_t device_allocation_count(int device);

// The streams ops run on (each Context's, registered by core/cuda/resources.cpp while it exists):
// with exactly one on a device, allocation and release are ordered on it without synchronizing.
// Work queued on any other stream (a communication or prefetch stream) must therefore be joined
// back into the Context's stream (cudaStreamWaitEvent) before the tensors it uses are released,
// as parallel/nccl_comm.cpp does; a stream that cannot promise that registers itself here, which
// makes every release synchronize the device instead.
void register_stream(int device, CUstream_st* stream);
void unregister_stream(int device, CUstream_st* stream) noexcept;
// Synchronous copy between any two devices (host ↔ device, device ↔ device).
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Element conversion between dtypes on one device (same rules as core::convert_elements).
void convert(const void* src, DType from, void* dst, DType to, size_t count, int device);

// Page-locked host memory (cudaHostAlloc, portable to every device): what asynchronous
// host-to-device copies need to run beside the ops at full bus speed. 64-byte aligned.
void* allocate_pinned(size_t bytes);
void release_pinned(void* pointer) noexcept;

// The stream and events behind core::CopyStream (core/copy_stream.h), in core/cuda/copy_stream.cpp.
struct CopyQueue;
CopyQueue* create_copy_queue(const Context& ctx, int slots);
void destroy_copy_queue(CopyQueue* queue) noexcept;
// dst (device) ← src (pinned host) on the queue's stream, after the work queued on the context's
// stream so far; the copy's completion is recorded in `slot`.
void copy_after_compute(CopyQueue* queue, void* dst, const void* src, size_t bytes, int slot);
// The context's stream waits for the copy recorded in `slot`.
void join_copy(CopyQueue* queue, int slot);

}  // namespace wanbatch::core::cuda
