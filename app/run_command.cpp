// wanbatch run: the batch job (DESIGN.md "Command line", "Data"). Every MPI rank loads the models
// and is its own data-parallel group (world = dp; Ulysses and cfg-parallel come later). The items
// of this job's shard go to the ranks round-robin (item k of the shard to rank k mod world): Comm
// has no point-to-point messages yet, so there is no dynamic queue. Each item is skipped when its
// outputs are complete and match it, else encoded, sampled, checked for NaN, written to
// DIR/<id>.h5 and decoded to DIR/<id>.mp4, each file atomically. A failing item is recorded and
// the batch goes on. Each rank writes DIR/.report.rank<r>.json; after a barrier rank 0 merges
// them into DIR/report.json.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "app/commands.h"
#include "app/tool_inputs.h"
#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/hdf5_file.h"
#include "io/latents_file.h"
#include "io/t5_tokenizer.h"
#include "io/video_writer.h"
#include "jobs/item_outputs.h"
#include "jobs/manifest.h"
#include "jobs/run_report.h"
#include "jobs/shard.h"
#include "model/sampling/latent_shape.h"
#include "model/sampling/philox_noise.h"
#include "model/sampling/sampler.h"
#include "model/wan/defaults.h"
#include "model/wan/dit_loader.h"
#include "model/wan/t5_loader.h"
#include "model/wan/text_embedding_cache.h"
#include "model/wan/vae_loader.h"
#include "parallel/comm.h"
#include "parallel/mpi_runtime.h"
#include "version.h"

