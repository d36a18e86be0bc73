// The communicators of one topology (DESIGN.md "Parallelism"), split from the world once at
// start-up: the sp group (Ulysses), the cfg pair (CFG-parallel) and the item group (all cfg × sp
// ranks of one dp group, which generate one item together).
#pragma once

#include <memory>
#include <string>

#include "parallel/comm.h"
#include "parallel/topology.h"

namespace wanbatch::parallel {

struct Groups {
  Topology topology;
  std::unique_ptr<Comm> sp, cfg, item;

  // Collective over `world`. Throws the Topology's errors (on every rank alike) when the world does
  // not factor or sp does not divide `num_heads`.
  static Groups make(Comm& world, int sp, bool cfg_parallel, int num_heads);

  // "dp 2 × cfg 2 × sp 2" style summary.
  std::string describe() const;
};

}  // namespace wanbatch::parallel
