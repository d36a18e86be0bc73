#include "parallel/groups.h"

#include <string>

namespace wanbatch::parallel {

Groups Groups::make(Comm& world, int sp, bool cfg_parallel, int num_heads) {
  Groups g;
  g.topology = Topology::make(world.size(), world.rank(), sp, cfg_parallel, num_heads);
  const SplitKey sp_key = g.topology.sp_group();
  const SplitKey cfg_key = g.topology.cfg_group();
  const SplitKey item_key = g.topology.item_group();
  g.sp = world.split(sp_key.color, sp_key.key);
  g.cfg = world.split(cfg_key.color, cfg_key.key);
  g.item = world.split(item_key.color, item_key.key);
  return g;
}

std::string Groups::describe() const {
  return "dp " + std::to_string(topology.dp) + " × cfg " + std::to_string(topology.cfg) + " × sp " +
         std::to_string(topology.sp);
}

}  // namespace wanbatch::parallel