namespace wanbatch::app {
namespace {

namespace fs = std::filesystem;
namespace sampling = model::sampling;
using core::Tensor;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void require_file(const std::string& option, const std::string& path) {
  WB_CHECK(fs::exists(path), "--", option, " ", path, ": no such file or folder");
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
      "every rank loads the models and takes items round-robin (data parallel). Items already "
      "complete (both files present, the record matching the item) are skipped, so re-running the "
      "same command resumes.";
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
      ("vae", po::value<std::string>(), "VAE weights (needed unless --no-video)")
      ("no-video", po::bool_switch(), "write latents only, no videos")
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
  WB_CHECK(no_video || io::video_built(),
           "this wanbatch was built without FFmpeg: give --no-video for latents only");

  // Everything is checked before any weights load: files, the model's shape, the manifest.
  require_file("dit", dit_path);
  if (two_experts) require_file("dit-high-noise", high_path);
  require_file("t5", t5_path);
  require_file("tokenizer", tokenizer_path);
  if (!no_video) require_file("vae", (*vm)["vae"].as<std::string>());
  const auto [low_options, high_options] = expert_load_options(*vm);
  for (const auto& l : low_options.loras) require_file("lora", l.path);
  for (const auto& l : high_options.loras) require_file("high-noise-lora", l.path);

  const model::wan::DitConfig config = model::wan::read_dit_config(dit_path, low_options.num_heads);
  const model::wan::GenerationDefaults generation =
      (*vm)["lightning"].as<bool>() ? model::wan::lightning_defaults()
                                    : model::wan::generation_defaults(config, two_experts);
  const jobs::JobDefaults defaults = jobs::job_defaults(generation, config.out_dim, two_experts);
  const std::vector<jobs::ManifestItem> all_items = jobs::read_manifest(manifest_path, defaults);
  std::optional<std::string> shard_option;
  if (vm->count("shard")) shard_option = (*vm)["shard"].as<std::string>();
  const jobs::Shard shard = jobs::resolve_shard(shard_option);
  const std::vector<jobs::ManifestItem> items = jobs::shard_items(all_items, shard);
  const double boundary =
      vm->count("boundary") ? (*vm)["boundary"].as<double>() : generation.boundary;

  if (dry_run) {
    if (rank == 0) {
      std::ostringstream plan;
      plan << "plan: " << manifest_path << ": " << all_items.size() << " items, shard "
           << shard.index << "/" << shard.count << ": " << items.size() << " items, " << world
           << " rank" << (world == 1 ? "" : "s") << " (data parallel, round-robin)\n"
           << "  model: " << config.variant << " " << dit_path
           << (two_experts ? " + high-noise " + high_path + ", boundary " + std::to_string(boundary)
                           : "")
           << "\n  loras: " << describe_loras(low_options.loras)
           << (two_experts ? " | high-noise: " + describe_loras(high_options.loras) : "")
           << "\n  text encoder: " << t5_path << ", tokenizer " << tokenizer_path << ", text-len "
           << text_len
           << "\n  vae: " << (no_video ? "none (--no-video)" : (*vm)["vae"].as<std::string>())
           << "\n  output: " << out_dir.string() << "\n";
      for (size_t k = 0; k < items.size(); ++k) {
        const auto& it = items[k];
        plan << "  [" << k + 1 << "/" << items.size() << "] rank " << k % world << ": " << it.id
             << " (line " << it.line << ") " << it.width << "x" << it.height << ", " << it.frames
             << " frames, " << it.solver << " " << it.steps << " steps, shift " << it.shift
             << ", guide " << it.guide_scale
             << (it.guide_scale_high ? "," + std::to_string(*it.guide_scale_high) : "")
             << ", noise " << jobs::noise_source(it) << "\n";
      }
      std::cout << plan.str() << std::flush;
    }
    return 0;
  }

  if (rank == 0) fs::create_directories(out_dir);
  comm->barrier();

  // This rank's items: k ≡ rank (mod world).
  std::vector<size_t> mine;
  for (size_t k = static_cast<size_t>(rank); k < items.size(); k += static_cast<size_t>(world)) {
    mine.push_back(k);
  }
  WB_LOG(info) << "shard " << shard.index << "/" << shard.count << ": " << items.size()
               << " items over " << world << " ranks; this rank has " << mine.size();

  // Which of mine are already complete (nothing loads for a rank with nothing to do).
  std::vector<jobs::ItemResult> results;
  std::vector<size_t> todo;
  for (size_t k : mine) {
    const auto& item = items[k];
    const std::string h5 = jobs::latents_path(out_dir, item);
    const std::string mp4 = jobs::video_path(out_dir, item);
    if (jobs::item_complete(out_dir, item, !no_video)) {
      jobs::ItemResult r;
      r.id = item.id;
      r.index = k;
      r.rank = rank;
      r.status = "skipped-complete";
      r.latents = h5;
      if (!no_video) r.video = mp4;
      results.push_back(r);
      WB_LOG(info) << item.id << ": complete, skipped";
    } else {
      todo.push_back(k);
    }
  }

  const core::Context ctx = core::Context::cpu();
  std::optional<model::wan::WanDit> low, high;
  std::optional<model::wan::WanVae> vae;
  std::optional<io::T5Tokenizer> tokenizer;
  std::optional<model::wan::T5Encoder> encoder;
  std::optional<model::wan::TextEmbeddingCache> cache;
  std::string low_fingerprint, high_fingerprint;
  double load_seconds = 0;
  // A rank that cannot load its models ends the job on every rank (the others would wait at the
  // report's collective forever).
  if (!todo.empty()) try {
      const auto load_start = Clock::now();
      tokenizer.emplace(tokenizer_path);
      cache.emplace(model::wan::TextEmbeddingCache::model_key(
                        tokenizer_path, model::wan::t5_weights_fingerprint(t5_path), text_len),
                    vm->count("embedding-cache") ? (*vm)["embedding-cache"].as<std::string>() : "");
      low.emplace(model::wan::load_dit(dit_path, ctx, low_options));
      low_fingerprint = io::Checkpoint::open(dit_path).fingerprint();
      if (two_experts) {
        high.emplace(model::wan::load_dit(high_path, ctx, high_options));
        high_fingerprint = io::Checkpoint::open(high_path).fingerprint();
        WB_CHECK(high->config().in_dim == low->config().in_dim &&
                     high->config().out_dim == low->config().out_dim,
                 "the experts do not match: high-noise ", high->config().variant, ", low-noise ",
                 low->config().variant);
      }
      if (!no_video) {
        vae.emplace(model::wan::load_vae((*vm)["vae"].as<std::string>(), ctx));
        WB_CHECK(vae->latent_channels() == config.out_dim, (*vm)["vae"].as<std::string>(),
                 " takes ", vae->latent_channels(), " latent channels; ", dit_path, " makes ",
                 config.out_dim);
        if (const auto tiling = vae_tiling_option(*vm, *vae)) vae->set_tiling(tiling);
      }
      load_seconds = seconds_since(load_start);
      WB_LOG(info) << "models loaded in " << load_seconds << " s";
    } catch (const std::exception& e) {
      if (world > 1) comm->abort(std::string("loading the models: ") + e.what());
      throw;
    }
  auto encode = [&](const std::string& text) {
    return cache->get(text, [&] {
      if (!encoder) {
        encoder.emplace(model::wan::load_t5_encoder(t5_path, ctx));
        WB_CHECK(tokenizer->vocab_size() <= encoder->config().vocab, tokenizer_path, ": ",
                 tokenizer->vocab_size(), " pieces, more than the ", encoder->config().vocab,
                 " embeddings of ", t5_path);
      }
      const io::T5Tokens t = tokenizer->tokenize(text, text_len);
      const std::vector<int64_t> real_ids(t.ids.begin(), t.ids.begin() + t.length);
      model::wan::TextEmbedding e;
      e.ids = Tensor::from_vector(real_ids, {t.length});
      e.context = encoder->encode(ctx, e.ids, t.length);
      return e;
    });
  };

  io::VideoOptions video_options;
  if (vm->count("crf")) video_options.crf = (*vm)["crf"].as<int>();
  if (vm->count("preset")) video_options.preset = (*vm)["preset"].as<std::string>();

  const auto batch_start = Clock::now();
  for (size_t n = 0; n < todo.size(); ++n) {
    const auto& item = items[todo[n]];
    jobs::ItemResult r;
    r.id = item.id;
    r.index = todo[n];
    r.rank = rank;
    const auto item_start = Clock::now();
    const std::string h5 = jobs::latents_path(out_dir, item);
    const std::string mp4 = jobs::video_path(out_dir, item);
    try {
      auto t = Clock::now();
      sampling::SamplerOptions options;
      options.solver = sampling::parse_solver(item.solver);
      options.steps = static_cast<int>(item.steps);
      options.shift = item.shift;
      options.guide_scale = item.guide_scale;
      options.guide_scale_high = item.guide_scale_high;
      options.boundary = boundary;
      options.item = item.id;
      const bool guided =
          options.guide_scale != 1.0 ||
          (two_experts && options.guide_scale_high.value_or(options.guide_scale) != 1.0);
      sampling::SampleConditions conditions;
      conditions.context = encode(item.prompt).context;
      if (guided) conditions.context_null = encode(item.negative_prompt).context;
      r.encode_seconds = seconds_since(t);

      const core::Shape shape =
          sampling::latent_shape(config.out_dim, item.width, item.height, item.frames);
      Tensor noise;
      if (item.init_noise.empty()) {
        noise = sampling::initial_noise(item.seed, shape);
      } else {
        noise = read_input(io::Hdf5Reader::open(item.init_noise), "noise", 4);
        WB_CHECK(noise.shape() == shape, item.init_noise, ": noise ",
                 core::shape_str(noise.shape()), " does not fit ", item.width, "x", item.height,
                 ", ", item.frames, " frames, which need ", core::shape_str(shape));
      }
      t = Clock::now();
      const sampling::SampleResult result =
          sampling::sample(ctx, {&*low, high ? &*high : nullptr}, options, noise, conditions);
      r.sample_seconds = seconds_since(t);
      const float* p = result.latents.data<float>();
      for (int64_t i = 0; i < result.latents.numel(); ++i) {
        WB_CHECK(std::isfinite(p[i]), "the latents hold NaN or infinity (element ", i, ")");
      }

      io::LatentsRecord record;
      record.id = item.id;
      record.prompt = item.prompt;
      record.negative_prompt = item.negative_prompt;
      record.seed = item.seed;
      record.noise = jobs::noise_source(item);
      record.width = item.width;
      record.height = item.height;
      record.frames = item.frames;
      record.fps = item.fps;
      record.solver = item.solver;
      record.steps = item.steps;
      record.shift = item.shift;
      record.guide_scale = item.guide_scale;
      record.guide_scale_high = item.guide_scale_high;
      if (high) record.boundary = boundary;
      record.timesteps.assign(result.timesteps.begin(), result.timesteps.end());
      record.model_variant = low->config().variant;
      record.weights = dit_path;
      record.weights_fingerprint = low_fingerprint;
      record.loras = describe_loras(low_options.loras);
      if (high) {
        record.high_noise_weights = high_path;
        record.high_noise_fingerprint = high_fingerprint;
        record.high_noise_loras = describe_loras(high_options.loras);
      }
      record.world_size = world;
      record.sp_size = 1;
      record.load_seconds = load_seconds;
      record.sample_seconds = r.sample_seconds;
      record.wanbatch_version = WANBATCH_VERSION;
      if (!no_video) {
        // The video first: the .h5 marks the item done, so it is written last.
        t = Clock::now();
        Tensor frames = Tensor::empty(vae->decoded_shape(result.latents.shape()), core::DType::F32);
        vae->decode(ctx, result.latents, frames);
        io::VideoOptions vo = video_options;
        vo.fps = static_cast<int>(item.fps);
        io::write_video(mp4, frames, vo);
        r.decode_seconds = seconds_since(t);
        r.video = mp4;
      }
      io::write_latents_file(h5, result.latents, record);
      r.latents = h5;
      r.status = "done";
    } catch (const std::exception& e) {
      r.status = "failed";
      r.reason = e.what();
      // No half-done item: a video written for latents that then failed goes too.
      if (!r.video.empty()) fs::remove(r.video);
      r.video.clear();
      WB_LOG(error) << item.id << " (line " << item.line << ") failed: " << e.what();
    }
    r.total_seconds = seconds_since(item_start);
    results.push_back(r);
    const double elapsed = seconds_since(batch_start);
    const double eta =
        elapsed / static_cast<double>(n + 1) * static_cast<double>(todo.size() - n - 1);
    WB_LOG(info) << "[" << n + 1 << "/" << todo.size() << "] " << item.id << ": " << r.status
                 << " in " << r.total_seconds << " s (elapsed " << elapsed << " s, ETA " << eta
                 << " s)";
  }

  // Each rank's part of the report, then rank 0 merges them after everyone has written theirs.
  int64_t failed_here = 0;
  for (const auto& r : results) failed_here += r.status == "failed";
  jobs::write_report_part(out_dir, rank, results);
  Tensor failed = Tensor::from_vector(std::vector<int64_t>{failed_here}, {1});
  comm->all_reduce_sum(failed);
  const int64_t failed_total = failed.data<int64_t>()[0];
  if (rank == 0) {
    jobs::RunSummary summary;
    summary.manifest = manifest_path;
    summary.output_dir = out_dir.string();
    summary.scheduling = "round-robin";
    summary.wanbatch_version = WANBATCH_VERSION;
    summary.shard = shard;
    summary.world_size = world;
    summary.seconds = seconds_since(batch_start);
    const jobs::ReportTotals totals = jobs::merge_report(out_dir, world, items, summary);
    WB_LOG(info) << (out_dir / "report.json").string() << ": " << totals.done << " done, "
                 << totals.skipped_complete << " skipped (complete), " << totals.failed
                 << " failed";
  }
  comm->barrier();
  return failed_total > 0 ? 1 : 0;
}

}  // namespace wanbatch::app
