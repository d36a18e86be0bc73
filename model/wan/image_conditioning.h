// The image conditions of the image-to-video models (wan-spec "I2V", image2video.py and
// textimage2video.py): Wan2.x I2V's extra DiT input channels y (a 4-channel frame mask saying
// which video frames are given, followed by the Wan2.1 VAE latents of the image and zero frames),
// and TI2V-5B's first latent frame (the image encoded alone by the Wan2.2 VAE), which the sampling
// loop keeps fixed.
#pragma once

#include <cstdint>

#include "core/context.h"
#include "core/tensor.h"
#include "model/wan/vae.h"

namespace wanbatch::model::wan {

// image2video.py's frame mask for `frames` video frames on a lat_h × lat_w latent grid:
// [4, (frames − 1)/4 + 1, lat_h, lat_w] f32 on the host; 1 where a video frame is given (only the
// first), 0 elsewhere. The first frame is repeated 4 times so that the frames fill groups of 4,
// one group per latent frame, whose members become the 4 channels.
core::Tensor i2v_mask(int64_t frames, int64_t lat_h, int64_t lat_w);

// image2video.py's y: [4 + z, f, lat_h, lat_w] on ctx's device = cat(i2v_mask, vae.encode([image;
// frames − 1 zero frames])). `image` [3, H, W] in [−1, 1], already at the output size (see
// model/wan/image_sizes.h: i2v_image()); `frames` = 4k + 1.
core::Tensor i2v_condition(const core::Context& ctx, WanVae& vae, const core::Tensor& image,
                           int64_t frames);

// textimage2video.py's z: the image's latent [z, 1, lat_h, lat_w] (Wan2.2 VAE) on ctx's device.
core::Tensor ti2v_first_frame(const core::Context& ctx, WanVae& vae, const core::Tensor& image);

}  // namespace wanbatch::model::wan
