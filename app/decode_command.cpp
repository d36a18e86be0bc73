// wanbatch decode: saved latents (a run's ITEM.h5, or tool sample's output) to a video.
#include <chrono>
#include <filesystem>
#include <optional>

#include "app/commands.h"
#include "app/tool_inputs.h"
#include "core/error.h"
#include "core/log.h"
#include "io/latents_file.h"
#include "io/video_writer.h"
#include "model/wan/vae_loader.h"

namespace wanbatch::app {

int decode_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = "decode";
  spec.usage = "wanbatch decode --latents ITEM.h5 --vae VAE --output ITEM.mp4 [options]";
  spec.summary =
      "Decodes saved latents with a Wan VAE into an H.264 MP4 (MPEG-4 when libx264 is missing). "
      "The VAE must match the latents: 16 channels for Wan2.1's VAE, 48 for Wan2.2's.";
  // clang-format off
  spec.options.add_options()
      ("latents", po::value<std::string>()->required(), "HDF5 file with /latents [C,T,h,w]")
      ("vae", po::value<std::string>()->required(),
       "VAE weights: Wan2.1_VAE.pth / Wan2.2_VAE.pth or a safetensors file")
      ("output", po::value<std::string>()->required(), "video file to write (.mp4)")
      ("fps", po::value<int>(),
       "frames per second (default: the file's fps, else 16 for Wan2.1's VAE, 24 for Wan2.2's)")
      ("crf", po::value<int>(),
       "x264 constant rate factor, 0-51, lower is better (default 10, as the official save_video)")
      ("preset", po::value<std::string>(), "x264 preset, ultrafast ... veryslow (default medium)")
      ("save-frames", po::value<std::string>(), "also write every frame as a PNG into this folder");
  // clang-format on
  add_vae_tiling_options(spec.options);
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  const std::string latents_path = (*vm)["latents"].as<std::string>();
  const io::LatentsFile file = io::read_latents_file(latents_path);
  const core::Context ctx = core::Context::cpu();
  const std::string vae_path = (*vm)["vae"].as<std::string>();
  model::wan::WanVae vae = model::wan::load_vae(vae_path, ctx);
  WB_CHECK(file.latents.dim(0) == vae.latent_channels(), latents_path, ": latents have ",
           file.latents.dim(0), " channels but ", vae_path, " is the Wan",
           vae.kind() == model::wan::WanVae::Kind::Wan21 ? "2.1" : "2.2", " VAE, which takes ",
           vae.latent_channels());
  if (const auto tiling = vae_tiling_option(*vm, vae)) vae.set_tiling(tiling);
  core::Tensor frames =
      core::Tensor::empty(vae.decoded_shape(file.latents.shape()), core::DType::F32);
  const auto start = std::chrono::steady_clock::now();
  vae.decode(ctx, file.latents, frames);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  io::VideoOptions options;
  options.fps = vm->count("fps")  ? (*vm)["fps"].as<int>()
                : file.record.fps ? static_cast<int>(*file.record.fps)
                                  : (vae.kind() == model::wan::WanVae::Kind::Wan21 ? 16 : 24);
  if (vm->count("crf")) options.crf = (*vm)["crf"].as<int>();
  if (vm->count("preset")) options.preset = (*vm)["preset"].as<std::string>();
  const std::string output = (*vm)["output"].as<std::string>();
  io::write_video(output, frames, options);
  if (vm->count("save-frames"))
    io::write_png_frames((*vm)["save-frames"].as<std::string>(), frames);
  WB_LOG(info) << output << ": " << frames.dim(1) << " frames of " << frames.dim(3) << "x"
               << frames.dim(2) << " at " << options.fps << " fps (decoded in " << seconds << " s"
               << (vae.tiling()
                       ? ", in tiles of " + std::to_string(vae.tiling()->tile * vae.stride()[1]) +
                             " px overlapping by " +
                             std::to_string(vae.tiling()->overlap * vae.stride()[1])
                       : std::string())
               << ")";
  return 0;
}

}  // namespace wanbatch::app
