// Copies from host memory into device buffers that run beside the ops (issue 9's --offload
// blocks): a copy starts once the ops queued before it are done (so it may overwrite a buffer they
// read), runs on a stream of its own, and the ops queued after join() wait for it. The next
// block's weights thus arrive while the current block computes. Sources should be pinned
// (Tensor::empty_pinned) for the copy to be asynchronous. On a CPU context a copy is done at once.
#pragma once

#include <memory>

#include "core/context.h"
#include "core/tensor.h"

namespace wanbatch::core {

namespace cuda {
struct CopyQueue;
}  // namespace cuda

class CopyStream {
 public:
  // `slots`: how many copies may be in flight, each named by its slot.
  CopyStream(const Context& ctx, int slots);

  // dst (on the context's device) ← src (host), both contiguous and the same size; starts after
  // the ops queued so far on the context. Replaces what `slot` tracked.
  void copy(const Tensor& src, Tensor& dst, int slot);
  // Ops queued from now on wait for the copy in `slot`.
  void join(int slot);

 private:
  struct QueueDeleter {
    void operator()(cuda::CopyQueue* queue) const noexcept;
  };
  Context ctx_;
  int slots_;
  std::unique_ptr<cuda::CopyQueue, QueueDeleter> queue_;  // CUDA contexts only
};

}  // namespace wanbatch::core
