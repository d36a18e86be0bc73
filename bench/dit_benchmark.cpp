#include "bench/dit_benchmark.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/ops.h"
#include "core/profiler.h"
#include "model/sampling/guidance.h"
#include "model/sampling/latent_shape.h"
#include "model/wan/config.h"
#include "model/wan/dit.h"
#include "model/wan/dit_loader.h"
#include "model/wan/test_model.h"
#include "parallel/groups.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::bench {
namespace {

using core::DType;
using core::Tensor;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// The guided mode's guide scale (text2video.py's default); any scale but 1 costs the same.
constexpr double kGuideScale = 5.0;

Tensor random_input(const core::Shape& shape, float scale, uint64_t seed, DType dtype,
                    const core::Context& ctx) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(static_cast<size_t>(core::shape_numel(shape)));
  for (float& v : values) v = normal(rng);
  return Tensor::from_vector(values, shape).to(dtype).to(ctx.device());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median milliseconds of `run` over `iterations` after two warm-ups, each timed from a device
// synchronization to the next (a forward is long next to the synchronization's cost).
template <typename F>
std::vector<double> time_runs(const core::Context& ctx, int warmup, int iterations, F&& run,
                              std::vector<double>* enqueue_ms = nullptr) {
  for (int i = 0; i < warmup; ++i) run();
  ctx.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) {
    const auto start = core::Clock::now();
    run();
    // The host's share: until every op is queued. Far below the whole, the device never waits
    // for a launch, so CUDA graphs (which cut launch cost) cannot shorten the run.
    if (enqueue_ms) enqueue_ms->push_back(1000.0 * core::seconds_since(start));
    ctx.synchronize();
    ms.push_back(1000.0 * core::seconds_since(start));
  }
  return ms;
}

// The mean time of `run` repeated back to back, with no wait between runs, for about as long as
// `span_ms` (at least 10 runs): the GPU's clocks under the sustained load of a forward settle
// below those of a short burst, so this is the ceiling a forward's ops can reach.
template <typename F>
double sustained_ms(const core::Context& ctx, double single_ms, double span_ms, F&& run) {
  const int runs = std::max(10, static_cast<int>(std::ceil(span_ms / std::max(single_ms, 1e-3))));
  ctx.synchronize();
  const auto start = core::Clock::now();
  for (int i = 0; i < runs; ++i) run();
  ctx.synchronize();
  return 1000.0 * core::seconds_since(start) / runs;
}

// FLOPs of one forward of one sample (wan-spec "DiT forward"): the blocks' GEMMs and attention,
// the text embedding, patch embedding and head.
double forward_flops(const model::wan::DitConfig& c, int64_t tokens) {
  const double l = static_cast<double>(tokens), d = static_cast<double>(c.dim);
  const double f = static_cast<double>(c.ffn_dim), t = static_cast<double>(c.text_len);
  const double patch = static_cast<double>(c.patch_size[0] * c.patch_size[1] * c.patch_size[2]);
  double block = 2 * l * d * d * 4    // self-attention q, k, v, o
                 + 2 * l * d * d * 2  // cross-attention q, o
                 + 2 * t * d * d * 2  // cross-attention k, v over the text
                 + 2 * l * d * f * 2  // FFN
                 + 4 * l * l * d      // self-attention QKᵀ and PV
                 + 4 * l * t * d;     // cross-attention
  if (c.image_branch) block += 2 * 257.0 * d * d * 2 + 4 * l * 257.0 * d;
  return static_cast<double>(c.num_layers) * block +
         2 * t * (static_cast<double>(c.text_dim) * d + d * d) +
         2 * l * d * patch * static_cast<double>(c.in_dim + c.out_dim);
}

