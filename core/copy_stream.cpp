#include "core/copy_stream.h"

#include "core/cuda/runtime.h"
#include "core/error.h"

namespace wanbatch::core {

CopyStream::CopyStream(const Context& ctx, int slots) : ctx_(ctx), slots_(slots) {
  WB_CHECK(slots >= 1, "a copy stream needs at least one slot, got ", slots);
  if (ctx.device().is_cuda()) queue_.reset(cuda::create_copy_queue(ctx, slots));
}

void CopyStream::QueueDeleter::operator()(cuda::CopyQueue* queue) const noexcept {
  cuda::destroy_copy_queue(queue);
}

void CopyStream::copy(const Tensor& src, Tensor& dst, int slot) {
  WB_CHECK(slot >= 0 && slot < slots_, "copy stream: slot ", slot, " of ", slots_);
  WB_CHECK(src.device().is_cpu() && dst.device() == ctx_.device(), "copy stream: copies ",
           src.device().str(), " → ", dst.device().str(), ", expected host → ",
           ctx_.device().str());
  WB_CHECK(src.nbytes() == dst.nbytes() && src.dtype() == dst.dtype(),
           "copy stream: ", src.describe(), " does not fit ", dst.describe());
  if (!queue_) {
    dst.copy_from(src.reshape(dst.shape()));
    return;
  }
  cuda::copy_after_compute(queue_.get(), dst.raw(), src.raw(), src.nbytes(), slot);
}

void CopyStream::join(int slot) {
  WB_CHECK(slot >= 0 && slot < slots_, "copy stream: slot ", slot, " of ", slots_);
  if (queue_) cuda::join_copy(queue_.get(), slot);
}

}  // namespace wanbatch::core
