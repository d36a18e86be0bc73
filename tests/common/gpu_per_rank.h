// Whether every rank of `comm` has a GPU of its own (at least as many visible GPUs as ranks on
// each), decided together so that all ranks run or all skip a GPU test. Header-only; for the MPI
// tests.
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "parallel/comm.h"

namespace wanbatch::testing {

inline bool every_rank_has_a_gpu(parallel::Comm& comm) {
  core::Tensor short_of_gpus = core::Tensor::from_vector(
      std::vector<int64_t>{core::cuda_device_count() >= comm.size() ? 0 : 1}, {1});
  comm.all_reduce_sum(short_of_gpus);
  return short_of_gpus.data<int64_t>()[0] == 0;
}

}  // namespace wanbatch::testing
