// wanbatch run: the batch job (DESIGN.md "Command line", "Data", "Parallelism"). The ranks form
// dp groups of cfg × sp ranks (--cfg-parallel, --ulysses). This file reads and checks the options,
// the files and the manifest, and prints the --dry-run plan; the batch itself is
// jobs::run_batch (jobs/batch_run.h): rank 0 checks which items of this job's shard are already
// complete, then hands the others out through a dynamic queue as groups finish, keeping
// report.json current; each group runs its items through jobs/item_pipeline.h.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "app/commands.h"
#include "app/tool_inputs.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/image_reader.h"
#include "io/video_writer.h"
#include "jobs/batch_run.h"
#include "jobs/item_outputs.h"
#include "jobs/item_pipeline.h"
#include "jobs/manifest.h"
#include "jobs/shard.h"
#include "model/sampling/latent_shape.h"
#include "model/wan/defaults.h"
#include "model/wan/dit_loader.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"
#include "parallel/request_channel.h"
#include "parallel/topology.h"
#include "version.h"

namespace wanbatch::app {
namespace {

namespace fs = std::filesystem;

void require_file(const std::string& option, const std::string& path) {
  WB_CHECK(fs::exists(path), "--", option, " ", path, ": no such file or folder");
}

// The bytes a model takes once loaded, at `bytes_per_value` per weight (fp32 copies on the CPU; the
// DiT's bf16 on a GPU); for other formats (.pth) the size on disk stands in.
double loaded_gib(const std::string& path, double bytes_per_value = 4.0) {
  double bytes = 0;
  try {
    const io::Checkpoint checkpoint = io::Checkpoint::open(path);
    for (const std::string& name : checkpoint.names()) {
      bytes +=
          bytes_per_value * static_cast<double>(core::shape_numel(checkpoint.info(name).shape));
    }
  } catch (const std::exception&) {
    bytes = static_cast<double>(fs::is_directory(path) ? 0 : fs::file_size(path));
  }
  return bytes / (1 << 30);
}

// The --dry-run estimate of memory per rank: the loaded models, and the DiT's activations for the
// largest item at this rank's share of the tokens (residual, q/k/v, attention, FFN hidden, the
// batch of two contexts unless CFG-parallel splits it, and the Ulysses buffers; counted as fp32,
// an upper bound for the GPU's bf16 activations). `sizes`: each item's video size.
std::string memory_estimate(const model::wan::DitConfig& c,
                            const std::vector<jobs::ManifestItem>& items,
                            const std::vector<model::wan::PixelSize>& sizes,
                            const parallel::Topology& topology, const std::string& dit,
                            const std::string& high, const std::string& t5, const std::string& vae,
                            const std::string& clip, bool gpu, bool sharded) {
  const auto stride = model::sampling::vae_stride_for_channels(c.out_dim);
  int64_t tokens = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    const int64_t frames = (items[k].frames - 1) / stride.frames + 1;
    tokens = std::max(tokens, frames / c.patch_size[0] *
                                  (sizes[k].height / stride.height / c.patch_size[1]) *
                                  (sizes[k].width / stride.width / c.patch_size[2]));
  }
  const int64_t batch = topology.cfg == 2 ? 1 : 2;
  const double rows =
      static_cast<double>(batch * parallel::padded_length(tokens, topology.sp) / topology.sp);
  const double per_row = 9.0 * c.dim + c.ffn_dim + (topology.sp > 1 ? 6.0 * c.dim : 0.0);
  const double activations = 4.0 * rows * per_row / (1 << 30);
  const double dit_bytes = gpu ? 2.0 : 4.0;
  // Sharded weights: the blocks (nearly all of the DiT) split over the sp ranks.
  const double weights =
      (loaded_gib(dit, dit_bytes) + (high.empty() ? 0 : loaded_gib(high, dit_bytes))) /
      (sharded ? topology.sp : 1);
  // The text encoder's layers are sharded with the DiT's blocks (its token embedding is a host
  // view either way, counted here all the same: an upper bound).
  const double text = loaded_gib(t5) / (sharded ? topology.sp : 1);
  const double decoder = vae.empty() ? 0 : loaded_gib(vae);
  const double image = clip.empty() ? 0 : loaded_gib(clip);
  char line[360];
  std::snprintf(line, sizeof line,
                "  memory per rank (estimate, %s): DiT weights %.2f GiB, text encoder "
                "%.2f GiB, VAE %.2f GiB, CLIP %.2f GiB, DiT activations %.2f GiB (%lld tokens, "
                "%lld per rank); about %.1f GiB\n",
                gpu ? "GPU" : "CPU backend", weights, text, decoder, image, activations,
                static_cast<long long>(tokens),
                static_cast<long long>(rows / static_cast<double>(batch)),
                weights + text + decoder + image + activations);
  return line;
}

}  // namespace

