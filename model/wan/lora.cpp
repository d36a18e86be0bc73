#include "model/wan/lora.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/ops.h"
#include "io/safetensors.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {
namespace {

using core::DType;
using core::Tensor;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One module's entries in a LoRA file.
struct ModuleUpdate {
  std::string down, up, alpha, diff, diff_b;  // key names in the file, empty when absent
};

// Splits a key into (module, role) by its known suffix; role empty when it has none.
std::pair<std::string, std::string> split_key(const std::string& key) {
  static const std::pair<const char*, const char*> kSuffixes[] = {{".lora_down.weight", "down"},
                                                                  {".lora_up.weight", "up"},
                                                                  {".lora_A.weight", "down"},
                                                                  {".lora_B.weight", "up"},
                                                                  {".alpha", "alpha"},
                                                                  {".diff_b", "diff_b"},
                                                                  {".diff", "diff"}};
  for (const auto& [suffix, role] : kSuffixes) {
    if (ends_with(key, suffix))
      return {key.substr(0, key.size() - std::string(suffix).size()), role};
  }
  return {key, ""};
}

// Kohya-style LoRAs (musubi-tuner's default, many community Wan LoRAs) flatten the module path
// with underscores behind `lora_unet_`: `lora_unet_blocks_0_self_attn_q`. Underscores also occur
// inside module names (self_attn, k_img), so the official name is found by flattening every
// module of the model the same way and looking the key up.
class KohyaNames {
 public:
  explicit KohyaNames(const WanDit::Weights& weights) {
    for (const auto& [name, tensor] : weights) {
      std::string module = name;
      for (const char* suffix : {".weight", ".bias"}) {
        if (ends_with(module, suffix)) module.resize(module.size() - std::string(suffix).size());
      }
      std::string flat = module;
      for (char& c : flat) c = c == '.' ? '_' : c;
      modules_.emplace(flat, module);
    }
  }
  // The official module for a key's module part, or nullopt when it is not kohya-style.
  std::optional<std::string> official(const std::string& module) const {
    static const std::string kPrefix = "lora_unet_";
    if (module.rfind(kPrefix, 0) != 0) return std::nullopt;
    const std::string flat = module.substr(kPrefix.size());
    const auto it = modules_.find(flat);
    return it == modules_.end() ? flat : it->second;
  }

 private:
  std::map<std::string, std::string> modules_;
};

}  // namespace

LoraFile parse_lora_argument(const std::string& argument) {
  LoraFile lora{argument, 1.0f};
  const size_t colon = argument.rfind(':');
  if (colon == std::string::npos) return lora;
  const std::string number = argument.substr(colon + 1);
  char* end = nullptr;
  const float strength = std::strtof(number.c_str(), &end);
  if (number.empty() || *end != '\0') return lora;  // a colon that belongs to the path
  lora.path = argument.substr(0, colon);
  lora.strength = strength;
  return lora;
}

