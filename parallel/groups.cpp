#include "parallel/groups.h"

#include <string>

#include "core/error.h"
#ifdef WANBATCH_WITH_CUDA
#include "parallel/nccl_comm.h"
#endif

namespace wanbatch::parallel {
namespace {

// The NCCL twin of an MPI group for device tensors; the MPI group stays as its bootstrap.
void on_device(std::unique_ptr<Comm>& group, std::unique_ptr<Comm>& bootstrap,
               const core::Context& ctx) {
  if (!ctx.device().is_cuda() || group->size() == 1) return;
#ifdef WANBATCH_WITH_CUDA
  bootstrap = std::move(group);
  group = make_nccl_comm(*bootstrap, ctx);
#else
  (void)bootstrap;
  throw Error("a GPU context in a build without CUDA");
#endif
}

}  // namespace

Groups Groups::make(Comm& world, int sp, bool cfg_parallel, int num_heads,
                    const core::Context& ctx) {
  Groups g;
  g.topology = Topology::make(world.size(), world.rank(), sp, cfg_parallel, num_heads);
  const SplitKey sp_key = g.topology.sp_group();
  const SplitKey cfg_key = g.topology.cfg_group();
  const SplitKey item_key = g.topology.item_group();
  g.sp = world.split(sp_key.color, sp_key.key);
  g.cfg = world.split(cfg_key.color, cfg_key.key);
  g.item = world.split(item_key.color, item_key.key);
  on_device(g.sp, g.sp_bootstrap, ctx);
  on_device(g.cfg, g.cfg_bootstrap, ctx);
  return g;
}

std::string Groups::describe() const {
  return "dp " + std::to_string(topology.dp) + " × cfg " + std::to_string(topology.cfg) + " × sp " +
         std::to_string(topology.sp);
}

}  // namespace wanbatch::parallel
