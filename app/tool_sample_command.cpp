// wanbatch tool sample: the whole sampling loop from HDF5 inputs (noise or a seed, the prompt's
// and negative prompt's text-encoder outputs) to the final latents (DESIGN.md "Command line").
#include <chrono>
#include <sstream>

#include "app/commands.h"
#include "app/tool_inputs.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/hdf5_file.h"
#include "io/latents_file.h"
#include "model/sampling/latent_shape.h"
#include "model/sampling/philox_noise.h"
#include "model/sampling/sampler.h"
#include "model/wan/defaults.h"
#include "model/wan/dit_loader.h"
#include "parallel/comm.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"
#include "version.h"

namespace wanbatch::app {
namespace {

using core::Tensor;
namespace sampling = model::sampling;

// "G" or "G,G_high".
std::pair<double, std::optional<double>> parse_guide_scales(const std::string& text) {
  std::pair<double, std::optional<double>> scales;
  std::istringstream in(text);
  char comma = 0;
  double high = 0;
  if (!(in >> scales.first) || (in >> comma && (comma != ',' || !(in >> high)))) {
    throw make_error("--guide-scale '", text, "': expected G or G_LOW,G_HIGH");
  }
  if (comma == ',') scales.second = high;
  WB_CHECK(in.eof() || (in >> std::ws).eof(), "--guide-scale '", text,
           "': expected G or G_LOW,G_HIGH");
  return scales;
}

}  // namespace

int tool_sample_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = call.command;
  spec.usage =
      "wanbatch tool sample --low-noise W [--high-noise W2 --boundary B] [--lora L[:S]]... "
      "[--high-noise-lora L[:S]]... --input IN.h5 --output OUT.h5 --solver unipc|dpm++|euler "
      "--steps N --shift S --guide-scale G[,G_high]";
  spec.summary =
      "Runs the sampling loop. IN.h5 holds context [n,text_dim] (the prompt's text-encoder "
      "output), context_null (the negative prompt's; needed unless every guide scale is 1), "
      "noise [C,F,H,W] (or give --seed with --size and --frames, or --init-noise), and for I2V y "
      "and clip. OUT.h5 gets latents [C,F,H,W] f32, timesteps, and attributes saying how they "
      "were made (solver, steps, shift, guide scales, noise, weights and their fingerprints, "
      "LoRAs, timings). Options left out take the model's official defaults. --low-noise is the "
      "only model "
      "of a single-model variant; with --high-noise it is Wan2.2's low-noise expert.";
  // clang-format off
  spec.options.add_options()
      ("low-noise", po::value<std::string>()->required(), "DiT weights (the low-noise expert)")
      ("high-noise", po::value<std::string>(), "Wan2.2 high-noise expert weights")
      ("boundary", po::value<double>(),
       "switch to the low-noise expert below boundary·1000 (default 0.875, 0.9 for I2V)")
      ("input", po::value<std::string>()->required(), "input HDF5 file")
      ("output", po::value<std::string>()->required(), "output HDF5 file (written atomically)")
      ("solver", po::value<std::string>(), "unipc, dpm++ or euler (default: the model's, unipc)")
      ("steps", po::value<int>(), "sampling steps (default: the model's)")
      ("shift", po::value<double>(), "flow shift (default: the model's)")
      ("guide-scale", po::value<std::string>(),
       "classifier-free guidance scale G, or G_LOW,G_HIGH for the two experts; 1 = no guidance "
       "(default: the model's)")
      ("lightning", po::bool_switch(),
       "Wan2.2-Lightning defaults: euler, 4 steps, shift 5, guide scale 1 (flags still override)")
      ("seed", po::value<uint64_t>(), "noise seed, when IN.h5 has no noise")
      ("size", po::value<std::string>(), "WIDTHxHEIGHT of the video, with --seed")
      ("frames", po::value<int64_t>(), "frames of the video (4k+1), with --seed")
      ("init-noise", po::value<std::string>(), "HDF5 file whose 'noise' dataset is the start");
  // clang-format on
  add_expert_options(spec.options);
  add_parallel_options(spec.options);
  add_device_option(spec.options);
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  // Explicit sampling options are checked now; the model's defaults fill the rest after loading.
  std::optional<sampling::SolverKind> solver;
  if (vm->count("solver")) solver = sampling::parse_solver((*vm)["solver"].as<std::string>());
  std::pair<double, std::optional<double>> guide;
  if (vm->count("guide-scale")) guide = parse_guide_scales((*vm)["guide-scale"].as<std::string>());
  if (vm->count("steps") || vm->count("shift")) {
    sampling::make_schedule(solver.value_or(sampling::SolverKind::UniPC),
                            vm->count("steps") ? (*vm)["steps"].as<int>() : 1,
                            vm->count("shift") ? (*vm)["shift"].as<double>() : 1.0);
  }
  const bool two_experts = vm->count("high-noise") > 0;
  WB_CHECK(two_experts || (!vm->count("boundary") && !vm->count("high-noise-lora")),
           "--boundary and --high-noise-lora need --high-noise");

