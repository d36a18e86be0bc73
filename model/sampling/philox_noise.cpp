// Philox noise on the host. Compiled with -ffp-contract=off (model/CMakeLists.txt): a fused
// multiply-add rounds once where the mapping's contract rounds twice, and would change bits.
#include "model/sampling/philox_noise.h"

#include <limits>

#include "core/error.h"

namespace wanbatch::model::sampling {

void philox_normal(uint64_t seed, uint64_t first_index, float* out, size_t count) {
  if (count == 0) return;
  WB_CHECK(count - 1 <= std::numeric_limits<uint64_t>::max() - first_index,
           "philox_normal: index range [", first_index, ", +", count, ") passes 2^64 - 1");
  const uint64_t last = first_index + (count - 1);
  // Block by block; the first and last blocks of a slice that does not start or end on a
  // multiple of 4 are computed whole and only their lanes inside the slice kept.
  for (uint64_t block = first_index / 4; block <= last / 4; ++block) {
    double n[4];
    philox_normal_block(seed, block, n);
    for (uint64_t lane = 0; lane < 4; ++lane) {
      const uint64_t i = block * 4 + lane;
      if (i >= first_index && i <= last) out[i - first_index] = static_cast<float>(n[lane]);
    }
  }
}

core::Tensor initial_noise(uint64_t seed, const core::Shape& shape) {
  core::Tensor noise = core::Tensor::empty(shape, core::DType::F32);
  philox_normal(seed, 0, noise.data<float>(), static_cast<size_t>(noise.numel()));
  return noise;
}

}  // namespace wanbatch::model::sampling
