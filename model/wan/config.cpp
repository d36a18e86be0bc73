#include "model/wan/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {
namespace {

struct Preset {
  const char* name;
  DitConfig config;
  bool two_experts;
};

DitConfig make(const char* variant, int64_t dim, int64_t ffn, int64_t heads, int64_t layers,
               int64_t in_dim, int64_t out_dim, bool image = false) {
  DitConfig c;
  c.variant = variant;
  c.dim = dim;
  c.ffn_dim = ffn;
  c.num_heads = heads;
  c.num_layers = layers;
  c.in_dim = in_dim;
  c.out_dim = out_dim;
  c.image_branch = image;
  return c;
}

// Tiny models keep every structural feature (several heads, several blocks, the I2V channels)
// with small widths, so tests and the demo run in seconds on a CPU.
DitConfig tiny(const char* variant, int64_t in_dim, int64_t out_dim, bool image = false) {
  DitConfig c = make(variant, 64, 128, 4, 2, in_dim, out_dim, image);
  c.text_dim = 32;
  c.freq_dim = 32;
  c.image_dim = 48;
  return c;
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = {
      {"tiny-t2v", tiny("tiny T2V test model", 16, 16), false},
      {"tiny-t2v-a14b", tiny("tiny T2V test model", 16, 16), true},
      {"tiny-i2v", tiny("tiny I2V test model (Wan2.2 style)", 36, 16), false},
      {"tiny-i2v-a14b", tiny("tiny I2V test model (Wan2.2 style)", 36, 16), true},
      {"tiny-i2v-clip", tiny("tiny I2V test model (Wan2.1 style, image branch)", 36, 16, true),
       false},
      {"tiny-ti2v", tiny("tiny TI2V test model", 48, 48), false},
      {"wan2.1-t2v-1.3b", make("Wan2.1 T2V-1.3B", 1536, 8960, 12, 30, 16, 16), false},
      {"wan2.1-t2v-14b", make("Wan2.1 T2V-14B", 5120, 13824, 40, 40, 16, 16), false},
      {"wan2.1-i2v-14b", make("Wan2.1 I2V-14B", 5120, 13824, 40, 40, 36, 16, true), false},
      {"wan2.2-t2v-a14b", make("Wan2.2 T2V-A14B expert", 5120, 13824, 40, 40, 16, 16), true},
      {"wan2.2-i2v-a14b", make("Wan2.2 I2V-A14B expert", 5120, 13824, 40, 40, 36, 16), true},
      {"wan2.2-ti2v-5b", make("Wan2.2 TI2V-5B", 3072, 14336, 24, 30, 48, 48), false},
  };
  return all;
}

const Preset& find_preset(const std::string& name) {
  for (const Preset& p : presets()) {
    if (name == p.name) return p;
  }
  std::ostringstream names;
  for (const Preset& p : presets()) names << ' ' << p.name;
  throw make_error("unknown model variant '", name, "'; known:", names.str());
}

constexpr const char* kT2v14bOrExpert = "Wan2.1 T2V-14B or Wan2.2 T2V-A14B expert";

// The released variant these dimensions belong to, or "custom".
std::string variant_name(const DitConfig& c) {
  for (const Preset& p : presets()) {
    const DitConfig& r = p.config;
    if (r.dim == c.dim && r.ffn_dim == c.ffn_dim && r.num_layers == c.num_layers &&
        r.in_dim == c.in_dim && r.out_dim == c.out_dim && r.image_branch == c.image_branch &&
        r.text_dim == c.text_dim) {
      if (c.in_dim == 16 && c.dim == 5120) return kT2v14bOrExpert;
      return r.variant;
    }
  }
  return "custom";
}

const core::Shape& require(const std::map<std::string, core::Shape>& shapes,
                           const std::string& name, size_t rank) {
  auto it = shapes.find(name);
  WB_CHECK(it != shapes.end(), "not a Wan DiT checkpoint: tensor '", name, "' is missing");
  WB_CHECK(it->second.size() == rank, "tensor '", name, "' has shape ", core::shape_str(it->second),
           ", expected ", rank, " dimensions");
  return it->second;
}

}  // namespace

DitConfig preset(const std::string& name) { return find_preset(name).config; }

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.emplace_back(p.name);
  return names;
}

bool preset_has_two_experts(const std::string& name) { return find_preset(name).two_experts; }

