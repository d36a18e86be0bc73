#include "model/sampling/guidance.h"

#include "core/error.h"
#include "core/ops.h"
#include "core/profiler.h"

namespace wanbatch::model::sampling {

using core::Tensor;

GuidedVelocity::GuidedVelocity(const core::Context& ctx, const core::Shape& shape,
                               parallel::Comm* cfg) {
  WB_CHECK(!cfg || cfg->size() <= 2, "CFG-parallel takes 2 ranks, not ", cfg ? cfg->size() : 0);
  cfg_ = cfg && cfg->size() == 2 ? cfg : nullptr;
  if (cfg_) {
    core::Shape both = shape;
    both[0] *= 2;
    pair_ = Tensor::empty(both, core::DType::F32, ctx.device());
  } else {
    uncond_ = Tensor::empty(shape, core::DType::F32, ctx.device());
  }
}

void GuidedVelocity::predict(const core::Context& ctx, wan::WanDit& model,
                             const wan::DitInput& input, const Tensor& context,
                             const Tensor& context_null, double guide, Tensor& velocity) {
  if (guide == 1.0) {
    model.forward(ctx, input, {&context}, {&velocity});
    return;
  }
  if (cfg_) {
    model.forward(ctx, input, {cfg_->rank() == 0 ? &context : &context_null}, {&velocity});
    {
      const core::ProfileScope profile(ctx, "all_gather");
      cfg_->all_gather(velocity, pair_);
    }
    const int64_t channels = velocity.dim(0);
    const Tensor both[2] = {pair_.slice(0, channels), pair_.slice(channels, 2 * channels)};
    core::ops::linear_combination(ctx, {guide, 1.0 - guide}, {&both[0], &both[1]}, velocity);
    return;
  }
  model.forward(ctx, input, {&context, &context_null}, {&velocity, &uncond_});
  // uncond + g·(cond − uncond)
  core::ops::linear_combination(ctx, {guide, 1.0 - guide}, {&velocity, &uncond_}, velocity);
}

}  // namespace wanbatch::model::sampling