// The model through model::wan::load_dit from options.weights_dir (rank 0 writes random bf16
// weights there first when the folder has no safetensors), loaded twice: the first warms the page
// cache, the second is timed, between barriers, so r.load_seconds is the slowest rank's.
model::wan::WanDit load_benchmark_model(const core::Context& ctx, const DitBenchOptions& options,
                                        const model::wan::DitConfig& config, DType gemm,
                                        parallel::Comm* sp, parallel::Comm* cfg,
                                        DitBenchResult& r) {
  namespace fs = std::filesystem;
  const fs::path dir = options.weights_dir;
  auto has_weights = [&] {
    if (!fs::is_directory(dir)) return false;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() == ".safetensors") return true;
    }
    return false;
  };
  // Every rank of the cfg × sp grid: the cfg pairs' barrier, then the sp groups'.
  auto barrier = [&] {
    if (cfg) cfg->barrier();
    if (sp) sp->barrier();
  };
  if ((!sp || sp->rank() == 0) && (!cfg || cfg->rank() == 0) && !has_weights()) {
    WB_LOG(info) << "writing random " << options.variant << " weights to " << dir.string();
    model::wan::write_test_dit(config, dir.string(), options.seed, DType::BF16, int64_t{4} << 30);
  }
  barrier();
  double bytes = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".safetensors") bytes += static_cast<double>(entry.file_size());
  }
  r.weights_gib = bytes / kGiB;
  auto load_options = model::wan::DitLoadOptions::with_num_heads(config.num_heads);
  load_options.gemm_dtype = gemm;
  load_options.shard_comm = options.shard_weights ? sp : nullptr;
  load_options.offload_blocks = options.offload_blocks;
  model::wan::load_dit(dir.string(), ctx, load_options);  // warms the page cache
  barrier();
  const auto start = core::Clock::now();
  model::wan::WanDit dit = model::wan::load_dit(dir.string(), ctx, load_options);
  ctx.synchronize();
  barrier();
  r.load_seconds = core::seconds_since(start);
  WB_LOG(info) << "loaded " << dir.string() << " in " << r.load_seconds << " s";
  return dit;
}

}  // namespace

