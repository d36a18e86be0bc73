// The execution context ops run in: the device, and on CUDA the stream and library handles
// (cuBLASLt, cuDNN) and a workspace, created once and reused by every op.
#pragma once

#include <memory>

#include "core/device.h"

namespace wanbatch::core {

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

 private:
  Device device_;
  std::shared_ptr<cuda::Resources> cuda_;
};

// Whether this build has CUDA support and how many devices the driver reports (0 without GPU).
bool cuda_built();
int cuda_device_count();

}  // namespace wanbatch::core
