// The communicators of one topology (DESIGN.md "Parallelism"), split from the world once at
// start-up: the sp group (Ulysses), the cfg pair (CFG-parallel) and the item group (all cfg × sp
// ranks of one dp group, which generate one item together). On a GPU the sp and cfg groups, which
// move activations, are NCCL communicators (bootstrapped over their MPI twins); the item group,
// which moves a few host numbers, stays MPI.
#pragma once

#include <memory>
#include <string>

#include "core/context.h"
#include "parallel/comm.h"
#include "parallel/topology.h"

namespace wanbatch::parallel {

struct Groups {
  Topology topology;
  std::unique_ptr<Comm> sp, cfg, item;
  std::unique_ptr<Comm> sp_bootstrap, cfg_bootstrap;  // the MPI twins of NCCL sp and cfg groups

  // Collective over `world`. Throws the Topology's errors (on every rank alike) when the world does
  // not factor or sp does not divide `num_heads` (0: not checked). With a CUDA `ctx`, sp and cfg
  // groups of more than one rank move device tensors over NCCL.
  static Groups make(Comm& world, int sp, bool cfg_parallel, int num_heads,
                     const core::Context& ctx = core::Context::cpu());

  // "dp 2 × cfg 2 × sp 2" style summary.
  std::string describe() const;
};

}  // namespace wanbatch::parallel
