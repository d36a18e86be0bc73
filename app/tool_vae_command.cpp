// wanbatch tool vae-decode / vae-encode: one VAE pass between HDF5 files (DESIGN.md "Command
// line"), for checking the VAEs against the official ones on the same inputs.
#include <chrono>
#include <optional>

#include "app/commands.h"
#include "app/tool_inputs.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"
#include "model/wan/vae_loader.h"
#include "version.h"

namespace wanbatch::app {
namespace {

using core::Tensor;

// Both directions: read `from` from IN.h5, run the VAE, write `to`.
int vae_tool(const Invocation& call, bool decode) {
  CommandSpec spec;
  spec.name = call.command;
  spec.usage = "wanbatch " + call.command + " --vae V --input IN.h5 --output OUT.h5";
  spec.summary = decode ? "Decodes latents with a Wan VAE. IN.h5 holds latents [C,T,h,w] f32 (the "
                          "normalised latents the DiT works in); OUT.h5 gets frames [3,F,H,W] in "
                          "[-1,1], F = 1 + 4(T-1)."
                        : "Encodes a video with a Wan VAE. IN.h5 holds video [3,F,H,W] in [-1,1] "
                          "with F = 4k+1 and sizes multiples of the VAE stride; OUT.h5 gets "
                          "latents [C,(F-1)/4+1,H/s,W/s] (the normalised mean).";
  // clang-format off
  spec.options.add_options()
      ("vae", po::value<std::string>()->required(),
       "VAE weights: Wan2.1_VAE.pth / Wan2.2_VAE.pth or a safetensors file")
      ("input", po::value<std::string>()->required(), "input HDF5 file")
      ("output", po::value<std::string>()->required(), "output HDF5 file (written atomically)");
  // clang-format on
  if (decode) add_vae_tiling_options(spec.options);
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  const std::string input_path = (*vm)["input"].as<std::string>();
  const io::Hdf5Reader in = io::Hdf5Reader::open(input_path);
  const char* from = decode ? "latents" : "video";
  const char* to = decode ? "frames" : "latents";
  const Tensor input = read_input(in, from, 4);

  const core::Context ctx = core::Context::cpu();
  const auto load_start = std::chrono::steady_clock::now();
  model::wan::WanVae vae = model::wan::load_vae((*vm)["vae"].as<std::string>(), ctx);
  const std::optional<model::wan::VaeTiling> tiling =
      decode ? vae_tiling_option(*vm, vae) : std::nullopt;
  vae.set_tiling(tiling);
  const auto run_start = std::chrono::steady_clock::now();
  Tensor output;
  try {
    output =
        Tensor::empty(decode ? vae.decoded_shape(input.shape()) : vae.encoded_shape(input.shape()),
                      core::DType::F32);
    if (decode) {
      vae.decode(ctx, input, output);
    } else {
      vae.encode(ctx, input, output);
    }
  } catch (const Error& e) {
    throw make_error(input_path, ": '", from, "': ", e.what());
  }
  const auto end = std::chrono::steady_clock::now();
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };

  io::Hdf5Writer out((*vm)["output"].as<std::string>());
  out.write(to, output);
  out.attribute("vae", (*vm)["vae"].as<std::string>());
  out.attribute("vae_version", vae.kind() == model::wan::WanVae::Kind::Wan21 ? "2.1" : "2.2");
  out.attribute("load_seconds", seconds(load_start, run_start));
  out.attribute(decode ? "decode_seconds" : "encode_seconds", seconds(run_start, end));
  if (tiling) {
    const int64_t s = vae.config().spatial_stride();
    out.attribute("vae_tile", static_cast<int64_t>(tiling->tile * s));
    out.attribute("vae_tile_overlap", static_cast<int64_t>(tiling->overlap * s));
  }
  out.attribute("wanbatch_version", std::string(WANBATCH_VERSION));
  out.commit();
  WB_LOG(info) << to << " " << core::shape_str(output.shape()) << " written to " << out.path()
               << " (" << seconds(run_start, end) << " s)";
  return 0;
}

}  // namespace

int tool_vae_decode_command(const Invocation& call) { return vae_tool(call, true); }
int tool_vae_encode_command(const Invocation& call) { return vae_tool(call, false); }

}  // namespace wanbatch::app
