#include "model/sampling/latent_shape.h"

#include "core/error.h"

namespace wanbatch::model::sampling {
namespace {

// The DiT's spatial patch is 2×2 for every Wan variant.
constexpr int64_t kPatch = 2;

void check_multiple(const char* what, int64_t value, int64_t multiple) {
  if (value > 0 && value % multiple == 0) return;
  const int64_t below = value / multiple * multiple, above = below + multiple;
  throw make_error(what, " ", value, " is not a positive multiple of ", multiple,
                   " (VAE stride × patch)",
                   below > 0 ? "; try " + std::to_string(below) + " or " : "; try ", above);
}

}  // namespace

VaeStride vae_stride_for_channels(int64_t latent_channels) {
  if (latent_channels == 16) return {4, 8, 8};
  if (latent_channels == 48) return {4, 16, 16};
  throw make_error("no Wan VAE has ", latent_channels,
                   " latent channels (Wan2.1's has 16, Wan2.2's 48)");
}

core::Shape latent_shape(int64_t channels, int64_t width, int64_t height, int64_t frames) {
  const VaeStride stride = vae_stride_for_channels(channels);
  if (frames < 1 || (frames - 1) % stride.frames != 0) {
    const int64_t below = frames < 1 ? 1 : (frames - 1) / 4 * 4 + 1;
    throw make_error("frames ", frames,
                     " is not 4k+1 (the VAE packs 4 frames per latent frame "
                     "after the first); try ",
                     below, " or ", below + 4);
  }
  check_multiple("width", width, stride.width * kPatch);
  check_multiple("height", height, stride.height * kPatch);
  return {channels, (frames - 1) / stride.frames + 1, height / stride.height, width / stride.width};
}

}  // namespace wanbatch::model::sampling
