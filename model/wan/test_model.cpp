#include "model/wan/test_model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {
namespace {

namespace fs = std::filesystem;
using Kind = WeightSpec::Kind;

// Values with the scale PyTorch's default initialisation gives (uniform ±1/sqrt(fan_in)) so
// activations stay in a realistic range through many blocks; norms near 1; modulation as the
// reference initialises it (variance 1/dim).
core::Tensor random_tensor(const WeightSpec& spec, std::mt19937_64& rng, core::DType dtype) {
  core::Tensor values = core::Tensor::empty(spec.shape, core::DType::F32);
  float* data = values.data<float>();
  const float bound = 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(spec.fan_in, 1)));
  auto uniform = [&rng](float lo, float hi) {
    // 24 random bits → [0, 1): the same numbers on every platform (unlike std distributions).
    const float unit = static_cast<float>(rng() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * unit;
  };
  const int64_t n = values.numel();
  for (int64_t i = 0; i < n; ++i) {
    switch (spec.kind) {
      case Kind::Linear:
      case Kind::Bias:
        data[i] = uniform(-bound, bound);
        break;
      case Kind::NormWeight:
        data[i] = uniform(0.9f, 1.1f);
        break;
      case Kind::NormBias:
        data[i] = uniform(-0.1f, 0.1f);
        break;
      case Kind::Modulation:
        data[i] = uniform(-1.7320508f, 1.7320508f) * bound;
        break;
    }
  }
  return dtype == core::DType::F32 ? values : values.to(dtype);
}

void write_text(const fs::path& path, const std::string& text) {
  io::AtomicFile file(path.string());
  {
    std::ofstream out(file.temp_path());
    out << text;
    if (!out) throw make_error("cannot write ", path.string());
  }
  file.commit();
}

}  // namespace

std::map<std::string, core::Tensor> random_dit_weights(const DitConfig& config, uint64_t seed,
                                                       core::DType dtype) {
  const std::vector<WeightSpec> specs = dit_weight_specs(config);
  std::vector<core::Tensor> tensors(specs.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < specs.size(); i = next++) {
      std::mt19937_64 rng(seed + 0x9e3779b97f4a7c15ULL * (i + 1));
      tensors[i] = random_tensor(specs[i], rng, dtype);
    }
  };
  std::vector<std::thread> threads;
  const unsigned count = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 0; t < count; ++t) threads.emplace_back(work);
  for (std::thread& t : threads) t.join();
  std::map<std::string, core::Tensor> weights;
  for (size_t i = 0; i < specs.size(); ++i) weights[specs[i].name] = std::move(tensors[i]);
  return weights;
}

void write_test_dit(const DitConfig& config, const std::string& dir, uint64_t seed,
                    core::DType dtype, int64_t shard_bytes) {
  fs::create_directories(dir);
  const std::vector<WeightSpec> specs = dit_weight_specs(config);
  // Group tensors into shards of at most shard_bytes (a tensor never spans two shards).
  std::vector<std::vector<const WeightSpec*>> shards(1);
  int64_t shard_size = 0, total = 0;
  for (const WeightSpec& spec : specs) {
    const int64_t bytes =
        core::shape_numel(spec.shape) * static_cast<int64_t>(core::dtype_size(dtype));
    if (shard_size > 0 && shard_size + bytes > shard_bytes) {
      shards.emplace_back();
      shard_size = 0;
    }
    shards.back().push_back(&spec);
    shard_size += bytes;
    total += bytes;
  }

  std::mt19937_64 rng(seed);
  const std::string base = "diffusion_pytorch_model";
  nlohmann::ordered_json weight_map;
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string name = base + ".safetensors";
    if (shards.size() > 1) {
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "-%05zu-of-%05zu", s + 1, shards.size());
      name = base + suffix + ".safetensors";
    }
    std::vector<std::pair<std::string, core::Tensor>> tensors;
    for (const WeightSpec* spec : shards[s]) {
      tensors.emplace_back(spec->name, random_tensor(*spec, rng, dtype));
      weight_map[spec->name] = name;
    }
    io::write_safetensors((fs::path(dir) / name).string(), tensors,
                          {{"format", "pt"}, {"wanbatch", "random test weights"}});
    WB_LOG(info) << "wrote " << (fs::path(dir) / name).string() << " (" << tensors.size()
                 << " tensors)";
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = weight_map;
    write_text(fs::path(dir) / (base + ".safetensors.index.json"), index.dump(2) + "\n");
  }
  write_text(fs::path(dir) / "config.json", to_config_json(config));
}

std::vector<std::string> write_test_model(const TestModelOptions& options) {
  const DitConfig config = preset(options.variant);
  std::vector<std::string> dirs;
  if (preset_has_two_experts(options.variant)) {
    // Different seeds so the two experts differ, as real ones do.
    dirs = {(fs::path(options.output_dir) / "high_noise_model").string(),
            (fs::path(options.output_dir) / "low_noise_model").string()};
  } else {
    dirs = {options.output_dir};
  }
  for (size_t i = 0; i < dirs.size(); ++i) {
    write_test_dit(config, dirs[i], options.seed + i, options.dtype, options.shard_bytes);
  }
  return dirs;
}

}  // namespace wanbatch::model::wan
