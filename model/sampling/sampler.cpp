#include "model/sampling/sampler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "core/ops.h"
#include "model/sampling/guidance.h"
#include "model/sampling/solver.h"

namespace wanbatch::model::sampling {
namespace {

using core::Tensor;

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs", seconds);
  return text;
}

// TI2V's fixed first latent frame and the per-token timesteps that go with it.
struct FirstFrame {
  Tensor latent;       // [C, 1, H, W] on the sampling device, or undefined (plain T2V)
  int64_t tokens = 1;  // timesteps per step: 1, or one per DiT token
  int64_t frame0 = 0;  // tokens of latent frame 0 (the first in the DiT's (f, h, w) order)

  // x's frame 0 ← the image latent.
  void apply(const core::Context& ctx, Tensor& x) const {
    core::ops::copy_slice(ctx, latent, 1, 0, x, 0, 1);
  }
  // textimage2video.py's temp_ts: mask·t over the tokens (0 on frame 0's, t elsewhere), filled
  // on the device: no host copy (and wait) inside a step.
  void write_timesteps(const core::Context& ctx, float t, Tensor& timestep) const {
    core::ops::fill(ctx, timestep, t);
    if (frame0 == 0) return;
    Tensor frame = timestep.slice(0, frame0);
    core::ops::fill(ctx, frame, 0.0f);
  }
};

FirstFrame first_frame(const core::Context& ctx, const wan::WanDit& model, const Tensor& latent,
                       const Tensor& x) {
  FirstFrame first;
  if (!latent.defined()) return first;
  WB_CHECK(x.ndim() == 4, "sampling: latent ", x.describe(), " must be [C, F, H, W]");
  WB_CHECK(latent.ndim() == 4 && latent.dim(0) == x.dim(0) && latent.dim(1) == 1 &&
               latent.dim(2) == x.dim(2) && latent.dim(3) == x.dim(3) &&
               latent.dtype() == core::DType::F32,
           "sampling: the first-frame latent ", latent.describe(), " does not fit the latent ",
           x.describe(), " (expected [", x.dim(0), ", 1, ", x.dim(2), ", ", x.dim(3), "] f32)");
  const auto& p = model.config().patch_size;
  // Officially the mask is subsampled by the 1×2×2 patch (mask[:, ::2, ::2]): one latent frame
  // per token frame.
  WB_CHECK(p[0] == 1, "sampling: a first-frame latent needs a temporal patch size of 1, not ",
           p[0]);
  WB_CHECK(x.dim(2) % p[1] == 0 && x.dim(3) % p[2] == 0, "sampling: latent ", x.describe(),
           " is not a multiple of the patch size");
  first.latent = latent.device() == ctx.device() ? latent : latent.to(ctx.device());
  first.frame0 = (x.dim(2) / p[1]) * (x.dim(3) / p[2]);
  first.tokens = x.dim(1) * first.frame0;
  return first;
}

// `t` on the sampling device: copied there once, before the loop, rather than from the host by
// every DiT call (which also allocates when the dtypes differ).
Tensor on_device(const core::Context& ctx, const Tensor& t) {
  return !t.defined() || t.device() == ctx.device() ? t : t.to(ctx.device());
}

}  // namespace

SampleResult sample(const core::Context& ctx, const Experts& experts, const SamplerOptions& options,
                    const Tensor& noise, const SampleConditions& conditions) {
  WB_CHECK(experts.low != nullptr, "sampling needs a model");
  const double guide_high = options.guide_scale_high.value_or(options.guide_scale);
  const bool needs_negative =
      options.guide_scale != 1.0 || (experts.high != nullptr && guide_high != 1.0);
  WB_CHECK(!needs_negative || conditions.context_null.defined(),
           "sampling with a guide scale other than 1 needs the negative prompt's context");
  WB_CHECK(experts.high == nullptr || (options.boundary > 0.0 && options.boundary <= 1.0),
           "the expert boundary must be in (0, 1], got ", options.boundary);

  std::unique_ptr<Solver> solver = make_solver(options.solver, options.steps, options.shift);
  SampleResult result;
  result.latents = Tensor::empty(noise.shape(), core::DType::F32, ctx.device());
  result.latents.copy_from(noise);
  Tensor& x = result.latents;
  Tensor cond = Tensor::empty(x.shape(), core::DType::F32, ctx.device());
  GuidedVelocity guided(ctx, x.shape(), options.cfg);
  // TI2V (textimage2video.py): latent frame 0 is the image's latent before the loop and after
  // every step, and the DiT sees timestep 0 on its tokens (t on the others).
  const FirstFrame first = first_frame(ctx, *experts.low, conditions.first_frame, x);
  if (first.latent.defined()) first.apply(ctx, x);
  const Tensor context = on_device(ctx, conditions.context);
  const Tensor context_null = on_device(ctx, conditions.context_null);
  const Tensor y = on_device(ctx, conditions.y), clip = on_device(ctx, conditions.clip);
  // The step's timesteps (one, or one per token), in a buffer on the model's device.
  Tensor timestep = Tensor::empty({first.tokens}, core::DType::F32, ctx.device());
  // text2video.py compares t with boundary · num_train_timesteps.
  const double boundary = options.boundary * 1000;

  const auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < solver->steps(); ++k) {
    const double t = solver->timestep();
    const bool high = experts.high != nullptr && t >= boundary;
    wan::WanDit& model = high ? *experts.high : *experts.low;
    if (options.offload_models) {
      if (experts.high) (high ? *experts.low : *experts.high).set_resident(false);  // first: the
      model.set_resident(true);  // two experts are never on the device together
    }
    const double guide = high ? guide_high : options.guide_scale;
    first.write_timesteps(ctx, static_cast<float>(t), timestep);
    wan::DitInput input;
    input.latent = x;
    input.timestep = timestep;
    input.y = y;
    input.clip = clip;
    guided.predict(ctx, model, input, context, context_null, guide, cond);
    solver->step(ctx, cond, x);
    if (first.latent.defined()) first.apply(ctx, x);
    result.timesteps.push_back(t);
    result.high_noise_steps.push_back(high ? 1 : 0);
    if (options.after_step) options.after_step(k);

    // Nothing in a step waits for the device, so wait here for the progress line to be true (the
    // next step's first kernels are queued a few microseconds later: nothing measurable).
    ctx.synchronize();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = elapsed / (k + 1) * (solver->steps() - k - 1);
    WB_LOG(info) << (options.item.empty() ? std::string() : options.item + ": ") << "step " << k + 1
                 << "/" << solver->steps() << " t=" << t
                 << (experts.high ? (high ? " high-noise" : " low-noise") : "")
                 << (guide == 1.0 ? " (no CFG)" : "") << " elapsed " << seconds_text(elapsed)
                 << " ETA " << seconds_text(eta);
  }
  return result;
}

}  // namespace wanbatch::model::sampling
