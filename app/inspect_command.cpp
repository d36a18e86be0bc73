// wanbatch inspect: what a weight file or model folder holds, and which Wan model it is.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "app/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/wan/dit_loader.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::app {
namespace {

namespace fs = std::filesystem;

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.2f %s" : "%.0f %s", value, units[unit]);
  return text;
}

void report_variant(const io::Checkpoint& checkpoint, const std::string& path,
                    std::optional<int64_t> num_heads) {
  bool has_patch_embedding = false;
  for (const std::string& name : checkpoint.names()) {
    has_patch_embedding |= model::wan::official_dit_name(name) == "patch_embedding.weight";
  }
  if (!has_patch_embedding) {
    std::cout << "model: not a Wan DiT (no patch_embedding.weight)\n";
    return;
  }
  try {
    const model::wan::DitConfig c = model::wan::read_dit_config(path, num_heads);
    std::cout << "model: Wan DiT, " << c.variant << ": dim " << c.dim << ", ffn " << c.ffn_dim
              << ", " << c.num_layers << " blocks, " << c.num_heads << " heads of " << c.head_dim()
              << ", channels " << c.in_dim << " in / " << c.out_dim << " out, text dim "
              << c.text_dim << ", freq dim " << c.freq_dim
              << (c.image_branch ? ", CLIP image branch" : "") << "\n";
  } catch (const Error& e) {
    std::cout << "model: looks like a Wan DiT but does not match one: " << e.what() << "\n";
  }
}

// One checkpoint (file, index or folder of shards): its tensors, totals and model.
void inspect_checkpoint(const std::string& path, bool summary, std::optional<int64_t> num_heads) {
  const io::Checkpoint checkpoint = io::Checkpoint::open(path);
  const std::vector<std::string> names = checkpoint.names();
  std::map<std::string, std::pair<size_t, uint64_t>> per_dtype;  // count, bytes
  uint64_t total = 0;
  size_t width = 0;
  for (const std::string& name : names) width = std::max(width, name.size());
  for (const std::string& name : names) {
    const io::TensorInfo info = checkpoint.info(name);
    const uint64_t bytes = info.bytes;
    auto& entry = per_dtype[std::string(core::dtype_name(info.dtype))];
    ++entry.first;
    entry.second += bytes;
    total += bytes;
    if (!summary) {
      std::cout << name << std::string(width + 2 - name.size(), ' ') << core::dtype_name(info.dtype)
                << "  " << core::shape_str(info.shape) << "  " << bytes << "\n";
    }
  }
  std::cout << path << ": " << names.size() << " tensors in " << checkpoint.files().size()
            << " file(s), " << total << " bytes (" << human_bytes(total) << ")\n";
  for (const auto& [dtype, entry] : per_dtype) {
    std::cout << "  " << dtype << ": " << entry.first << " tensors, " << human_bytes(entry.second)
              << "\n";
  }
  report_variant(checkpoint, path, num_heads);
}

// A Wan2.2 two-expert folder holds no weights itself, only high_noise_model/ and low_noise_model/.
bool is_two_expert_folder(const std::string& path) {
  const fs::path p(path);
  return fs::is_directory(p / "high_noise_model") && fs::is_directory(p / "low_noise_model");
}

}  // namespace

int inspect_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = "inspect";
  spec.usage = "wanbatch inspect PATH [options]";
  spec.summary =
      "Lists what a .safetensors file, a *.safetensors.index.json or a model folder holds: every "
      "tensor with dtype, shape and bytes, the totals, and the Wan DiT variant it is. A Wan2.2 "
      "two-expert folder is listed expert by expert.";
  // clang-format off
  spec.options.add_options()
      ("path", po::value<std::string>()->required(), "file, index JSON or folder")
      ("summary", po::bool_switch(), "totals and the detected model only, no tensor listing")
      ("num-heads", po::value<int64_t>(), "attention heads (default: config.json, else dim/128)");
  // clang-format on
  spec.positional.add("path", 1);
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  const std::string path = (*vm)["path"].as<std::string>();
  const bool summary = (*vm)["summary"].as<bool>();
  std::optional<int64_t> num_heads;
  if (vm->count("num-heads")) num_heads = (*vm)["num-heads"].as<int64_t>();
  if (!is_two_expert_folder(path)) {
    inspect_checkpoint(path, summary, num_heads);
    return 0;
  }
  std::cout << path << ": a Wan2.2 two-expert model (high_noise_model/ and low_noise_model/)\n";
  for (const char* expert : {"high_noise_model", "low_noise_model"}) {
    std::cout << "\n";
    inspect_checkpoint((fs::path(path) / expert).string(), summary, num_heads);
  }
  return 0;
}

}  // namespace wanbatch::app
