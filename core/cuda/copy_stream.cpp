// Pinned host memory and the copy stream of core::CopyStream (see core/cuda/runtime.h).
#include <cuda_runtime_api.h>

#include <vector>

#include "core/context.h"
#include "core/cuda/check.h"
#include "core/cuda/resources.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace wanbatch::core::cuda {

void* allocate_pinned(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* pointer = nullptr;
  const cudaError_t status = cudaHostAlloc(&pointer, bytes, cudaHostAllocPortable);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw make_error("cannot allocate ", bytes,
                     " bytes of pinned host memory: ", cudaGetErrorString(status));
  }
  return pointer;
}

void release_pinned(void* pointer) noexcept {
  if (pointer != nullptr) cudaFreeHost(pointer);
  cudaGetLastError();
}

struct CopyQueue {
  int device = 0;
  cudaStream_t compute = nullptr;  // the context's stream (the context outlives the queue)
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr;    // on the compute stream: what the copy must wait for
  std::vector<cudaEvent_t> done;  // per slot, on the copy stream
};

CopyQueue* create_copy_queue(const Context& ctx, int slots) {
  const Resources& r = resources_of(ctx, "copy stream");
  auto queue = std::make_unique<CopyQueue>();
  queue->device = r.device();
  queue->compute = r.stream();
  DeviceGuard guard(r.device());
  try {
    CUDA_CHECK(cudaStreamCreateWithFlags(&queue->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&queue->ready, cudaEventDisableTiming));
    queue->done.assign(static_cast<size_t>(slots), nullptr);
    for (cudaEvent_t& e : queue->done) {
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
  } catch (...) {
    destroy_copy_queue(queue.release());
    throw;
  }
  return queue.release();
}

void destroy_copy_queue(CopyQueue* queue) noexcept {
  if (queue == nullptr) return;
  with_device_noexcept(queue->device, [&] {
    if (queue->stream != nullptr) cudaStreamSynchronize(queue->stream);
    for (cudaEvent_t e : queue->done) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (queue->ready != nullptr) cudaEventDestroy(queue->ready);
    if (queue->stream != nullptr) cudaStreamDestroy(queue->stream);
  });
  delete queue;
}

void copy_after_compute(CopyQueue* queue, void* dst, const void* src, size_t bytes, int slot) {
  DeviceGuard guard(queue->device);
  CUDA_CHECK(cudaEventRecord(queue->ready, queue->compute));
  CUDA_CHECK(cudaStreamWaitEvent(queue->stream, queue->ready, 0));
  if (bytes > 0) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, queue->stream));
  }
  CUDA_CHECK(cudaEventRecord(queue->done.at(static_cast<size_t>(slot)), queue->stream));
}

void join_copy(CopyQueue* queue, int slot) {
  DeviceGuard guard(queue->device);
  CUDA_CHECK(cudaStreamWaitEvent(queue->compute, queue->done.at(static_cast<size_t>(slot)), 0));
}

}  // namespace wanbatch::core::cuda
