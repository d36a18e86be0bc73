// Sharded weights (DESIGN.md "Parallelism", issue 9): a group of tensors (one DiT block's
// parameters of one dtype) laid end to end in one flat buffer that is split evenly over the ranks
// of a communicator. Each rank keeps only its slice — copied from the source tensors' matching
// element ranges, so from memory-mapped checkpoints it reads only its own bytes — and the whole
// buffer is all-gathered before the tensors are used. Over MPI for host tensors, NCCL for device
// tensors (the Comm the caller gives).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "parallel/comm.h"

namespace wanbatch::parallel {

class ShardedTensors {
 public:
  ShardedTensors() = default;
  // Keeps this rank's slice of `tensors` (in this order) converted to `dtype` on `device`, or in
  // pinned host memory with `on_host` (--offload blocks; buffers are still made on `device`). No
  // communication: every rank computes the same layout.
  ShardedTensors(const std::vector<std::pair<std::string, core::Tensor>>& tensors,
                 core::DType dtype, int rank, int ranks, core::Device device, bool on_host = false);

  // The flat buffer gather() fills: [padded] elements of the dtype.
  core::Tensor make_buffer() const;
  // This rank's slice: [padded / ranks] elements, on the device or in pinned host memory.
  const core::Tensor& shard() const { return shard_; }
  // Moves the slice to pinned host memory (true) or to the device (false).
  void place_on_host(bool on_host);
  // Collective over `comm` (the ranks the slices were made for, in the same order).
  void gather(Comm& comm, core::Tensor& buffer) const;
  // Tensor `index` (the constructor's order) as a view into a gathered buffer.
  core::Tensor view(const core::Tensor& buffer, size_t index) const;
  size_t size() const { return entries_.size(); }
  const std::string& name(size_t index) const { return entries_.at(index).name; }
  // This rank's resident bytes.
  size_t shard_bytes() const { return shard_.defined() ? shard_.nbytes() : 0; }

 private:
  struct Entry {
    std::string name;
    core::Shape shape;
    int64_t offset = 0;  // elements into the flat buffer
  };
  std::vector<Entry> entries_;
  core::DType dtype_ = core::DType::F32;
  core::Device device_;
  int64_t padded_ = 0;  // total elements rounded up to a multiple of the rank count
  core::Tensor shard_;  // [padded / ranks]
};

}  // namespace wanbatch::parallel
