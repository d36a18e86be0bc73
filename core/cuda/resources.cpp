// Per-device CUDA resources, the device guard, and the CUDA side of core::Context (creation,
// synchronization, device discovery). Compiled only in builds with CUDA; core/cuda_disabled.cpp
// stands in otherwise.
#include "core/cuda/resources.h"

#include "core/context.h"
#include "core/cuda/check.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace wanbatch::core {
namespace cuda {

DeviceGuard::DeviceGuard(int device) : device_(device) {
  CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device_) CUDA_CHECK(cudaSetDevice(device_));
}

DeviceGuard::~DeviceGuard() {
  if (previous_ != device_) cudaSetDevice(previous_);  // best effort: destructors do not throw
}

const Resources& resources_of(const Context& ctx, const char* op) {
  const Resources* resources = ctx.cuda_resources();
  WB_CHECK(resources != nullptr, op, " on context ", ctx.device().str(),
           ", which has no CUDA stream (create it with Context::cuda)");
  return *resources;
}

void Resources::StreamDeleter::operator()(cudaStream_t stream) const noexcept {
  with_device_noexcept(device, [&] { cudaStreamDestroy(stream); });
}

void Resources::CublasLtDeleter::operator()(cublasLtHandle_t handle) const noexcept {
  with_device_noexcept(device, [&] { cublasLtDestroy(handle); });
}

void Resources::CudnnDeleter::operator()(cudnnHandle_t handle) const noexcept {
  with_device_noexcept(device, [&] { cudnnDestroy(handle); });
}

void Resources::DeviceMemoryDeleter::operator()(void* pointer) const noexcept {
  with_device_noexcept(device, [&] { cudaFree(pointer); });
}

Resources::Resources(int device) : device_(device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));

  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = std::unique_ptr<CUstream_st, StreamDeleter>(stream, StreamDeleter{device});

  // cuBLASLt takes the stream per call (cublasLtMatmul), so only cuDNN is bound to it here.
  cublasLtHandle_t lt = nullptr;
  CUBLAS_CHECK(cublasLtCreate(&lt));
  cublaslt_ = std::unique_ptr<cublasLtContext, CublasLtDeleter>(lt, CublasLtDeleter{device});

  cudnnHandle_t dnn = nullptr;
  CUDNN_CHECK(cudnnCreate(&dnn));
  cudnn_ = std::unique_ptr<cudnnContext, CudnnDeleter>(dnn, CudnnDeleter{device});
  CUDNN_CHECK(cudnnSetStream(dnn, stream));

  void* workspace = nullptr;
  const cudaError_t status = cudaMalloc(&workspace, kWorkspaceBytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw make_error("cuda:", device, ": cannot allocate the ", kWorkspaceBytes >> 20,
                     " MiB library workspace: ", cudaGetErrorString(status));
  }
  workspace_ = std::unique_ptr<void, DeviceMemoryDeleter>(workspace, DeviceMemoryDeleter{device});
  // Last, so that a failed construction leaves nothing registered: device memory is ordered on
  // this stream while it is the device's only one (runtime.cu).
  register_stream(device, stream);
}

Resources::~Resources() {
  // Let queued work finish before its handles and workspace go away.
  if (stream_) with_device_noexcept(device_, [&] { cudaStreamSynchronize(stream_.get()); });
  // After the synchronization: no memory ordered on the stream can still be in use.
  if (stream_) unregister_stream(device_, stream_.get());
}

}  // namespace cuda

bool cuda_built() { return true; }

int cuda_device_count() { return cuda::device_count(); }

Context Context::cuda(int device) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear it: a machine without a GPU is not an error state to carry on
    throw make_error("Context::cuda(", device, "): no usable CUDA device (",
                     cudaGetErrorString(status), ")");
  }
  if (count == 0) throw make_error("Context::cuda(", device, "): no CUDA device is visible");
  WB_CHECK(device >= 0 && device < count, "Context::cuda(", device, "): no such device; ", count,
           " CUDA device(s) are visible (indices 0 to ", count - 1, ")");
  Context context;
  context.device_ = Device::cuda(device);
  context.cuda_ = std::make_shared<cuda::Resources>(device);
  return context;
}

void Context::synchronize() const {
  if (!cuda_) return;
  // Also where errors of earlier asynchronous kernels on this stream surface.
  CUDA_CHECK(cudaStreamSynchronize(cuda_->stream()));
}

}  // namespace wanbatch::core