DitBenchResult run_dit_benchmark(const core::Context& ctx, const DitBenchOptions& options,
                                 parallel::Comm* sp, parallel::Comm* cfg) {
  const model::wan::DitConfig config = model::wan::preset(options.variant);
  const int n = sp ? sp->size() : 1;
  WB_CHECK(config.num_heads % n == 0, "--ulysses ", n, " does not divide ", options.variant, "'s ",
           config.num_heads, " heads");
  const bool guided = options.guided || options.cfg_parallel;
  const int pair = cfg ? cfg->size() : 1;
  WB_CHECK(pair == (options.cfg_parallel ? 2 : 1), "bench: a cfg group of ", pair, " ranks",
           options.cfg_parallel ? " (--cfg-parallel needs 2)" : " without --cfg-parallel");
  const core::Shape latent_shape =
      model::sampling::latent_shape(config.out_dim, options.width, options.height, options.frames);
  const auto& p = config.patch_size;
  DitBenchResult r;
  r.sp = n;
  r.cfg = pair;
  r.tokens = latent_shape[1] / p[0] * (latent_shape[2] / p[1]) * (latent_shape[3] / p[2]);
  r.flops = (guided ? 2 : 1) * forward_flops(config, r.tokens);
  const DType gemm = ctx.device().is_cuda() ? DType::BF16 : DType::F32;

  WB_LOG(info) << options.variant << ": random " << core::dtype_name(DType::BF16) << " weights, "
               << r.tokens << " tokens";
  core::reset_device_peak_bytes(ctx);
  std::optional<model::wan::WanDit> dit;
  if (!options.weights_dir.empty()) {
    dit.emplace(load_benchmark_model(ctx, options, config, gemm, sp, cfg, r));
  } else {
    const auto weights = model::wan::random_dit_weights(config, options.seed, DType::BF16);
    double bytes = 0;
    for (const auto& [name, t] : weights) bytes += static_cast<double>(t.nbytes());
    r.weights_gib = bytes / kGiB;
    dit.emplace(config, weights, ctx, gemm, options.shard_weights ? sp : nullptr,
                options.offload_blocks);
  }
  dit->set_sequence_parallel(sp);
  r.resident_block_gib = static_cast<double>(dit->resident_block_bytes()) / kGiB;
  r.offloaded_block_gib = static_cast<double>(dit->offloaded_block_bytes()) / kGiB;

  model::wan::DitInput input;
  input.latent = random_input(latent_shape, 1.0f, options.seed + 1, DType::F32, ctx);
  input.timestep = Tensor::from_vector(std::vector<float>{500.0f}, {1}).to(ctx.device());
  input.context =
      random_input({options.text_tokens, config.text_dim}, 0.1f, options.seed + 2, DType::F32, ctx);
  if (config.in_dim > config.out_dim) {
    core::Shape y_shape = latent_shape;
    y_shape[0] = config.in_dim - config.out_dim;
    input.y = random_input(y_shape, 1.0f, options.seed + 3, DType::F32, ctx);
  }
  if (config.image_branch) {
    input.clip = random_input({257, config.image_dim}, 1.0f, options.seed + 4, DType::F32, ctx);
  }
  Tensor velocity = Tensor::empty(latent_shape, DType::F32, ctx.device());
  // Guided: the negative prompt's context, and the sampler's guided evaluation.
  Tensor context_null;
  std::optional<model::sampling::GuidedVelocity> guidance;
  if (guided) {
    context_null = random_input({options.text_tokens, config.text_dim}, 0.1f, options.seed + 5,
                                DType::F32, ctx);
    guidance.emplace(ctx, latent_shape, cfg);
  }
  // The timed unit: one forward, or one guided evaluation (both velocities on every rank).
  auto evaluate = [&](const core::Context& c) {
    if (guided) {
      guidance->predict(c, *dit, input, input.context, context_null, kGuideScale, velocity);
    } else {
      dit->forward(c, input, velocity);
    }
  };

  std::vector<double> enqueue_ms;
  const std::vector<double> ms = time_runs(
      ctx, options.warmup, options.iterations, [&] { evaluate(ctx); }, &enqueue_ms);
  r.forward_ms = median(ms);
  r.enqueue_ms = median(enqueue_ms);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.max_ms = *std::max_element(ms.begin(), ms.end());
  r.tflops_per_gpu = r.flops / (r.forward_ms * 1e-3) / (n * pair) / 1e12;
  r.peak_gib = static_cast<double>(core::device_peak_bytes(ctx)) / kGiB;

  // The breakdown: one more timed unit with every op timed on its own.
  core::OpProfiler profiler;
  core::Context profiled = ctx;
  profiled.set_profiler(&profiler);
  evaluate(profiled);
  double total = 0;
  for (const auto& [name, seconds] : profiler.seconds()) {
    // A scope around ops of its own: the share of attention that is the text cross-attention,
    // not a group of its own.
    if (name == "cross_attention") {
      r.breakdown_ms["cross_attention"] = 1000.0 * seconds;
      continue;
    }
    r.op_ms[name] = 1000.0 * seconds;
    const std::string group = name == "linear" || name == "linear_gelu_tanh" || name == "matmul"
                                  ? "gemm"
                              : name == "attention"                          ? "attention"
                              : name == "all_to_all" || name == "all_gather" ? "communication"
                                                                             : "other";
    r.breakdown_ms[group] += 1000.0 * seconds;
    total += 1000.0 * seconds;
  }
  r.breakdown_ms["profiled_total"] = total;

  // Ceilings at this rank's shapes: the FFN's first GEMM, and attention over the whole sequence
  // for this rank's heads (a batch of two when guided on one rank group).
  const int64_t batch = guided && pair == 1 ? 2 : 1;
  const int64_t rows = batch * ((r.tokens + n - 1) / n);
  {
    const Tensor x = random_input({rows, config.dim}, 1.0f, 11, gemm, ctx);
    const Tensor w = random_input({config.ffn_dim, config.dim}, 0.02f, 12, gemm, ctx);
    Tensor out = Tensor::empty({rows, config.ffn_dim}, gemm, ctx.device());
    auto gemm_run = [&] { core::ops::linear(ctx, x, w, {}, out); };
    const double t = median(time_runs(ctx, 2, 10, gemm_run));
    const double flop = 2.0 * rows * config.ffn_dim * config.dim;
    r.gemm_ceiling_tflops = flop / (t * 1e-3) / 1e12;
    r.gemm_sustained_tflops = flop / (sustained_ms(ctx, t, r.forward_ms, gemm_run) * 1e-3) / 1e12;
  }
  {
    const int64_t heads = config.num_heads / n, hd = config.head_dim();
    const core::Shape shape{batch, r.tokens, heads, hd};
    const Tensor q = random_input(shape, 1.0f, 13, gemm, ctx);
    const Tensor k = random_input(shape, 1.0f, 14, gemm, ctx);
    const Tensor v = random_input(shape, 1.0f, 15, gemm, ctx);
    Tensor out = Tensor::empty(shape, gemm, ctx.device());
    auto attention_run = [&] { core::ops::attention(ctx, q, k, v, out); };
    const double t = median(time_runs(ctx, 2, 5, attention_run));
    const double flop = 4.0 * batch * static_cast<double>(r.tokens) * r.tokens * heads * hd;
    r.attention_ceiling_tflops = flop / (t * 1e-3) / 1e12;
    r.attention_sustained_tflops =
        flop / (sustained_ms(ctx, t, r.forward_ms, attention_run) * 1e-3) / 1e12;
  }
  return r;
}

