// What one CUDA device needs to run ops, created once per Context and shared by its copies: a
// stream, cuBLASLt and cuDNN handles bound to it, and a workspace for their algorithms. Also the
// small pieces every file of the CUDA backend shares (device selection, launch sizing, the
// stream-ordered dtype conversion). Only CUDA code includes this header; models never do.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/dtype.h"

namespace wanbatch::core {
class Context;
}  // namespace wanbatch::core

namespace wanbatch::core::cuda {

// Makes `device` current for a scope and restores the previous device after, so that a call on
// one device never leaves another thread-visible default behind.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  int device_ = 0;
};

struct Resources {
 public:
  static constexpr size_t kWorkspaceBytes = size_t{64} << 20;  // cuBLASLt/cuDNN algorithm scratch

  // Creates everything on `device` (which must exist); throws wanbatch::Error on failure.
  explicit Resources(int device);
  ~Resources();
  Resources(const Resources&) = delete;
  Resources& operator=(const Resources&) = delete;

  int device() const { return device_; }
  int sm_count() const { return sm_count_; }
  // Non-blocking: it does not wait for the legacy default stream, so ops never serialize behind
  // unrelated work. Synchronous copies (runtime.h) synchronize the device instead.
  cudaStream_t stream() const { return stream_.get(); }
  cublasLtHandle_t cublaslt() const { return cublaslt_.get(); }
  cudnnHandle_t cudnn() const { return cudnn_.get(); }
  void* workspace() const { return workspace_.get(); }
  size_t workspace_bytes() const { return kWorkspaceBytes; }

 private:
  // Deleters run in destructors: they never throw and report nothing (the process may be
  // tearing the CUDA runtime down already).
  struct StreamDeleter {
    int device;
    void operator()(cudaStream_t stream) const noexcept;
  };
  struct CublasLtDeleter {
    int device;
    void operator()(cublasLtHandle_t handle) const noexcept;
  };
  struct CudnnDeleter {
    int device;
    void operator()(cudnnHandle_t handle) const noexcept;
  };
  struct DeviceMemoryDeleter {
    int device;
    void operator()(void* pointer) const noexcept;
  };

  int device_;
  int sm_count_ = 0;
  // Declared in creation order, so destruction runs workspace → cuDNN → cuBLASLt → stream.
  std::unique_ptr<CUstream_st, StreamDeleter> stream_;
  std::unique_ptr<cublasLtContext, CublasLtDeleter> cublaslt_;
  std::unique_ptr<cudnnContext, CudnnDeleter> cudnn_;
  std::unique_ptr<void, DeviceMemoryDeleter> workspace_;
};

// ctx's resources, for the CUDA op `op`; throws naming it when ctx is a context without a CUDA
// stream (core/ops.cpp dispatches only CUDA contexts here, so this guards direct calls).
const Resources& resources_of(const Context& ctx, const char* op);

// Runs `f` with `device` current and restores the previous device, ignoring every CUDA error: for
// destructors and release paths, which must not throw (the runtime may already be shutting down,
// and a broken context is reported by the next checked call anyway).
template <typename F>
void with_device_noexcept(int device, F&& f) noexcept {
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
  if (previous != device) cudaSetDevice(device);
  f();
  if (previous >= 0 && previous != device) cudaSetDevice(previous);
  cudaGetLastError();  // leave no non-sticky error behind for an unrelated later check
}

// Launch shape of the grid-stride kernels: 256 threads, and enough blocks to fill every SM a few
// times over (more only adds scheduling overhead; the loop covers the rest).
constexpr int kThreadsPerBlock = 256;
constexpr int kBlocksPerSm = 16;
inline unsigned grid_blocks(int64_t count, int sm_count) {
  const int64_t needed = (count + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int64_t cap = static_cast<int64_t>(std::max(sm_count, 1)) * kBlocksPerSm;
  return static_cast<unsigned>(std::clamp<int64_t>(needed, 1, cap));
}

// Converts `count` elements on the current device, queued on `stream`, with exactly the results
// of core::convert_elements. Defined in runtime.cu; the cast op uses it too.
void convert_async(const void* src, DType from, void* dst, DType to, size_t count, int sm_count,
                   cudaStream_t stream);

}  // namespace wanbatch::core::cuda
