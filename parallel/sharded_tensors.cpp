#include "parallel/sharded_tensors.h"

#include <algorithm>

#include "core/error.h"

namespace wanbatch::parallel {

ShardedTensors::ShardedTensors(const std::vector<std::pair<std::string, core::Tensor>>& tensors,
                               core::DType dtype, int rank, int ranks, core::Device device,
                               bool on_host)
    : dtype_(dtype), device_(device) {
  WB_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, "sharded weights: rank ", rank, " of ", ranks);
  int64_t total = 0;
  for (const auto& [name, t] : tensors) {
    entries_.push_back({name, t.shape(), total});
    total += t.numel();
  }
  padded_ = (total + ranks - 1) / ranks * ranks;
  const int64_t per_rank = padded_ / ranks;
  const int64_t begin = per_rank * rank, end = begin + per_rank;
  core::Tensor shard = core::Tensor::zeros({per_rank}, dtype, core::Device::cpu());
  // Each source tensor's overlap with [begin, end), read as a flat range of its elements.
  for (size_t i = 0; i < tensors.size(); ++i) {
    const core::Tensor& t = tensors[i].second;
    const int64_t a = std::max(begin, entries_[i].offset);
    const int64_t b = std::min(end, entries_[i].offset + t.numel());
    if (a >= b) continue;
    const core::Tensor flat = t.reshape({t.numel()});
    shard.slice(a - begin, b - begin)
        .copy_from(flat.slice(a - entries_[i].offset, b - entries_[i].offset));
  }
  shard_ = shard;
  place_on_host(on_host);
}

void ShardedTensors::place_on_host(bool on_host) {
  if (on_host) {
    shard_ = shard_.to_pinned();
  } else if (shard_.device() != device_) {
    shard_ = shard_.to(device_);
  }
}

core::Tensor ShardedTensors::make_buffer() const {
  return core::Tensor::empty({padded_}, dtype_, device_);
}

void ShardedTensors::gather(Comm& comm, core::Tensor& buffer) const {
  WB_CHECK(comm.size() * shard_.numel() == padded_, "sharded weights: gathered over ", comm.size(),
           " ranks, made for ", padded_ / std::max<int64_t>(shard_.numel(), 1));
  comm.all_gather(shard_, buffer);
}

core::Tensor ShardedTensors::view(const core::Tensor& buffer, size_t index) const {
  const Entry& e = entries_.at(index);
  return buffer.slice(e.offset, e.offset + core::shape_numel(e.shape)).reshape(e.shape);
}

}  // namespace wanbatch::parallel
