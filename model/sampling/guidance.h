// One guided velocity prediction (classifier-free guidance, wan-spec "Solvers and loops"):
// uncond + g·(cond − uncond), the DiT run on the prompt and on the negative prompt either as one
// batch of two, or with CFG-parallel the prompt on rank 0 of a two-rank group and the negative on
// rank 1, the two velocities exchanged by one all-gather so both ranks hold the result. A guide
// scale of 1 runs the prompt alone. The sampler calls it once per step; the benchmark times it.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "model/wan/dit.h"
#include "parallel/comm.h"

namespace wanbatch::model::sampling {

class GuidedVelocity {
 public:
  // Buffers for velocities of `shape` on ctx's device. `cfg`: the CFG-parallel pair; null or a
  // single rank: the two passes run here as one batch.
  GuidedVelocity(const core::Context& ctx, const core::Shape& shape, parallel::Comm* cfg);

  // velocity ← the guided velocity of `input` (input.context is not used) under the prompt's
  // `context` and the negative prompt's `context_null` (not used when `guide` is 1).
  void predict(const core::Context& ctx, wan::WanDit& model, const wan::DitInput& input,
               const core::Tensor& context, const core::Tensor& context_null, double guide,
               core::Tensor& velocity);

 private:
  parallel::Comm* cfg_ = nullptr;
  core::Tensor uncond_;  // the negative prompt's velocity (batch of two)
  core::Tensor pair_;    // CFG-parallel: both ranks' velocities, [2·C, ...] (the prompt's first)
};

}  // namespace wanbatch::model::sampling
