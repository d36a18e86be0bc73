// The Wan2.2 VAE's network shape (official wan/modules/vae2_2.py, Wan2_2_VAE: encoder dim 160,
// decoder dec_dim 256, z 48, dim_mult [1, 2, 4, 4], 2 residual blocks, temporal downsampling
// [False, True, True]). The video is patchified 2×2 into 12 channels around the network; each
// level is a Down_ResidualBlock / Up_ResidualBlock with its own nn.Sequential and an
// AvgDown3D / DupUp3D shortcut; the upsampling convs keep their width.
#include "model/wan/vae_blocks.h"

namespace wanbatch::model::wan::vae {
namespace {

constexpr int kLevels = 4;
constexpr int64_t kDimMult[kLevels] = {1, 2, 4, 4};
constexpr bool kTemporalDown[kLevels - 1] = {false, true, true};
constexpr int kResBlocks = 2;
constexpr int64_t kPatchChannels = 3 * 2 * 2;

}  // namespace

CoderPlan encoder_plan_22(const VaeConfig& config) {
  const int64_t d = config.dim;
  const int64_t dims[kLevels + 1] = {d, d * kDimMult[0], d * kDimMult[1], d * kDimMult[2],
                                     d * kDimMult[3]};
  CoderPlan plan;
  plan.name = "encoder";
  plan.in_channels = kPatchChannels;
  plan.conv1_channels = dims[0];
  for (int i = 0; i < kLevels; ++i) {
    const std::string name = "encoder.downsamples." + std::to_string(i) + ".downsamples.";
    const bool down = i != kLevels - 1;
    const bool temporal = i < kLevels - 1 && kTemporalDown[i];
    LevelPlan level;
    level.in = dims[i];
    level.out = dims[i + 1];
    int64_t in = dims[i];
    for (int j = 0; j < kResBlocks; ++j) {
      level.blocks.push_back({name + std::to_string(j), in, dims[i + 1]});
      in = dims[i + 1];
    }
    if (down) {
      level.resample = ResamplePlan{name + std::to_string(kResBlocks),
                                    temporal ? ResampleMode::Down3d : ResampleMode::Down2d,
                                    dims[i + 1], dims[i + 1]};
    }
    // The shortcut is there at every level; at the last one (factors 1) it is the identity.
    level.shortcut = ShortcutKind::AvgDown;
    level.factor_t = temporal ? 2 : 1;
    level.factor_s = down ? 2 : 1;
    plan.levels.push_back(level);
  }
  plan.middle_channels = plan.head_in = dims[kLevels];
  plan.out_channels = 2 * config.z_dim;
  return plan;
}

CoderPlan decoder_plan_22(const VaeConfig& config) {
  const int64_t d = config.dec_dim;
  const int64_t dims[kLevels + 1] = {d * kDimMult[3], d * kDimMult[3], d * kDimMult[2],
                                     d * kDimMult[1], d * kDimMult[0]};
  CoderPlan plan;
  plan.name = "decoder";
  plan.decoder = true;
  plan.in_channels = config.z_dim;
  plan.conv1_channels = plan.middle_channels = dims[0];
  for (int i = 0; i < kLevels; ++i) {
    const std::string name = "decoder.upsamples." + std::to_string(i) + ".upsamples.";
    const bool up = i != kLevels - 1;
    const bool temporal = i < kLevels - 1 && kTemporalDown[kLevels - 2 - i];
    LevelPlan level;
    level.in = dims[i];
    level.out = dims[i + 1];
    int64_t in = dims[i];
    for (int j = 0; j < kResBlocks + 1; ++j) {
      level.blocks.push_back({name + std::to_string(j), in, dims[i + 1]});
      in = dims[i + 1];
    }
    if (up) {
      level.resample = ResamplePlan{name + std::to_string(kResBlocks + 1),
                                    temporal ? ResampleMode::Up3d : ResampleMode::Up2d, dims[i + 1],
                                    dims[i + 1]};
      // Only upsampling levels have the shortcut; the last level does not add its input.
      level.shortcut = ShortcutKind::DupUp;
      level.factor_t = temporal ? 2 : 1;
      level.factor_s = 2;
    }
    plan.levels.push_back(level);
  }
  plan.head_in = dims[kLevels];
  plan.out_channels = kPatchChannels;
  return plan;
}

}  // namespace wanbatch::model::wan::vae
