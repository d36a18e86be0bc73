#include "model/sampling/sampler.h"

#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "core/ops.h"
#include "core/profiler.h"
#include "model/sampling/solver.h"

namespace wanbatch::model::sampling {
namespace {

using core::Tensor;

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs", seconds);
  return text;
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
  WB_CHECK(!options.cfg || options.cfg->size() <= 2, "CFG-parallel takes 2 ranks, not ",
           options.cfg ? options.cfg->size() : 0);
  parallel::Comm* const cfg = options.cfg && options.cfg->size() == 2 ? options.cfg : nullptr;
  WB_CHECK(experts.high == nullptr || (options.boundary > 0.0 && options.boundary <= 1.0),
           "the expert boundary must be in (0, 1], got ", options.boundary);

  std::unique_ptr<Solver> solver = make_solver(options.solver, options.steps, options.shift);
  SampleResult result;
  result.latents = Tensor::empty(noise.shape(), core::DType::F32, ctx.device());
  result.latents.copy_from(noise);
  Tensor& x = result.latents;
  Tensor cond = Tensor::empty(x.shape(), core::DType::F32, ctx.device());
  Tensor uncond = Tensor::empty(x.shape(), core::DType::F32, ctx.device());
  // CFG-parallel: both ranks' velocities, [2·C, F, H, W] (the prompt's channels first).
  core::Tensor pair;
  if (cfg) {
    core::Shape shape = x.shape();
    shape[0] *= 2;
    pair = Tensor::empty(shape, core::DType::F32, ctx.device());
  }
  // The step's timestep: written on the host, copied into a buffer on the model's device.
  Tensor timestep_host = Tensor::empty({1}, core::DType::F32);
  Tensor timestep = Tensor::empty({1}, core::DType::F32, ctx.device());
  // text2video.py compares t with boundary · num_train_timesteps.
  const double boundary = options.boundary * 1000;

  const auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < solver->steps(); ++k) {
    const double t = solver->timestep();
    const bool high = experts.high != nullptr && t >= boundary;
    wan::WanDit& model = high ? *experts.high : *experts.low;
    const double guide = high ? guide_high : options.guide_scale;
    timestep_host.data<float>()[0] = static_cast<float>(t);
    timestep.copy_from(timestep_host);
    wan::DitInput input;
    input.latent = x;
    input.timestep = timestep;
    input.y = conditions.y;
    input.clip = conditions.clip;
    if (guide == 1.0) {
      model.forward(ctx, input, {&conditions.context}, {&cond});
    } else if (cfg) {
      const Tensor& context = cfg->rank() == 0 ? conditions.context : conditions.context_null;
      model.forward(ctx, input, {&context}, {&cond});
      {
        const core::ProfileScope profile(ctx, "all_gather");
        cfg->all_gather(cond, pair);
      }
      const int64_t channels = x.dim(0);
      const Tensor both[2] = {pair.slice(0, channels), pair.slice(channels, 2 * channels)};
      core::ops::linear_combination(ctx, {guide, 1.0 - guide}, {&both[0], &both[1]}, cond);
    } else {
      model.forward(ctx, input, {&conditions.context, &conditions.context_null}, {&cond, &uncond});
      // uncond + g·(cond − uncond)
      core::ops::linear_combination(ctx, {guide, 1.0 - guide}, {&cond, &uncond}, cond);
    }
    solver->step(ctx, cond, x);
    result.timesteps.push_back(t);
    result.high_noise_steps.push_back(high ? 1 : 0);

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
