#include "parallel/weight_stream.h"

#include "core/error.h"

namespace wanbatch::parallel {

WeightStream::WeightStream(const core::Context& ctx, int64_t blocks, const BlockSource& source,
                           const std::vector<core::DType>& dtypes, Placement placement)
    : placement_(placement), groups_(dtypes.size()), device_(ctx.device()) {
  WB_CHECK(blocks > 0 && groups_ >= 1 && groups_ <= 2,
           "weight stream: needs blocks and 1 or 2 groups");
  if (placement_.shard && placement_.shard->size() == 1) placement_.shard = nullptr;
  WB_CHECK(sharded() || placement_.offload, "weight stream: neither sharded nor offloaded");
  const int rank = sharded() ? placement_.shard->rank() : 0;
  const int ranks = sharded() ? placement_.shard->size() : 1;
  for (int64_t b = 0; b < blocks; ++b) {
    const std::vector<Group> block = source(b);
    WB_CHECK(block.size() == groups_, "weight stream: a block has ", block.size(), " groups, not ",
             groups_);
    auto& shards = shards_.emplace_back();
    for (size_t g = 0; g < groups_; ++g) {
      shards.emplace_back(block[g], dtypes[g], rank, ranks, ctx.device(), placement_.offload);
    }
  }
  make_buffers();
  if (placement_.offload) copies_.emplace(ctx, 2);
}

void WeightStream::make_buffers() {
  for (int slot = 0; slot < 2; ++slot) {
    for (size_t g = 0; g < groups_; ++g) {
      buffers_[slot][g] = shards_.front()[g].make_buffer();
      if (sharded() && placement_.offload) {
        const core::Tensor& shard = shards_.front()[g].shard();
        staging_[slot][g] = core::Tensor::empty(shard.shape(), shard.dtype(), device_);
      }
    }
  }
}

void WeightStream::set_resident(bool resident) {
  if (resident == resident_) return;
  if (!placement_.offload) {
    for (auto& block : shards_) {
      for (ShardedTensors& shard : block) shard.place_on_host(!resident);
    }
  }
  if (resident) {
    make_buffers();
  } else {
    for (int slot = 0; slot < 2; ++slot) {
      for (size_t g = 0; g < groups_; ++g) buffers_[slot][g] = staging_[slot][g] = core::Tensor();
    }
  }
  copying_[0] = copying_[1] = gathering_[0] = gathering_[1] = -1;
  resident_ = resident;
}

// The shards (pinned host) → the device: into the slot's staging buffers when sharded, else
// straight into its block buffers.
void WeightStream::start_copy(int64_t index) {
  const int slot = static_cast<int>(index % 2);
  for (size_t g = 0; g < groups_; ++g) {
    core::Tensor& dst = sharded() ? staging_[slot][g] : buffers_[slot][g];
    copies_->copy(shards_[static_cast<size_t>(index)][g].shard(), dst, slot);
  }
  copying_[slot] = index;
}

void WeightStream::start_gather(int64_t index) {
  const int slot = static_cast<int>(index % 2);
  if (placement_.offload) {
    if (copying_[slot] != index) start_copy(index);
    // The copy was started a block earlier, so this rarely waits.
    copies_->join(slot);
  }
  for (size_t g = 0; g < groups_; ++g) {
    const core::Tensor& src =
        placement_.offload ? staging_[slot][g] : shards_[static_cast<size_t>(index)][g].shard();
    placement_.shard->all_gather_start(src, buffers_[slot][g], slot);
  }
  gathering_[slot] = index;
}

const std::array<core::Tensor, 2>& WeightStream::acquire(int64_t index) {
  WB_CHECK(index >= 0 && index < blocks(), "weight stream: block ", index, " of ", blocks());
  WB_CHECK(resident_, "weight stream: block ", index, " acquired while offloaded");
  const int slot = static_cast<int>(index % 2);
  if (sharded()) {
    if (gathering_[slot] != index) start_gather(index);
    placement_.shard->all_gather_join(slot);
    gathering_[slot] = -1;
    if (index + 1 < blocks()) start_gather(index + 1);
    // Block index + 2's shard goes into the staging buffer block index's gather just read.
    if (placement_.offload && index + 2 < blocks()) start_copy(index + 2);
  } else {
    if (copying_[slot] != index) start_copy(index);
    copies_->join(slot);
    copying_[slot] = -1;
    if (index + 1 < blocks()) start_copy(index + 1);
  }
  return buffers_[slot];
}

core::Tensor WeightStream::view(const core::Tensor& buffer, size_t group, size_t index) const {
  return shards_.front().at(group).view(buffer, index);
}

size_t WeightStream::device_shard_bytes() const {
  return resident_ && !placement_.offload ? shard_bytes() : 0;
}

size_t WeightStream::buffer_bytes() const {
  if (!resident_) return 0;
  size_t bytes = 0;
  for (int slot = 0; slot < 2; ++slot) {
    for (size_t g = 0; g < groups_; ++g) {
      bytes += buffers_[slot][g].nbytes();
      if (staging_[slot][g].defined()) bytes += staging_[slot][g].nbytes();
    }
  }
  return bytes;
}

size_t WeightStream::host_bytes() const {
  return placement_.offload || !resident_ ? shard_bytes() : 0;
}

size_t WeightStream::shard_bytes() const {
  size_t bytes = 0;
  for (const auto& block : shards_) {
    for (const ShardedTensors& shard : block) bytes += shard.shard_bytes();
  }
  return bytes;
}

}  // namespace wanbatch::parallel
