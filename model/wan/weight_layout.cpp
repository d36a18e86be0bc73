#include "model/wan/weight_layout.h"

#include <numeric>

namespace wanbatch::model::wan {
namespace {

using Kind = WeightSpec::Kind;

void add_linear(std::vector<WeightSpec>& specs, const std::string& name, int64_t out, int64_t in) {
  specs.push_back({name + ".weight", {out, in}, in, Kind::Linear});
  specs.push_back({name + ".bias", {out}, in, Kind::Bias});
}

void add_norm(std::vector<WeightSpec>& specs, const std::string& name, int64_t width, bool bias) {
  specs.push_back({name + ".weight", {width}, width, Kind::NormWeight});
  if (bias) specs.push_back({name + ".bias", {width}, width, Kind::NormBias});
}

}  // namespace

std::vector<WeightSpec> dit_weight_specs(const DitConfig& c) {
  std::vector<WeightSpec> specs;
  const auto& p = c.patch_size;
  const int64_t patch_volume = std::accumulate(p.begin(), p.end(), int64_t{1}, std::multiplies<>());
  const int64_t patch_fan_in = c.in_dim * patch_volume;
  specs.push_back({"patch_embedding.weight", {c.dim, c.in_dim, p[0], p[1], p[2]}, patch_fan_in,
                   Kind::Linear});
  specs.push_back({"patch_embedding.bias", {c.dim}, patch_fan_in, Kind::Bias});
  add_linear(specs, "text_embedding.0", c.dim, c.text_dim);
  add_linear(specs, "text_embedding.2", c.dim, c.dim);
  add_linear(specs, "time_embedding.0", c.dim, c.freq_dim);
  add_linear(specs, "time_embedding.2", c.dim, c.dim);
  add_linear(specs, "time_projection.1", 6 * c.dim, c.dim);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string block = "blocks." + std::to_string(i) + ".";
    for (const char* attn : {"self_attn", "cross_attn"}) {
      const std::string prefix = block + attn + ".";
      for (const char* proj : {"q", "k", "v", "o"}) add_linear(specs, prefix + proj, c.dim, c.dim);
      add_norm(specs, prefix + "norm_q", c.dim, false);
      add_norm(specs, prefix + "norm_k", c.dim, false);
    }
    if (c.image_branch) {
      add_linear(specs, block + "cross_attn.k_img", c.dim, c.dim);
      add_linear(specs, block + "cross_attn.v_img", c.dim, c.dim);
      add_norm(specs, block + "cross_attn.norm_k_img", c.dim, false);
    }
    add_norm(specs, block + "norm3", c.dim, true);
    add_linear(specs, block + "ffn.0", c.ffn_dim, c.dim);
    add_linear(specs, block + "ffn.2", c.dim, c.ffn_dim);
    specs.push_back({block + "modulation", {1, 6, c.dim}, c.dim, Kind::Modulation});
  }
  add_linear(specs, "head.head", patch_volume * c.out_dim, c.dim);
  specs.push_back({"head.modulation", {1, 2, c.dim}, c.dim, Kind::Modulation});
  if (c.image_branch) {
    add_norm(specs, "img_emb.proj.0", c.image_dim, true);
    add_linear(specs, "img_emb.proj.1", c.image_dim, c.image_dim);
    add_linear(specs, "img_emb.proj.3", c.dim, c.image_dim);
    add_norm(specs, "img_emb.proj.4", c.dim, true);
  }
  return specs;
}

std::string strip_dit_prefix(const std::string& name) {
  for (const char* prefix :
       {"model.diffusion_model.", "diffusion_model.", "transformer.", "model."}) {
    const std::string_view p(prefix);
    if (name.rfind(p, 0) == 0) return name.substr(p.size());
  }
  return name;
}

std::string official_dit_name(const std::string& name) {
  const std::string stripped = strip_dit_prefix(name);
  // Whole-name prefixes (top-level modules).
  static const std::pair<const char*, const char*> kTopLevel[] = {
      {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
      {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
      {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
      {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
      {"condition_embedder.time_proj", "time_projection.1"},
      {"condition_embedder.image_embedder.norm1", "img_emb.proj.0"},
      {"condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"},
      {"condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"},
      {"condition_embedder.image_embedder.norm2", "img_emb.proj.4"},
      {"scale_shift_table", "head.modulation"},
      {"proj_out", "head.head"},
  };
  for (const auto& [from, to] : kTopLevel) {
    const std::string_view f(from);
    if (stripped.rfind(f, 0) == 0 && (stripped.size() == f.size() || stripped[f.size()] == '.')) {
      return to + stripped.substr(f.size());
    }
  }
  // Inside a block: blocks.N.<module>[.param].
  if (stripped.rfind("blocks.", 0) != 0) return stripped;
  const size_t dot = stripped.find('.', 7);
  if (dot == std::string::npos) return stripped;
  const std::string head = stripped.substr(0, dot + 1);  // "blocks.N."
  const std::string rest = stripped.substr(dot + 1);
  static const std::pair<const char*, const char*> kInBlock[] = {
      {"attn1.to_q", "self_attn.q"},        {"attn1.to_k", "self_attn.k"},
      {"attn1.to_v", "self_attn.v"},        {"attn1.to_out.0", "self_attn.o"},
      {"attn1.norm_q", "self_attn.norm_q"}, {"attn1.norm_k", "self_attn.norm_k"},
      {"attn2.to_q", "cross_attn.q"},       {"attn2.to_k", "cross_attn.k"},
      {"attn2.to_v", "cross_attn.v"},       {"attn2.to_out.0", "cross_attn.o"},
      {"attn2.norm_q", "cross_attn.norm_q"}, {"attn2.norm_k", "cross_attn.norm_k"},
      {"attn2.add_k_proj", "cross_attn.k_img"}, {"attn2.add_v_proj", "cross_attn.v_img"},
      {"attn2.norm_added_k", "cross_attn.norm_k_img"},
      {"ffn.net.0.proj", "ffn.0"},          {"ffn.net.2", "ffn.2"},
      {"scale_shift_table", "modulation"},
      // diffusers calls the cross-attention norm (official norm3, the only one with weights) norm2
      {"norm2", "norm3"},
  };
  for (const auto& [from, to] : kInBlock) {
    const std::string_view f(from);
    if (rest.rfind(f, 0) == 0 && (rest.size() == f.size() || rest[f.size()] == '.')) {
      return head + to + rest.substr(f.size());
    }
  }
  return stripped;
}

}  // namespace wanbatch::model::wan
