#include "model/wan/defaults.h"

namespace wanbatch::model::wan {

GenerationDefaults generation_defaults(const DitConfig& config, bool two_experts) {
  GenerationDefaults d;
  const bool i2v = config.in_dim == 36;
  if (config.in_dim == 48) {  // TI2V-5B
    d.frames = 121;
    d.fps = 24;
    return d;
  }
  if (!two_experts) {  // Wan2.1
    if (i2v) d.steps = 40;
    return d;
  }
  d.steps = 40;
  if (i2v) {
    d.guide_scale = 3.5;
    d.guide_scale_high = 3.5;
    d.boundary = 0.9;
  } else {
    d.shift = 12.0;
    d.guide_scale = 3.0;
    d.guide_scale_high = 4.0;
  }
  return d;
}

GenerationDefaults lightning_defaults() {
  GenerationDefaults d;
  d.solver = "euler";
  d.steps = 4;
  d.shift = 5.0;
  d.guide_scale = 1.0;
  d.guide_scale_high = 1.0;
  return d;
}

}  // namespace wanbatch::model::wan