int run_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = "run";
  spec.usage =
      "wanbatch run --manifest M.jsonl --output-dir DIR --dit W [--dit-high-noise W2] --t5 T5 "
      "--tokenizer spiece.model --vae VAE [options]";
  spec.summary =
      "The batch job: each manifest item (of this shard) becomes DIR/<id>.h5 (latents and how they "
      "were made) and DIR/<id>.mp4, and DIR/report.json lists every item's status. Under mpirun "
      "the ranks form data-parallel groups of --ulysses × (2 with --cfg-parallel) ranks, and rank "
      "0 hands each free group the next item. Items already complete (both files present, the "
      "record matching the item) are skipped, so re-running the same command resumes. An item's "
      "`image` is the video's first frame (I2V and TI2V models); its width × height is then the "
      "pixel budget the image's aspect ratio is fitted into.";
  // clang-format off
  spec.options.add_options()
      ("manifest", po::value<std::string>()->required(), "JSON Lines manifest, one item per line")
      ("output-dir", po::value<std::string>()->required(), "folder for the outputs and report.json")
      ("dit", po::value<std::string>()->required(),
       "DiT weights: the only model, or Wan2.2's low-noise expert with --dit-high-noise")
      ("dit-high-noise", po::value<std::string>(), "Wan2.2 high-noise expert weights")
      ("boundary", po::value<double>(),
       "switch to the low-noise expert below boundary·1000 (default: the model's)")
      ("lightning", po::bool_switch(),
       "Wan2.2-Lightning defaults for items: euler, 4 steps, shift 5, guide scale 1")
      ("t5", po::value<std::string>()->required(), "umT5 text encoder weights")
      ("tokenizer", po::value<std::string>()->required(), "SentencePiece model (spiece.model)")
      ("text-len", po::value<int64_t>()->default_value(512), "tokens a prompt is cut to")
      ("embedding-cache", po::value<std::string>(),
       "folder of cached text encodings, shared between runs")
      ("vae", po::value<std::string>(),
       "VAE weights (needed unless --no-video; with images always: it encodes them)")
      ("no-video", po::bool_switch(), "write latents only, no videos")
      ("clip", po::value<std::string>(),
       "CLIP vision weights for Wan2.1 I2V's image branch (the official "
       "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, or clip_vision_h.safetensors)")
      ("crf", po::value<int>(), "x264 constant rate factor (default 10)")
      ("preset", po::value<std::string>(), "x264 preset (default medium)")
      ("shard", po::value<std::string>(),
       "I/N: this job does shard I (0-based) of N of the manifest (default: the SLURM job "
       "array, else the whole manifest)")
      ("dry-run", po::bool_switch(),
       "validate the manifest and the files, print the plan, and exit without writing anything");
  // clang-format on
  add_expert_options(spec.options);
  add_vae_tiling_options(spec.options);
  add_parallel_options(spec.options);
  add_device_option(spec.options);
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  parallel::MpiRuntime runtime;
  const std::unique_ptr<parallel::Comm> comm = parallel::world(runtime);
  const int rank = comm->rank(), world = comm->size();

  const std::string manifest_path = (*vm)["manifest"].as<std::string>();
  const fs::path out_dir = (*vm)["output-dir"].as<std::string>();
  const std::string dit_path = (*vm)["dit"].as<std::string>();
  const bool two_experts = vm->count("dit-high-noise") > 0;
  const std::string high_path = two_experts ? (*vm)["dit-high-noise"].as<std::string>() : "";
  const std::string t5_path = (*vm)["t5"].as<std::string>();
  const std::string tokenizer_path = (*vm)["tokenizer"].as<std::string>();
  const int64_t text_len = (*vm)["text-len"].as<int64_t>();
  const bool no_video = (*vm)["no-video"].as<bool>();
  const bool dry_run = (*vm)["dry-run"].as<bool>();
  WB_CHECK(text_len >= 1, "--text-len must be at least 1, got ", text_len);
  WB_CHECK(two_experts || (!vm->count("boundary") && !vm->count("high-noise-lora")),
           "--boundary and --high-noise-lora need --dit-high-noise");
  WB_CHECK(no_video || vm->count("vae"), "give --vae (or --no-video for latents only)");
  const std::string vae_path = vm->count("vae") ? (*vm)["vae"].as<std::string>() : "";
  const std::string clip_path = vm->count("clip") ? (*vm)["clip"].as<std::string>() : "";
  WB_CHECK(no_video || io::video_built(),
           "this wanbatch was built without FFmpeg: give --no-video for latents only");

  // Everything is checked before any weights load: files, the model's shape, the manifest.
  require_file("dit", dit_path);
  if (two_experts) require_file("dit-high-noise", high_path);
  require_file("t5", t5_path);
  require_file("tokenizer", tokenizer_path);
  if (!vae_path.empty()) require_file("vae", vae_path);
  if (!clip_path.empty()) require_file("clip", clip_path);
  const auto [low_options, high_options] = expert_load_options(*vm);
  for (const auto& l : low_options.loras) require_file("lora", l.path);
  for (const auto& l : high_options.loras) require_file("high-noise-lora", l.path);

  const model::wan::DitConfig config = model::wan::read_dit_config(dit_path, low_options.num_heads);
  const model::wan::GenerationDefaults generation =
      (*vm)["lightning"].as<bool>() ? model::wan::lightning_defaults()
                                    : model::wan::generation_defaults(config, two_experts);
  WB_CHECK(!config.image_branch || !clip_path.empty(), dit_path, " is ", config.variant,
           " with the CLIP image branch: give --clip PATH (the CLIP vision weights, "
           "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth)");
  WB_CHECK(config.image_branch || clip_path.empty(), "--clip is for models with the CLIP image ",
           "branch (Wan2.1 I2V); ", dit_path, " (", config.variant, ") has none");
  const jobs::JobDefaults defaults =
      jobs::job_defaults(generation, config, two_experts, (*vm)["lightning"].as<bool>());
  const std::vector<jobs::ManifestItem> all_items = jobs::read_manifest(manifest_path, defaults);
  // Images are encoded by the VAE, also when no video is written.
  const bool images = std::any_of(all_items.begin(), all_items.end(),
                                  [](const jobs::ManifestItem& it) { return !it.image.empty(); });
  WB_CHECK(!images || !vae_path.empty(), manifest_path,
           ": items with an image need --vae (the image is encoded by the VAE, also with "
           "--no-video)");
  WB_CHECK(!images || io::video_built(), manifest_path,
           ": items with an image, but this wanbatch was built without FFmpeg, which reads them");
  const std::string load_vae_path = no_video && !images ? "" : vae_path;
  std::optional<std::string> shard_option;
  if (vm->count("shard")) shard_option = (*vm)["shard"].as<std::string>();
  const jobs::Shard shard = jobs::resolve_shard(shard_option);
  const std::vector<jobs::ManifestItem> items = jobs::shard_items(all_items, shard);
  const double boundary =
      vm->count("boundary")
          ? (*vm)["boundary"].as<double>()
          // The model's, also under --lightning (I2V-A14B switches at 0.9, T2V-A14B at 0.875).
          : model::wan::generation_defaults(config, two_experts).boundary;
  const core::Context ctx = device_context(*vm);
  const parallel::Groups groups =
      parallel::Groups::make(*comm, ulysses_option(*vm), cfg_parallel_option(*vm),
                             static_cast<int>(config.num_heads), ctx);
  WB_CHECK(parallel::RequestChannel::supported(runtime),
           "the item queue needs an MPI library with MPI_THREAD_MULTIPLE support");

  if (dry_run) {
    int status = 0;
    if (rank == 0) {
      // Image items: the size their image gives (read here), or why it cannot be read.
      std::vector<model::wan::PixelSize> sizes;
      std::vector<std::string> image_notes;
      for (const auto& it : items) {
        sizes.push_back({it.width, it.height});
        image_notes.emplace_back();
        if (it.image.empty()) continue;
        try {
          const io::Rgb8Image image = io::read_image_rgb8(it.image);
          sizes.back() = jobs::item_size(it, config.in_dim, &image);
          image_notes.back() = ", image " + it.image + " (" + std::to_string(image.width) + "x" +
                               std::to_string(image.height) + ") → " +
                               std::to_string(sizes.back().width) + "x" +
                               std::to_string(sizes.back().height);
        } catch (const std::exception& e) {
          image_notes.back() = ", image FAILS: " + std::string(e.what());
          status = 1;
        }
      }
      std::ostringstream plan;
      plan << "plan: " << manifest_path << ": " << all_items.size() << " items, shard "
           << shard.index << "/" << shard.count << ": " << items.size() << " items, " << world
           << " rank" << (world == 1 ? "" : "s") << " on " << ctx.device().str() << ": "
           << groups.describe() << " (items go to the dp groups through a dynamic queue)\n"
           << "  model: " << config.variant << " " << dit_path
           << (two_experts ? " + high-noise " + high_path + ", boundary " + std::to_string(boundary)
                           : "")
           << "\n  loras: " << describe_loras(low_options.loras)
           << (two_experts ? " | high-noise: " + describe_loras(high_options.loras) : "")
           << "\n  text encoder: " << t5_path << ", tokenizer " << tokenizer_path << ", text-len "
           << text_len << "\n  vae: " << (load_vae_path.empty() ? "none" : load_vae_path)
           << (no_video ? (images ? " (--no-video: encodes the images only)" : " (--no-video)")
                        : "")
           << "\n  clip: " << (clip_path.empty() ? "none" : clip_path)
           << "\n  output: " << out_dir.string() << "\n"
           << memory_estimate(config, items, sizes, groups.topology, dit_path, high_path, t5_path,
                              load_vae_path, clip_path, ctx.device().is_cuda(),
                              shard_weights_option(*vm, groups) != nullptr)
           << "  DiT weights: "
           << (shard_weights_option(*vm, groups) ? "blocks sharded over the sp ranks"
                                                 : "whole on every rank")
           << (offload_option(*vm).blocks ? ", blocks in pinned host memory" : "")
           << (offload_option(*vm).model ? ", models leave the GPU while not in use" : "") << "\n";
      for (size_t k = 0; k < items.size(); ++k) {
        const auto& it = items[k];
        plan << "  [" << k + 1 << "/" << items.size() << "] " << it.id << " (line " << it.line
             << ") " << (it.image.empty() ? "" : "within ") << it.width << "x" << it.height << ", "
             << it.frames << " frames, " << it.solver << " " << it.steps << " steps, shift "
             << it.shift << ", guide " << it.guide_scale
             << (it.guide_scale_high ? "," + std::to_string(*it.guide_scale_high) : "")
             << ", noise " << jobs::noise_source(it) << image_notes[k] << "\n";
      }
      std::cout << plan.str() << std::flush;
    }
    return status;
  }

  jobs::BatchRunOptions batch;
  batch.manifest = manifest_path;
  batch.output_dir = out_dir;
  batch.shard = shard;
  jobs::PipelineOptions& pipeline_options = batch.pipeline;
  pipeline_options.dit = dit_path;
  pipeline_options.dit_high = high_path;
  pipeline_options.low_load = low_options;
  pipeline_options.high_load = high_options;
  pipeline_options.low_load.shard_comm = shard_weights_option(*vm, groups);
  pipeline_options.high_load.shard_comm = pipeline_options.low_load.shard_comm;
  const OffloadOption offload = offload_option(*vm);
  pipeline_options.low_load.offload_blocks = offload.blocks;
  pipeline_options.high_load.offload_blocks = offload.blocks;
  pipeline_options.offload_models = offload.model;
  pipeline_options.boundary = boundary;
  pipeline_options.t5 = t5_path;
  pipeline_options.tokenizer = tokenizer_path;
  if (vm->count("embedding-cache")) {
    pipeline_options.embedding_cache = (*vm)["embedding-cache"].as<std::string>();
  }
  pipeline_options.text_len = text_len;
  pipeline_options.vae = load_vae_path;
  pipeline_options.write_video = !no_video;
  pipeline_options.clip = clip_path;
  pipeline_options.vae_tiling = [&](const model::wan::WanVae& vae) {
    return vae_tiling_option(*vm, vae);
  };
  if (vm->count("crf")) pipeline_options.video.crf = (*vm)["crf"].as<int>();
  if (vm->count("preset")) pipeline_options.video.preset = (*vm)["preset"].as<std::string>();
  pipeline_options.loras = describe_loras(low_options.loras);
  pipeline_options.high_loras = describe_loras(high_options.loras);
  pipeline_options.version = WANBATCH_VERSION;
  return jobs::run_batch(runtime, *comm, ctx, groups, items, batch);
}

}  // namespace wanbatch::app
