// The latent a video of width × height × frames becomes (wan-spec "Solvers and loops": latent
// shape [z, (F−1)/4+1, H/stride, W/stride]), checked before any compute: frames must be 4k+1 and
// the sizes multiples of the VAE stride times the DiT patch.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace wanbatch::model::sampling {

struct VaeStride {
  int64_t frames, height, width;
};

// The VAE that goes with a DiT's latent channels: 16 → Wan2.1's VAE (4×8×8), 48 → Wan2.2's
// (4×16×16). Throws for other channel counts.
VaeStride vae_stride_for_channels(int64_t latent_channels);

// [channels, (frames − 1)/4 + 1, height/stride, width/stride]; throws a one-line error naming the
// size that does not fit and the nearest sizes that do.
core::Shape latent_shape(int64_t channels, int64_t width, int64_t height, int64_t frames);

}  // namespace wanbatch::model::sampling
