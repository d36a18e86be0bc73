// Which device a rank of the job runs on (`--device auto|cuda|cpu`), without the command line so
// that the tests under mpirun pick devices exactly as `wanbatch run` does.
#pragma once

#include <string>

#include "core/context.h"

namespace wanbatch::parallel {

// `auto`: a GPU when one is visible, else the CPU; `cuda`: a GPU (throws when none is visible or
// the build has no CUDA); `cpu`: the CPU. The GPU is the node-local rank's (node_local_rank()),
// modulo the visible GPUs, so the ranks of a node spread over its GPUs. Throws naming the choice
// for anything else.
core::Context rank_device_context(const std::string& device);

}  // namespace wanbatch::parallel
