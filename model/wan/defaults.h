// The official generation defaults of each Wan model (Wan2.1 generate.py, Wan2.2 wan/configs/*),
// used when neither the item nor the command line says otherwise.
#pragma once

#include <optional>
#include <string>

#include "model/wan/config.h"

namespace wanbatch::model::wan {

// wan/configs/shared_config.py sample_neg_prompt (the same in Wan2.1 and Wan2.2), byte for byte:
// the negative prompt when an item gives none.
inline constexpr const char* kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
    "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
    "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

struct GenerationDefaults {
  std::string solver = "unipc";
  int steps = 50;
  double shift = 5.0;
  double guide_scale = 5.0;                // the low-noise (or only) model's
  std::optional<double> guide_scale_high;  // Wan2.2 A14B's high-noise expert
  double boundary = 0.875;                 // Wan2.2 A14B expert switch, × 1000 timesteps
  int frames = 81;
  int fps = 16;
};

// By the DiT's shape and whether it runs as two experts: Wan2.1 T2V 50 steps, shift 5, guide 5;
// Wan2.1 I2V 40 steps; Wan2.2 T2V-A14B 40 steps, shift 12, guide (3, 4), boundary 0.875; Wan2.2
// I2V-A14B 40 steps, shift 5, guide (3.5, 3.5), boundary 0.9; Wan2.2 TI2V-5B 50 steps, shift 5,
// guide 5, 121 frames at 24 fps. (Wan2.1 I2V at 480p uses shift 3 in the official script; that
// depends on the size, which the caller applies.)
GenerationDefaults generation_defaults(const DitConfig& config, bool two_experts);

// Wan2.2-Lightning (4-step distilled LoRAs): Euler, 4 steps, shift 5, no guidance.
GenerationDefaults lightning_defaults();

}  // namespace wanbatch::model::wan
