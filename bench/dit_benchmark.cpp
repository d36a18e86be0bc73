#include "bench/dit_benchmark.h"

#include <algorithm>
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
std::vector<double> time_runs(const core::Context& ctx, int warmup, int iterations, F&& run) {
  for (int i = 0; i < warmup; ++i) run();
  ctx.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) {
    const auto start = core::Clock::now();
    run();
    ctx.synchronize();
    ms.push_back(1000.0 * core::seconds_since(start));
  }
  return ms;
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
                                        parallel::Comm* sp, DitBenchResult& r) {
  namespace fs = std::filesystem;
  const fs::path dir = options.weights_dir;
  auto has_weights = [&] {
    if (!fs::is_directory(dir)) return false;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() == ".safetensors") return true;
    }
    return false;
  };
  if ((!sp || sp->rank() == 0) && !has_weights()) {
    WB_LOG(info) << "writing random " << options.variant << " weights to " << dir.string();
    model::wan::write_test_dit(config, dir.string(), options.seed, DType::BF16, int64_t{4} << 30);
  }
  if (sp) sp->barrier();
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
  if (sp) sp->barrier();
  const auto start = core::Clock::now();
  model::wan::WanDit dit = model::wan::load_dit(dir.string(), ctx, load_options);
  ctx.synchronize();
  if (sp) sp->barrier();
  r.load_seconds = core::seconds_since(start);
  WB_LOG(info) << "loaded " << dir.string() << " in " << r.load_seconds << " s";
  return dit;
}

}  // namespace

DitBenchResult run_dit_benchmark(const core::Context& ctx, const DitBenchOptions& options,
                                 parallel::Comm* sp) {
  const model::wan::DitConfig config = model::wan::preset(options.variant);
  const int n = sp ? sp->size() : 1;
  WB_CHECK(config.num_heads % n == 0, "--ulysses ", n, " does not divide ", options.variant, "'s ",
           config.num_heads, " heads");
  const core::Shape latent_shape =
      model::sampling::latent_shape(config.out_dim, options.width, options.height, options.frames);
  const auto& p = config.patch_size;
  DitBenchResult r;
  r.sp = n;
  r.tokens = latent_shape[1] / p[0] * (latent_shape[2] / p[1]) * (latent_shape[3] / p[2]);
  r.flops = forward_flops(config, r.tokens);
  const DType gemm = ctx.device().is_cuda() ? DType::BF16 : DType::F32;

  WB_LOG(info) << options.variant << ": random " << core::dtype_name(DType::BF16) << " weights, "
               << r.tokens << " tokens";
  core::reset_device_peak_bytes(ctx);
  std::optional<model::wan::WanDit> dit;
  if (!options.weights_dir.empty()) {
    dit.emplace(load_benchmark_model(ctx, options, config, gemm, sp, r));
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

  const std::vector<double> ms = time_runs(ctx, options.warmup, options.iterations,
                                           [&] { dit->forward(ctx, input, velocity); });
  r.forward_ms = median(ms);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.max_ms = *std::max_element(ms.begin(), ms.end());
  r.tflops_per_gpu = r.flops / (r.forward_ms * 1e-3) / n / 1e12;
  r.peak_gib = static_cast<double>(core::device_peak_bytes(ctx)) / kGiB;

  // The breakdown: one forward with every op timed on its own.
  core::OpProfiler profiler;
  core::Context profiled = ctx;
  profiled.set_profiler(&profiler);
  dit->forward(profiled, input, velocity);
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
  // for this rank's heads.
  const int64_t rows = (r.tokens + n - 1) / n;
  {
    const Tensor x = random_input({rows, config.dim}, 1.0f, 11, gemm, ctx);
    const Tensor w = random_input({config.ffn_dim, config.dim}, 0.02f, 12, gemm, ctx);
    Tensor out = Tensor::empty({rows, config.ffn_dim}, gemm, ctx.device());
    const double t = median(time_runs(ctx, 2, 10, [&] { core::ops::linear(ctx, x, w, {}, out); }));
    r.gemm_ceiling_tflops = 2.0 * rows * config.ffn_dim * config.dim / (t * 1e-3) / 1e12;
  }
  {
    const int64_t heads = config.num_heads / n, hd = config.head_dim();
    const core::Shape shape{1, r.tokens, heads, hd};
    const Tensor q = random_input(shape, 1.0f, 13, gemm, ctx);
    const Tensor k = random_input(shape, 1.0f, 14, gemm, ctx);
    const Tensor v = random_input(shape, 1.0f, 15, gemm, ctx);
    Tensor out = Tensor::empty(shape, gemm, ctx.device());
    const double t = median(time_runs(ctx, 2, 5, [&] { core::ops::attention(ctx, q, k, v, out); }));
    r.attention_ceiling_tflops =
        4.0 * static_cast<double>(r.tokens) * r.tokens * heads * hd / (t * 1e-3) / 1e12;
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
  const parallel::Groups groups = parallel::Groups::make(*world, ulysses, false, 0, ctx);
  WB_CHECK(groups.topology.dp == 1, "bench runs one forward: start it on --ulysses ranks, not ",
           world->size());
  parallel::Comm* sp = groups.sp.get();
  const DitBenchResult result = run_dit_benchmark(ctx, options, sp);
  if (world->rank() == 0) {
    WB_LOG(info) << "forward " << result.forward_ms << " ms (min " << result.min_ms << ", max "
                 << result.max_ms << "), " << result.flops / 1e12 << " TFLOP per forward";
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
  char line[768];
  std::snprintf(line, sizeof line,
                "bench variant=%s size=%lldx%lld frames=%lld gpus=%d sp=%d tokens=%lld "
                "forward_ms=%.4g tflops=%.4g peak_gib=%.4g weights_gib=%.4g gemm_ms=%.4g "
                "attention_ms=%.4g cross_attention_ms=%.4g communication_ms=%.4g other_ms=%.4g "
                "gemm_ceiling_tflops=%.4g attention_ceiling_tflops=%.4g sharded=%d "
                "offload=%s block_weights_gib=%.4g host_block_weights_gib=%.4g "
                "load_s=%.4g",
                o.variant.c_str(), static_cast<long long>(o.width),
                static_cast<long long>(o.height), static_cast<long long>(o.frames), gpus, r.sp,
                static_cast<long long>(r.tokens), r.forward_ms, r.tflops_per_gpu, r.peak_gib,
                r.weights_gib, ms("gemm"), ms("attention"), ms("cross_attention"),
                ms("communication"), ms("other"), r.gemm_ceiling_tflops, r.attention_ceiling_tflops,
                o.shard_weights ? 1 : 0, o.offload_blocks ? "blocks" : "none", r.resident_block_gib,
                r.offloaded_block_gib, r.load_seconds);
  return line;
}

}  // namespace wanbatch::bench
