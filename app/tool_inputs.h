// What the `wanbatch tool` commands share: reading their HDF5 inputs and their model options.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/cli.h"
#include "core/context.h"
#include "core/tensor.h"
#include "io/hdf5_file.h"
#include "model/wan/dit_loader.h"
#include "model/wan/vae.h"
#include "parallel/groups.h"

namespace wanbatch::app {

// A dataset as f32 with `rank` dimensions, also accepting a leading batch dimension of 1 (what a
// PyTorch dump usually has). Throws naming the file and dataset otherwise.
core::Tensor read_input(const io::Hdf5Reader& in, const std::string& name, int rank);

// --lora, --high-noise-lora, --lora-lenient, --num-heads: how the DiT (or Wan2.2's two experts)
// load, shared by tool sample and run.
void add_expert_options(po::options_description& options);
// The load options those give the low-noise (or only) model and the high-noise expert.
std::pair<model::wan::DitLoadOptions, model::wan::DitLoadOptions> expert_load_options(
    const po::variables_map& vm);

// The LoRAs given to a repeatable option (PATH or PATH:STRENGTH).
std::vector<model::wan::LoraFile> lora_option(const po::variables_map& vm, const std::string& key);

// --vae-tile, --vae-tile-size, --vae-tile-overlap (decode and tool vae-decode).
void add_vae_tiling_options(po::options_description& options);
// The tiling those options ask for with this VAE, or none when all three are absent; throws a
// one-line error for settings the VAE cannot take.
std::optional<model::wan::VaeTiling> vae_tiling_option(const po::variables_map& vm,
                                                       const model::wan::WanVae& vae);

// --device auto|cpu|cuda (tool sample and run).
void add_device_option(po::options_description& options);
// The context it asks for: a GPU (the node-local rank's, modulo the devices) when `auto` finds
// one or `cuda` is given, else the CPU.
core::Context device_context(const po::variables_map& vm);

// --ulysses N and --cfg-parallel (tool sample and run).
void add_parallel_options(po::options_description& options);
int ulysses_option(const po::variables_map& vm);
bool cfg_parallel_option(const po::variables_map& vm);
// --shard-weights auto|on|off: the communicator the DiT's block weights are sharded over (the sp
// group; auto: when it has more than one rank), or null.
parallel::Comm* shard_weights_option(const po::variables_map& vm, const parallel::Groups& groups);

// --offload none|blocks|model|blocks,model (tool sample and run; issue 9).
struct OffloadOption {
  bool blocks = false;  // DiT blocks in pinned host memory (model::wan::DitLoadOptions)
  bool model = false;   // models leave the GPU while not in use
};
OffloadOption offload_option(const po::variables_map& vm);

// "WxH" (--size): width and height; throws naming the text otherwise.
std::pair<int64_t, int64_t> parse_size(const std::string& text);

// "path:strength, ..." for output attributes.
std::string describe_loras(const std::vector<model::wan::LoraFile>& loras);

}  // namespace wanbatch::app
