// Where a model's per-block weights wait between uses, and how they reach the device just before
// their block runs (issue 9):
//   - sharded (--shard-weights): each rank keeps 1/N of every block on the device, and a block is
//     all-gathered over the shard communicator;
//   - offloaded (--offload blocks): the block (or, with sharding too, the rank's shard) waits in
//     pinned host memory and is copied to the device;
// into one of two alternating device buffers. While block i computes, block i+1 is already being
// gathered (and, with both, block i+2's shard copied), on the communicator's and a copy stream,
// so the transfers hide behind compute. On the CPU (MPI) every move is done at once, with the same
// results.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/copy_stream.h"
#include "core/tensor.h"
#include "parallel/comm.h"
#include "parallel/sharded_tensors.h"

namespace wanbatch::parallel {

class WeightStream {
 public:
  // One block's tensors of one dtype, by name, in a fixed order (the same for every block).
  using Group = std::vector<std::pair<std::string, core::Tensor>>;
  struct Placement {
    Comm* shard = nullptr;  // null or one rank: not sharded
    bool offload = false;   // keep the weights in pinned host memory
  };

  // Block b's groups, asked for once per block in order (so a caller that makes them on the fly,
  // e.g. merging LoRAs, holds one block at a time).
  using BlockSource = std::function<std::vector<Group>(int64_t block)>;

  // `blocks` blocks from `source`, group g converted to dtypes[g]. Every rank of placement.shard
  // builds its stream together and acquires the same blocks in the same order; the communicator
  // must outlive the stream.
  WeightStream(const core::Context& ctx, int64_t blocks, const BlockSource& source,
               const std::vector<core::DType>& dtypes, Placement placement);

  // Block `index`'s weights on the device, one flat buffer per group (cut with view()); valid
  // until block index + 2 is acquired. Starts moving the next block(s). Blocks acquired in order
  // (0, 1, 2, ...) overlap their transfers; any other order is correct but waits.
  const std::array<core::Tensor, 2>& acquire(int64_t index);
  core::Tensor view(const core::Tensor& buffer, size_t group, size_t index) const;

  int64_t blocks() const { return static_cast<int64_t>(shards_.size()); }
  // --offload model: false frees the device buffers and moves device shards to pinned host
  // memory; true undoes it.
  void set_resident(bool resident);
  // Device bytes of the shards (none when offloaded) and of the buffers (the two block buffers
  // and, sharded and offloaded, the two staging buffers); host bytes of the pinned shards.
  size_t device_shard_bytes() const;
  size_t buffer_bytes() const;
  size_t host_bytes() const;

 private:
  bool sharded() const { return placement_.shard != nullptr; }
  void make_buffers();
  void start_copy(int64_t index);
  void start_gather(int64_t index);
  size_t shard_bytes() const;  // this rank's shards, wherever they are

  Placement placement_;
  std::vector<std::vector<ShardedTensors>> shards_;  // [block][group]
  size_t groups_ = 0;
  std::array<core::Tensor, 2> buffers_[2];  // [slot][group]: whole blocks
  std::array<core::Tensor, 2> staging_[2];  // [slot][group]: offloaded shards on the device
  std::optional<core::CopyStream> copies_;
  core::Device device_;
  bool resident_ = true;
  int64_t copying_[2] = {-1, -1}, gathering_[2] = {-1, -1};  // block in flight per slot
};

}  // namespace wanbatch::parallel
