// I2V's y and TI2V's first latent frame (image2video.py, textimage2video.py).
#include "model/wan/image_conditioning.h"

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"

namespace wanbatch::model::wan {
namespace {

namespace ops = core::ops;
using core::DType;
using core::Shape;
using core::Tensor;

// The image [3, H, W] f32 as the first frame of a video [3, frames, H, W] on ctx's device whose
// other frames are zero.
Tensor image_video(const core::Context& ctx, const Tensor& image, int64_t frames) {
  WB_CHECK(image.ndim() == 3 && image.dim(0) == 3 && image.dtype() == DType::F32,
           "image condition: the image must be [3, H, W] f32, got ", image.describe());
  const Tensor frame = image.device() == ctx.device() ? image : image.to(ctx.device());
  Tensor video = Tensor::empty({3, frames, image.dim(1), image.dim(2)}, DType::F32, ctx.device());
  if (frames > 1) ops::fill(ctx, video, 0.0f);
  ops::copy_slice(ctx, frame.reshape({3, 1, image.dim(1), image.dim(2)}), 1, 0, video, 0, 1);
  return video;
}

}  // namespace

Tensor i2v_mask(int64_t frames, int64_t lat_h, int64_t lat_w) {
  WB_CHECK(frames >= 1 && (frames - 1) % 4 == 0 && lat_h >= 1 && lat_w >= 1, "I2V mask: ", frames,
           " frames on a ", lat_w, "x", lat_h, " latent grid (frames must be 4k + 1)");
  // Officially: ones on video frame 0, zeros after; frame 0 repeated 4 times, so 4·f entries
  // that group by 4 into latent frames, each group's members becoming the 4 channels
  // (view [f, 4, h, w] then transpose). Only latent frame 0's group comes from frame 0: channel
  // c of latent frame j is 1 exactly when j = 0.
  const int64_t latent_frames = (frames - 1) / 4 + 1;
  Tensor mask = Tensor::zeros({4, latent_frames, lat_h, lat_w}, DType::F32);
  const int64_t plane = lat_h * lat_w;
  for (int64_t c = 0; c < 4; ++c) {
    float* first = mask.data<float>() + c * latent_frames * plane;
    std::fill(first, first + plane, 1.0f);
  }
  return mask;
}

Tensor i2v_condition(const core::Context& ctx, WanVae& vae, const Tensor& image, int64_t frames) {
  WB_CHECK(image.ndim() == 3, "I2V condition: the image must be [3, H, W], got ", image.describe());
  // Checked before the video (3·frames·H·W floats) is made.
  const Shape latent_shape = vae.encoded_shape({3, frames, image.dim(1), image.dim(2)});
  const Tensor video = image_video(ctx, image, frames);
  const int64_t z = latent_shape[0], f = latent_shape[1], h = latent_shape[2], w = latent_shape[3];
  Tensor y = Tensor::empty({4 + z, f, h, w}, DType::F32, ctx.device());
  y.slice(0, 4).copy_from(i2v_mask(frames, h, w));
  Tensor latents = y.slice(4, 4 + z);  // contiguous: the channels after the mask's
  vae.encode(ctx, video, latents);
  return y;
}

Tensor ti2v_first_frame(const core::Context& ctx, WanVae& vae, const Tensor& image) {
  const Tensor video = image_video(ctx, image, 1);
  Tensor latents = Tensor::empty(vae.encoded_shape(video.shape()), DType::F32, ctx.device());
  vae.encode(ctx, video, latents);
  return latents;
}

}  // namespace wanbatch::model::wan