DitConfig detect(const std::map<std::string, core::Shape>& shapes,
                 std::optional<int64_t> num_heads) {
  DitConfig c;
  const core::Shape patch = require(shapes, "patch_embedding.weight", 5);
  c.dim = patch[0];
  c.in_dim = patch[1];
  c.patch_size = {patch[2], patch[3], patch[4]};
  c.text_dim = require(shapes, "text_embedding.0.weight", 2)[1];
  c.freq_dim = require(shapes, "time_embedding.0.weight", 2)[1];
  c.ffn_dim = require(shapes, "blocks.0.ffn.0.weight", 2)[0];
  const int64_t patch_volume = patch[2] * patch[3] * patch[4];
  const int64_t head_rows = require(shapes, "head.head.weight", 2)[0];
  WB_CHECK(patch_volume > 0 && head_rows % patch_volume == 0, "tensor 'head.head.weight' has ",
           head_rows, " rows, not a multiple of the patch volume ", patch_volume);
  c.out_dim = head_rows / patch_volume;
  std::set<int64_t> blocks;
  for (const auto& [name, shape] : shapes) {
    if (name.rfind("blocks.", 0) != 0) continue;
    const size_t end = name.find('.', 7);
    const std::string index = name.substr(7, end == std::string::npos ? end : end - 7);
    WB_CHECK(!index.empty() && index.find_first_not_of("0123456789") == std::string::npos,
             "tensor '", name, "': block index is not a number");
    blocks.insert(std::stoll(index));
  }
  c.num_layers = static_cast<int64_t>(blocks.size());
  c.image_branch = shapes.count("img_emb.proj.1.weight") > 0;
  if (c.image_branch) c.image_dim = require(shapes, "img_emb.proj.1.weight", 2)[1];
  c.num_heads = num_heads.value_or(c.dim / 128);
  WB_CHECK(c.num_heads > 0 && c.dim % c.num_heads == 0, "model dim ", c.dim,
           " does not divide into ", c.num_heads, " heads (set --num-heads or config.json)");

  // Every expected tensor present with its shape, and nothing else.
  std::vector<std::string> missing, wrong, unexpected;
  std::set<std::string> expected_names;
  for (const WeightSpec& spec : dit_weight_specs(c)) {
    expected_names.insert(spec.name);
    auto it = shapes.find(spec.name);
    if (it == shapes.end()) {
      missing.push_back(spec.name);
    } else if (it->second != spec.shape) {
      wrong.push_back(spec.name + " " + core::shape_str(it->second) + " (expected " +
                      core::shape_str(spec.shape) + ")");
    }
  }
  for (const auto& [name, shape] : shapes) {
    if (!expected_names.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !wrong.empty() || !unexpected.empty()) {
    std::ostringstream msg;
    msg << "checkpoint does not match a Wan DiT of dim " << c.dim << ", " << c.num_layers
        << " blocks";
    auto list = [&msg](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg << "; " << names.size() << ' ' << what << ':';
      for (size_t i = 0; i < std::min<size_t>(names.size(), 8); ++i) msg << ' ' << names[i];
      if (names.size() > 8) msg << " ...";
    };
    list("missing", missing);
    list("with wrong shapes", wrong);
    list("unexpected", unexpected);
    throw Error(msg.str());
  }
  c.variant = variant_name(c);
  return c;
}

std::string expert_role(const std::string& weights_path) {
  namespace fs = std::filesystem;
  fs::path p = fs::path(weights_path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "dir/" → "dir"
  // The folder itself, or the folder of a file in it.
  for (const fs::path& folder : {p, p.parent_path()}) {
    if (folder.filename() == "high_noise_model") return "high-noise";
    if (folder.filename() == "low_noise_model") return "low-noise";
  }
  return "";
}

std::string name_expert(const std::string& variant, const std::string& role) {
  if (role.empty()) return variant;
  if (variant == kT2v14bOrExpert) return "Wan2.2 T2V-A14B " + role + " expert";
  const std::string expert = " expert";
  if (variant.size() > expert.size() &&
      variant.compare(variant.size() - expert.size(), expert.size(), expert) == 0) {
    return variant.substr(0, variant.size() - expert.size()) + " " + role + " expert";
  }
  return variant + " (" + role + " expert)";
}

std::string to_config_json(const DitConfig& c) {
  nlohmann::ordered_json j;
  j["_class_name"] = "WanModel";
  j["dim"] = c.dim;
  j["eps"] = c.eps;
  j["ffn_dim"] = c.ffn_dim;
  j["freq_dim"] = c.freq_dim;
  j["in_dim"] = c.in_dim;
  j["model_type"] = c.image_branch ? "i2v" : (c.in_dim == 48 ? "ti2v" : "t2v");
  j["num_heads"] = c.num_heads;
  j["num_layers"] = c.num_layers;
  j["out_dim"] = c.out_dim;
  j["text_dim"] = c.text_dim;
  j["text_len"] = c.text_len;
  return j.dump(2) + "\n";
}

std::optional<int64_t> read_num_heads(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    if (!j.contains("num_heads")) return std::nullopt;
    return j.at("num_heads").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw make_error(path, ": not a valid model config.json: ", e.what());
  }
}

}  // namespace wanbatch::model::wan
