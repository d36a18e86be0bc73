#include "parallel/rank_device.h"

#include "core/error.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::parallel {

core::Context rank_device_context(const std::string& device) {
  WB_CHECK(device == "auto" || device == "cuda" || device == "cpu", "--device '", device,
           "': expected auto, cuda or cpu");
  const int gpus = core::cuda_device_count();
  if (device == "cpu" || (device == "auto" && gpus == 0)) return core::Context::cpu();
  WB_CHECK(gpus > 0, "--device cuda: ",
           core::cuda_built() ? "no GPU is visible" : "this wanbatch was built without CUDA");
  return core::Context::cuda(node_local_rank() % gpus);
}

}  // namespace wanbatch::parallel
