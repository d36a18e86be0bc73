// The execution context ops run in: the device, and on CUDA the stream and library handles
// (cuBLASLt, cuDNN) and a workspace, created once and reused by every op.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace wanbatch::core {

class OpProfiler;

namespace cuda {
struct Resources;  // defined in core/cuda/resources.h; only CUDA code looks inside
}

class Context {
 public:
  static Context cpu();
  // Creates a stream and library handles on `device`; throws if CUDA is unavailable.
  static Context cuda(int device = 0);

  Device device() const { return device_; }
  cuda::Resources* cuda_resources() const { return cuda_.get(); }
  // Waits until all work queued on this context has finished (no-op on CPU).
  void synchronize() const;

  // Benchmarks attach a profiler (core/profiler.h) to time every op; null: none.
  OpProfiler* profiler() const { return profiler_; }
  void set_profiler(OpProfiler* profiler) { profiler_ = profiler; }

 private:
  Device device_;
  std::shared_ptr<cuda::Resources> cuda_;
  OpProfiler* profiler_ = nullptr;
};

// Device memory held in tensors on the context's device, now and at its peak since the last
// reset (0 on the CPU): what benchmarks and memory reports print.
size_t device_bytes_in_use(const Context& ctx);
size_t device_peak_bytes(const Context& ctx);
void reset_device_peak_bytes(const Context& ctx);

// Whether this build has CUDA support and how many devices the driver reports (0 without GPU).
bool cuda_built();
int cuda_device_count();

}  // namespace wanbatch::core
