// The Wan2.1 VAE's network shape (official wan/modules/vae2_1.py, WanVAE_ with dim 96, z 16,
// dim_mult [1, 2, 4, 4], 2 residual blocks, temporal downsampling [False, True, True]). Its
// levels are one flat nn.Sequential, so block names count through the levels.
#include "model/wan/vae_blocks.h"

namespace wanbatch::model::wan::vae {
namespace {

constexpr int kLevels = 4;
constexpr int64_t kDimMult[kLevels] = {1, 2, 4, 4};
constexpr bool kTemporalDown[kLevels - 1] = {false, true, true};
constexpr int kResBlocks = 2;

}  // namespace

CoderPlan encoder_plan_21(const VaeConfig& config) {
  const int64_t d = config.dim;
  const int64_t dims[kLevels + 1] = {d, d * kDimMult[0], d * kDimMult[1], d * kDimMult[2],
                                     d * kDimMult[3]};
  CoderPlan plan;
  plan.name = "encoder";
  plan.in_channels = 3;
  plan.conv1_channels = dims[0];
  int index = 0;  // position in encoder.downsamples
  for (int i = 0; i < kLevels; ++i) {
    LevelPlan level;
    level.in = dims[i];
    level.out = dims[i + 1];
    int64_t in = dims[i];
    for (int j = 0; j < kResBlocks; ++j) {
      level.blocks.push_back({"encoder.downsamples." + std::to_string(index++), in, dims[i + 1]});
      in = dims[i + 1];
    }
    if (i != kLevels - 1) {
      level.resample = ResamplePlan{"encoder.downsamples." + std::to_string(index++),
                                    kTemporalDown[i] ? ResampleMode::Down3d : ResampleMode::Down2d,
                                    dims[i + 1], dims[i + 1]};
    }
    plan.levels.push_back(level);
  }
  plan.middle_channels = plan.head_in = dims[kLevels];
  plan.out_channels = 2 * config.z_dim;  // mu and log-variance
  return plan;
}

CoderPlan decoder_plan_21(const VaeConfig& config) {
  const int64_t d = config.dec_dim;
  // dims = dim · [dim_mult[-1]] + reversed(dim_mult)
  const int64_t dims[kLevels + 1] = {d * kDimMult[3], d * kDimMult[3], d * kDimMult[2],
                                     d * kDimMult[1], d * kDimMult[0]};
  CoderPlan plan;
  plan.name = "decoder";
  plan.decoder = true;
  plan.in_channels = config.z_dim;
  plan.conv1_channels = plan.middle_channels = dims[0];
  int index = 0;  // position in decoder.upsamples
  for (int i = 0; i < kLevels; ++i) {
    LevelPlan level;
    // The upsampling convs halve the width, so levels after the first start at half.
    int64_t in = i == 0 ? dims[i] : dims[i] / 2;
    level.in = in;
    level.out = dims[i + 1];
    for (int j = 0; j < kResBlocks + 1; ++j) {
      level.blocks.push_back({"decoder.upsamples." + std::to_string(index++), in, dims[i + 1]});
      in = dims[i + 1];
    }
    if (i != kLevels - 1) {
      // temporal upsampling = reversed temporal downsampling: [True, True, False]
      const bool temporal = kTemporalDown[kLevels - 2 - i];
      level.resample = ResamplePlan{"decoder.upsamples." + std::to_string(index++),
                                    temporal ? ResampleMode::Up3d : ResampleMode::Up2d, dims[i + 1],
                                    dims[i + 1] / 2};
    }
    plan.levels.push_back(level);
  }
  plan.head_in = dims[kLevels];
  plan.out_channels = 3;
  return plan;
}

}  // namespace wanbatch::model::wan::vae