int run_dit_benchmark_command(const DitBenchOptions& options, int ulysses, bool cpu) {
  WB_CHECK(options.iterations >= 1 && options.warmup >= 0,
           "--iterations must be at least 1 and --warmup at least 0");
  WB_CHECK(cpu || core::cuda_device_count() > 0,
           "no GPU here (or a build without CUDA): give --cpu to run the benchmark on the CPU");
  parallel::MpiRuntime runtime;
  const std::unique_ptr<parallel::Comm> world = parallel::world(runtime);
  const core::Context ctx =
      cpu ? core::Context::cpu()
          : core::Context::cuda(parallel::node_local_rank() % core::cuda_device_count());
  const parallel::Groups groups =
      parallel::Groups::make(*world, ulysses, options.cfg_parallel, 0, ctx);
  WB_CHECK(groups.topology.dp == 1,
           "bench runs one forward or guided evaluation: start it on --ulysses × (2 with "
           "--cfg-parallel) ranks, not ",
           world->size(), " (", groups.describe(), ")");
  const DitBenchResult result = run_dit_benchmark(ctx, options, groups.sp.get(), groups.cfg.get());
  if (world->rank() == 0) {
    const bool guided = options.guided || options.cfg_parallel;
    WB_LOG(info) << (guided ? "guided evaluation (" + groups.describe() + ") " : "forward ")
                 << result.forward_ms << " ms (min " << result.min_ms << ", max " << result.max_ms
                 << "), " << result.flops / 1e12
                 << (guided ? " TFLOP per guided evaluation (two forwards)" : " TFLOP per forward");
    // Every op's share of the profiled forward, longest first: where fusions would pay.
    std::vector<std::pair<double, std::string>> ops;
    for (const auto& [name, ms] : result.op_ms) ops.emplace_back(ms, name);
    std::sort(ops.rbegin(), ops.rend());
    std::string list;
    for (const auto& [ms, name] : ops) {
      char item[96];
      std::snprintf(item, sizeof item, "%s%s %.4g", list.empty() ? "" : ", ", name.c_str(), ms);
      list += item;
    }
    WB_LOG(info) << "profiled ops, ms: " << list;
    std::cout << result_line(options, result, world->size()) << std::endl;
  }
  return 0;
}

std::string result_line(const DitBenchOptions& o, const DitBenchResult& r, int gpus) {
  auto ms = [&](const char* key) {
    const auto it = r.breakdown_ms.find(key);
    return it == r.breakdown_ms.end() ? 0.0 : it->second;
  };
  char line[1024];
  std::snprintf(line, sizeof line,
                "bench variant=%s size=%lldx%lld frames=%lld gpus=%d sp=%d tokens=%lld "
                "forward_ms=%.4g tflops=%.4g peak_gib=%.4g weights_gib=%.4g gemm_ms=%.4g "
                "attention_ms=%.4g cross_attention_ms=%.4g communication_ms=%.4g other_ms=%.4g "
                "gemm_ceiling_tflops=%.4g attention_ceiling_tflops=%.4g sharded=%d "
                "offload=%s block_weights_gib=%.4g host_block_weights_gib=%.4g "
                "load_s=%.4g enqueue_ms=%.4g gemm_sustained_tflops=%.4g "
                "attention_sustained_tflops=%.4g",
                o.variant.c_str(), static_cast<long long>(o.width),
                static_cast<long long>(o.height), static_cast<long long>(o.frames), gpus, r.sp,
                static_cast<long long>(r.tokens), r.forward_ms, r.tflops_per_gpu, r.peak_gib,
                r.weights_gib, ms("gemm"), ms("attention"), ms("cross_attention"),
                ms("communication"), ms("other"), r.gemm_ceiling_tflops, r.attention_ceiling_tflops,
                o.shard_weights ? 1 : 0, o.offload_blocks ? "blocks" : "none", r.resident_block_gib,
                r.offloaded_block_gib, r.load_seconds, r.enqueue_ms, r.gemm_sustained_tflops,
                r.attention_sustained_tflops);
  std::string text = line;
  if (o.guided || o.cfg_parallel) {
    std::snprintf(line, sizeof line, " cfg=%d guided_ms=%.4g tflop=%.4g", r.cfg == 2 ? 1 : 0,
                  r.forward_ms, r.flops / 1e12);
    text += line;
  }
  return text;
}

}  // namespace wanbatch::bench