  // Inputs first: a bad file fails before the weights load.
  const std::string input_path = (*vm)["input"].as<std::string>();
  const io::Hdf5Reader in = io::Hdf5Reader::open(input_path);
  sampling::SampleConditions conditions;
  conditions.context = read_input(in, "context", 2);
  if (in.has("context_null")) conditions.context_null = read_input(in, "context_null", 2);
  if (in.has("y")) conditions.y = read_input(in, "y", 4);
  if (in.has("clip")) conditions.clip = read_input(in, "clip", 2);

  const auto [low_options, high_options] = expert_load_options(*vm);

  // The model's shape from its tensor list alone: defaults and the latent size are settled, and
  // checked, before the weights load.
  const std::string low_path = (*vm)["low-noise"].as<std::string>();
  const model::wan::DitConfig low_config =
      model::wan::read_dit_config(low_path, low_options.num_heads);

  const model::wan::GenerationDefaults defaults =
      (*vm)["lightning"].as<bool>() ? model::wan::lightning_defaults()
                                    : model::wan::generation_defaults(low_config, two_experts);
  sampling::SamplerOptions options;
  options.solver = solver.value_or(sampling::parse_solver(defaults.solver));
  options.steps = vm->count("steps") ? (*vm)["steps"].as<int>() : defaults.steps;
  options.shift = vm->count("shift") ? (*vm)["shift"].as<double>() : defaults.shift;
  if (vm->count("guide-scale")) {
    std::tie(options.guide_scale, options.guide_scale_high) = guide;
  } else {
    options.guide_scale = defaults.guide_scale;
    options.guide_scale_high = defaults.guide_scale_high;
  }
  // Wan2.2's boundaries: 0.875 for T2V, 0.9 for I2V.
  options.boundary = vm->count("boundary") ? (*vm)["boundary"].as<double>() : defaults.boundary;
  WB_LOG(info) << sampling::solver_name(options.solver) << ", " << options.steps << " steps, shift "
               << options.shift << ", guide scale " << options.guide_scale
               << (options.guide_scale_high ? "," + std::to_string(*options.guide_scale_high) : "")
               << (two_experts ? ", boundary " + std::to_string(options.boundary) : "");

  const bool guided =
      options.guide_scale != 1.0 ||
      (two_experts && options.guide_scale_high.value_or(options.guide_scale) != 1.0);
  WB_CHECK(!guided || conditions.context_null.defined(), input_path,
           " has no 'context_null', which guidance needs (the negative prompt's text-encoder "
           "output); give it, or --guide-scale 1");

  Tensor noise;
  std::string noise_source;
  if (vm->count("init-noise")) {
    noise_source = (*vm)["init-noise"].as<std::string>();
    noise = read_input(io::Hdf5Reader::open(noise_source), "noise", 4);
  } else if (in.has("noise")) {
    noise = read_input(in, "noise", 4);
    noise_source = input_path;
  } else {
    WB_CHECK(vm->count("seed") && vm->count("size") && vm->count("frames"), input_path,
             " has no 'noise': give --seed with --size and --frames, or --init-noise");
    const auto [width, height] = parse_size((*vm)["size"].as<std::string>());
    const core::Shape shape =
        sampling::latent_shape(low_config.out_dim, width, height, (*vm)["frames"].as<int64_t>());
    noise = sampling::initial_noise((*vm)["seed"].as<uint64_t>(), shape);
    noise_source = "philox seed " + std::to_string((*vm)["seed"].as<uint64_t>());
  }
  WB_CHECK(noise.dim(0) == low_config.out_dim, "noise ", core::shape_str(noise.shape()), " has ",
           noise.dim(0), " channels; ", low_config.variant, " makes ", low_config.out_dim);