LoraUpdates::LoraUpdates(const WanDit::Weights& weights, const std::vector<LoraFile>& loras,
                         bool lenient) {
  const KohyaNames kohya(weights);
  for (const LoraFile& lora : loras) {
    files_.push_back(io::SafetensorsFile::open(lora.path));
    const io::SafetensorsFile& file = *files_.back();
    auto problem = [&](const std::string& key, const std::string& what) {
      const std::string message = lora.path + ": LoRA key '" + key + "' " + what;
      if (!lenient) throw Error(message + " (use --lora-lenient to skip such keys)");
      WB_LOG(warning) << message << "; skipped";
    };
    std::map<std::string, ModuleUpdate> modules;
    for (const std::string& key : file.names()) {
      auto [module, role] = split_key(key);
      const std::optional<std::string> flat = kohya.official(module);
      ModuleUpdate& m = modules[flat ? *flat : official_dit_name(module)];
      if (role == "down")
        m.down = key;
      else if (role == "up")
        m.up = key;
      else if (role == "alpha")
        m.alpha = key;
      else if (role == "diff")
        m.diff = key;
      else if (role == "diff_b")
        m.diff_b = key;
      else
        problem(key,
                "is not a LoRA key (expected lora_down/lora_up, lora_A/lora_B, alpha, "
                "diff or diff_b)");
    }
    size_t merged = 0;
    for (const auto& [module, m] : modules) {
      const std::string weight_name = module + ".weight";
      if (!m.down.empty() || !m.up.empty()) {
        const std::string key = m.down.empty() ? m.up : m.down;
        if (m.down.empty() || m.up.empty()) {
          problem(key, "has no matching " + std::string(m.down.empty() ? "down (A)" : "up (B)") +
                           " half");
        } else if (!weights.count(weight_name)) {
          problem(key, "matches no weight of the model (looked for '" + weight_name + "')");
        } else {
          const Tensor down = file.tensor(m.down), up = file.tensor(m.up);
          const Tensor& w = weights.at(weight_name);
          const int64_t rank = down.dim(0);
          if (down.ndim() != 2 || up.ndim() != 2 || up.dim(1) != rank || w.ndim() != 2 ||
              up.dim(0) != w.dim(0) || down.dim(1) != w.dim(1)) {
            problem(key, "has shapes down " + down.describe() + ", up " + up.describe() +
                             " that do not fit " + weight_name + " " + w.describe());
          } else {
            float scale = lora.strength;
            if (!m.alpha.empty()) scale *= file.tensor(m.alpha).to_floats().at(0) / rank;
            updates_[weight_name].push_back({up, down, scale});
            ++merged;
          }
        }
      } else if (!m.alpha.empty()) {
        problem(m.alpha, "is an alpha without lora_down/lora_up weights");
      }
      // Full deltas: <module>.diff updates <module>.weight, or <module> itself (modulation);
      // <module>.diff_b updates <module>.bias.
      auto add_delta = [&](const std::string& key, const std::string& target) {
        if (!weights.count(target)) {
          problem(key, "matches no tensor of the model (looked for '" + target + "')");
          return;
        }
        const Tensor diff = file.tensor(key);
        const Tensor& w = weights.at(target);
        if (diff.numel() != w.numel()) {
          problem(key, "has shape " + diff.describe() + ", " + target + " is " + w.describe());
          return;
        }
        updates_[target].push_back({diff.reshape(w.shape()), Tensor(), lora.strength});
        ++merged;
      };
      if (!m.diff.empty()) add_delta(m.diff, weights.count(weight_name) ? weight_name : module);
      if (!m.diff_b.empty()) add_delta(m.diff_b, module + ".bias");
    }
    WB_LOG(info) << "LoRA " << lora.path << " (strength " << lora.strength << "): " << merged
                 << " tensors to update";
  }
}

bool LoraUpdates::touches(const std::string& name) const { return updates_.count(name) > 0; }

Tensor LoraUpdates::apply(const std::string& name, const Tensor& base) const {
  const auto it = updates_.find(name);
  if (it == updates_.end()) return base;
  const core::Context cpu = core::Context::cpu();
  Tensor w = base.to(core::Device::cpu()).to(DType::F32).clone();
  Tensor delta = Tensor::empty(w.shape(), DType::F32);
  for (const Update& u : it->second) {
    if (u.down.defined()) {  // low rank: scale · up · down
      core::ops::matmul(cpu, u.up.to(DType::F32), u.down.to(DType::F32), delta);
      core::ops::scale(cpu, delta, u.scale, delta);
    } else {  // a full delta
      core::ops::scale(cpu, u.up.to(DType::F32), u.scale, delta);
    }
    core::ops::add(cpu, w, delta, w);
  }
  return w;
}

void merge_loras(WanDit::Weights& weights, const std::vector<LoraFile>& loras, bool lenient) {
  const LoraUpdates updates(weights, loras, lenient);
  for (auto& [name, tensor] : weights) tensor = updates.apply(name, tensor);
}

}  // namespace wanbatch::model::wan
