// The text-to-video sampling loop (wan-spec "Solvers and loops", text2video.py): at each timestep
// pick the expert (Wan2.2's high-noise one while t ≥ boundary·1000), predict the velocity with
// classifier-free guidance, and let the solver step. Guidance runs the prompt and the negative
// prompt through the DiT as one batch of two (or on two ranks with CFG-parallel); a guide scale of
// 1 skips the negative prompt. The image-to-video loops are the same with conditions: I2V's y goes
// to every DiT call (image2video.py); TI2V's first frame is held fixed (textimage2video.py).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "model/sampling/schedule.h"
#include "model/wan/dit.h"
#include "parallel/comm.h"

namespace wanbatch::model::sampling {

struct SamplerOptions {
  SolverKind solver = SolverKind::UniPC;
  int steps = 50;
  double shift = 5.0;
  double guide_scale = 5.0;                // the low-noise (or only) model's
  std::optional<double> guide_scale_high;  // the high-noise expert's (default: guide_scale)
  double boundary = 0.875;                 // fraction of the 1000 training timesteps
  std::string item;                        // names the item in progress lines
  // CFG-parallel (--cfg-parallel): a two-rank communicator whose rank 0 runs the prompt and rank 1
  // the negative prompt, the two velocities exchanged by one all-gather per guided step; null: the
  // two passes run as one batch here.
  parallel::Comm* cfg = nullptr;
  // --offload model: only the model a step runs stays on the device; the other expert waits in
  // host memory (WanDit::set_resident), moved at the expert switch.
  bool offload_models = false;
  // Called after each step with its index (0-based), once x holds the step's result; tests use
  // it to watch device memory step by step. Null: none.
  std::function<void(int step)> after_step;
};

// The models of one run: `low` is the only model of a single-model variant; `high` (optional) is
// Wan2.2's high-noise expert.
struct Experts {
  wan::WanDit* low = nullptr;
  wan::WanDit* high = nullptr;
};

// What stays fixed over the loop.
struct SampleConditions {
  core::Tensor context;       // [n, text_dim], the prompt
  core::Tensor context_null;  // the negative prompt; needed when a guide scale is not 1
  core::Tensor y;             // I2V condition channels, or undefined
  core::Tensor clip;          // Wan2.1 I2V CLIP features, or undefined
  // TI2V: the image latent [C, 1, h, w]; the loop keeps latent frame 0 equal to it, and the DiT
  // sees timestep 0 on that frame's tokens (textimage2video.py). Undefined: plain text-to-video.
  core::Tensor first_frame;
};

struct SampleResult {
  core::Tensor latents;               // [C, F, H, W]
  std::vector<double> timesteps;      // the model's timestep at each step
  std::vector<int> high_noise_steps;  // 1 where the high-noise expert ran
};

// Runs the whole loop from `noise` (its shape is the latent's). Logs one info line per step.
SampleResult sample(const core::Context& ctx, const Experts& experts, const SamplerOptions& options,
                    const core::Tensor& noise, const SampleConditions& conditions);

}  // namespace wanbatch::model::sampling