  // Under mpirun the ranks share this one sample: Ulysses over sp ranks, the guidance passes over a
  // cfg pair; rank 0 writes the output.
  parallel::MpiRuntime runtime;
  const std::unique_ptr<parallel::Comm> world = parallel::world(runtime);
  const core::Context ctx = device_context(*vm);
  const parallel::Groups groups =
      parallel::Groups::make(*world, ulysses_option(*vm), cfg_parallel_option(*vm),
                             static_cast<int>(low_config.num_heads), ctx);
  WB_CHECK(groups.topology.dp == 1, "tool sample makes one sample: run it on --ulysses × (2 with ",
           "--cfg-parallel) ranks, not ", world->size(), " (", groups.describe(), ")");
  options.cfg = groups.cfg.get();
  WB_LOG(info) << "on " << ctx.device().str() << ", " << groups.describe();

  const auto load_start = std::chrono::steady_clock::now();
  parallel::Comm* const shard_comm = shard_weights_option(*vm, groups);
  const OffloadOption offload = offload_option(*vm);
  options.offload_models = offload.model;
  auto with_shards = [shard_comm, offload](model::wan::DitLoadOptions options) {
    options.shard_comm = shard_comm;
    options.offload_blocks = offload.blocks;
    return options;
  };
  model::wan::WanDit low = model::wan::load_dit(low_path, ctx, with_shards(low_options));
  low.set_sequence_parallel(groups.sp.get());
  std::optional<model::wan::WanDit> high;
  if (two_experts) {
    high.emplace(model::wan::load_dit((*vm)["high-noise"].as<std::string>(), ctx,
                                      with_shards(high_options)));
    WB_CHECK(high->config().in_dim == low.config().in_dim &&
                 high->config().out_dim == low.config().out_dim,
             "the experts do not match: high-noise ", high->config().variant, ", low-noise ",
             low.config().variant);
    high->set_sequence_parallel(groups.sp.get());
  }
  const auto run_start = std::chrono::steady_clock::now();
  sampling::SampleResult result;
  try {
    result = sampling::sample(ctx, {&low, high ? &*high : nullptr}, options, noise, conditions);
  } catch (const Error& e) {
    throw make_error(input_path, ": ", e.what());
  }
  const auto end = std::chrono::steady_clock::now();
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };

  io::LatentsRecord record;
  record.noise = noise_source;
  if (vm->count("seed") && !vm->count("init-noise") && !in.has("noise")) {
    record.seed = (*vm)["seed"].as<uint64_t>();
    const auto [width, height] = parse_size((*vm)["size"].as<std::string>());
    record.width = width;
    record.height = height;
    record.frames = (*vm)["frames"].as<int64_t>();
  }
  record.solver = sampling::solver_name(options.solver);
  record.steps = options.steps;
  record.shift = options.shift;
  record.guide_scale = options.guide_scale;
  record.guide_scale_high = options.guide_scale_high;
  if (high) record.boundary = options.boundary;
  record.timesteps.assign(result.timesteps.begin(), result.timesteps.end());
  record.model_variant = low.config().variant;
  record.weights = low_path;
  record.weights_fingerprint = io::Checkpoint::open(low_path).fingerprint();
  record.loras = describe_loras(low_options.loras);
  if (high) {
    record.high_noise_weights = (*vm)["high-noise"].as<std::string>();
    record.high_noise_fingerprint = io::Checkpoint::open(record.high_noise_weights).fingerprint();
    record.high_noise_loras = describe_loras(high_options.loras);
  }
  record.world_size = world->size();
  record.sp_size = groups.topology.sp;
  record.load_seconds = seconds(load_start, run_start);
  record.sample_seconds = seconds(run_start, end);
  record.wanbatch_version = WANBATCH_VERSION;
  const std::string output = (*vm)["output"].as<std::string>();
  if (world->rank() != 0) return 0;
  io::write_latents_file(output, result.latents.to(core::Device::cpu()), record);
  WB_LOG(info) << "latents " << core::shape_str(result.latents.shape()) << " written to " << output
               << " (" << options.steps << " steps in " << seconds(run_start, end) << " s)";
  return 0;
}

}  // namespace wanbatch::app
