// Stand-ins for core/cuda/runtime.cu in builds without CUDA: no device exists, and anything that
// would need one says so.
#include "core/context.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace wanbatch::core {
namespace cuda {
namespace {
[[noreturn]] void unavailable() {
  throw Error("this wanbatch was built without CUDA (configure with -DWANBATCH_CUDA=ON)");
}
}  // namespace

int device_count() { return 0; }
void* allocate(size_t, int) { unavailable(); }
void release(void*, int) {}
void copy(void*, Device, const void*, Device, size_t) { unavailable(); }
void convert(const void*, DType, void*, DType, size_t, int) { unavailable(); }
size_t current_device_bytes(int) { return 0; }
size_t peak_device_bytes(int) { return 0; }
void reset_peak_device_bytes(int) {}
size_t reserved_device_bytes(int) { return 0; }
size_t device_allocation_count(int) { return 0; }
void register_stream(int, CUstream_st*) {}
void unregister_stream(int, CUstream_st*) noexcept {}
void* allocate_pinned(size_t) { unavailable(); }
void release_pinned(void*) noexcept {}
struct CopyQueue {};
CopyQueue* create_copy_queue(const Context&, int) { unavailable(); }
void destroy_copy_queue(CopyQueue*) noexcept {}
void copy_after_compute(CopyQueue*, void*, const void*, size_t, int) { unavailable(); }
void join_copy(CopyQueue*, int) { unavailable(); }
struct Resources {};
}  // namespace cuda

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
Context Context::cuda(int) { cuda::unavailable(); }
void Context::synchronize() const {}

}  // namespace wanbatch::core
