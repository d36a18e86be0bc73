// Check macros for CUDA runtime, cuBLAS/cuBLASLt and cuDNN calls: a failed call throws
// wanbatch::Error naming the file, the line, the call as written and the library's own error
// string, so a failure on the GPU machine can be read off the one line `main` prints.
// (NCCL_CHECK lives with the parallel layer, which also knows the rank.)
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "core/error.h"

namespace wanbatch::core::cuda::detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  // Reported now, so clear it: a non-sticky error would otherwise resurface at the next
  // cudaGetLastError (a later kernel launch check) and be blamed on the wrong call.
  cudaGetLastError();
  throw make_error(file, ":", line, ": ", call, " failed: ", cudaGetErrorName(status), " (",
                   cudaGetErrorString(status), ")");
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  throw make_error(file, ":", line, ": ", call, " failed: ", cublasGetStatusName(status), " (",
                   cublasGetStatusString(status), ")");
}

[[noreturn]] inline void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file,
                                           int line) {
  throw make_error(file, ":", line, ": ", call, " failed: ", cudnnGetErrorString(status));
}

}  // namespace wanbatch::core::cuda::detail

// The status variable has an unusual name so that `call` may use any name of its own.
#define CUDA_CHECK(call)                                                                 \
  do {                                                                                   \
    const cudaError_t wb_cuda_status_ = (call);                                          \
    if (wb_cuda_status_ != cudaSuccess) {                                                \
      ::wanbatch::core::cuda::detail::throw_cuda_error(wb_cuda_status_, #call, __FILE__, \
                                                       __LINE__);                        \
    }                                                                                    \
  } while (0)

#define CUBLAS_CHECK(call)                                                                   \
  do {                                                                                       \
    const cublasStatus_t wb_cublas_status_ = (call);                                         \
    if (wb_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                        \
      ::wanbatch::core::cuda::detail::throw_cublas_error(wb_cublas_status_, #call, __FILE__, \
                                                         __LINE__);                          \
    }                                                                                        \
  } while (0)

#define CUDNN_CHECK(call)                                                                  \
  do {                                                                                     \
    const cudnnStatus_t wb_cudnn_status_ = (call);                                         \
    if (wb_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                        \
      ::wanbatch::core::cuda::detail::throw_cudnn_error(wb_cudnn_status_, #call, __FILE__, \
                                                        __LINE__);                         \
    }                                                                                      \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once, with the kernel's name.
// Errors inside the kernel surface later, at the next synchronizing call.
#define CUDA_CHECK_LAUNCH(kernel_name)                                                            \
  do {                                                                                            \
    const cudaError_t wb_cuda_status_ = cudaGetLastError();                                       \
    if (wb_cuda_status_ != cudaSuccess) {                                                         \
      ::wanbatch::core::cuda::detail::throw_cuda_error(wb_cuda_status_, "launch of " kernel_name, \
                                                       __FILE__, __LINE__);                       \
    }                                                                                             \
  } while (0)
