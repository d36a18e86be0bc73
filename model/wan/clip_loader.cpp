#include "model/wan/clip_loader.h"

#include <cmath>
#include <filesystem>
#include <regex>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pytorch_file.h"
#include "model/wan/shape_check.h"

namespace wanbatch::model::wan {
namespace {

using core::Shape;
using core::Tensor;

bool is_pth(const std::string& path) {
  const std::string extension = std::filesystem::path(path).extension().string();
  return extension == ".pth" || extension == ".pt";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// Tensors of a whole CLIP model that the vision tower does not use: open-clip's text tower and
// logit scale, HF's text model and both projections, HF's position_ids buffer.
bool is_ignored(const std::string& name) {
  for (const char* prefix : {"textual.", "text_model.", "text_projection", "visual_projection",
                             "logit_scale", "log_scale"}) {
    if (starts_with(name, prefix)) return true;
  }
  return name == "embeddings.position_ids";
}

// The open-clip name of an HF CLIPVisionTransformer tensor (without the "vision_model." prefix);
// q/k/v projections give "" and are fused separately; anything unknown gives "?".
std::string open_clip_name(const std::string& hf) {
  static const std::regex kLayer(R"(encoder\.layers\.(\d+)\.(.+)\.(weight|bias))");
  static const std::map<std::string, std::string> kFixed = {
      {"embeddings.class_embedding", "visual.cls_embedding"},
      {"embeddings.patch_embedding.weight", "visual.patch_embedding.weight"},
      {"embeddings.position_embedding.weight", "visual.pos_embedding"},
      {"pre_layrnorm.weight", "visual.pre_norm.weight"},
      {"pre_layrnorm.bias", "visual.pre_norm.bias"},
      {"post_layernorm.weight", "visual.post_norm.weight"},
      {"post_layernorm.bias", "visual.post_norm.bias"}};
  static const std::map<std::string, std::string> kInLayer = {
      {"layer_norm1", "norm1"}, {"layer_norm2", "norm2"}, {"self_attn.out_proj", "attn.proj"},
      {"mlp.fc1", "mlp.0"},     {"mlp.fc2", "mlp.2"},     {"self_attn.q_proj", ""},
      {"self_attn.k_proj", ""}, {"self_attn.v_proj", ""}};
  if (auto it = kFixed.find(hf); it != kFixed.end()) return it->second;
  std::smatch m;
  if (std::regex_match(hf, m, kLayer)) {
    auto it = kInLayer.find(m[2].str());
    if (it == kInLayer.end()) return "?";
    if (it->second.empty()) return "";
    return "visual.transformer." + m[1].str() + "." + it->second + "." + m[3].str();
  }
  return "?";
}

// HF names → open-clip names: embeddings reshaped to open-clip's [1, 1, dim] / [1, tokens, dim],
// q, k, v rows stacked into to_qkv (in that order, as open-clip's fused projection).
ClipVision::Weights from_hf(const std::string& path, std::map<std::string, Tensor>& raw) {
  static const std::regex kQkv(R"(encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias))");
  ClipVision::Weights weights;
  std::map<std::string, std::map<char, Tensor>> qkv;  // to_qkv name → q/k/v parts
  for (auto& [name, tensor] : raw) {
    std::smatch m;
    if (std::regex_match(name, m, kQkv)) {
      qkv["visual.transformer." + m[1].str() + ".attn.to_qkv." + m[3].str()][m[2].str()[0]] =
          tensor;
      continue;
    }
    const std::string official = open_clip_name(name);
    WB_CHECK(official != "?", path, ": unexpected tensor '", name,
             "' in an HF CLIP vision model (vision_model.*)");
    Tensor t = tensor;
    if (official == "visual.cls_embedding" && t.ndim() == 1) t = t.reshape({1, 1, t.dim(0)});
    if (official == "visual.pos_embedding" && t.ndim() == 2) {
      t = t.reshape({1, t.dim(0), t.dim(1)});
    }
    weights.emplace(official, t);
  }
  for (const auto& [name, parts] : qkv) {
    for (char part : {'q', 'k', 'v'}) {
      WB_CHECK(parts.count(part), path, ": ", name, ": the HF ", part,
               "_proj tensor of that layer is missing");
    }
    const Tensor& q = parts.at('q');
    for (char part : {'k', 'v'}) {
      const Tensor& t = parts.at(part);
      WB_CHECK(t.shape() == q.shape() && t.dtype() == q.dtype(), path, ": ", name, ": ", part,
               "_proj is ", t.describe(), " but q_proj is ", q.describe());
    }
    Shape shape = q.shape();
    WB_CHECK(!shape.empty(), path, ": ", name, ": q_proj is a scalar");
    const int64_t rows = shape[0];
    shape[0] *= 3;
    Tensor fused = Tensor::empty(shape, q.dtype());
    for (int64_t p = 0; p < 3; ++p) {
      fused.slice(p * rows, (p + 1) * rows).copy_from(parts.at("qkv"[p]).to(core::Device::cpu()));
    }
    weights.emplace(name, fused);
  }
  return weights;
}

}  // namespace

ClipVision::Weights read_clip_vision_weights(const std::string& path) {
  std::map<std::string, Tensor> raw;
  if (is_pth(path)) {
    raw = io::read_pytorch_state_dict(path);
  } else {
    const io::Checkpoint checkpoint = io::Checkpoint::open(path);
    for (const std::string& name : checkpoint.names()) raw.emplace(name, checkpoint.tensor(name));
  }
  // Sort the names: open-clip "visual.*", HF "[prefix]vision_model.*" (the prefix, e.g.
  // "clip_vision.", stripped from every name that has it), HF without prefix, or ignored.
  std::string prefix;
  for (const auto& [name, tensor] : raw) {
    if (const size_t at = name.find("vision_model."); at != std::string::npos) {
      prefix = name.substr(0, at);
      break;
    }
  }
  std::map<std::string, Tensor> open_clip, hf;
  for (auto& [name, tensor] : raw) {
    if (starts_with(name, "visual.")) {
      open_clip.emplace(name, tensor);
      continue;
    }
    std::string rest = starts_with(name, prefix) ? name.substr(prefix.size()) : name;
    const bool prefixed = starts_with(rest, "vision_model.");
    if (prefixed) rest = rest.substr(13);
    if (is_ignored(rest)) continue;
    const std::string first = rest.substr(0, rest.find('.'));
    if (prefixed || first == "embeddings" || first == "encoder" || first == "pre_layrnorm" ||
        first == "post_layernorm") {
      auto [it, inserted] = hf.emplace(rest, tensor);
      WB_CHECK(inserted, path, ": two tensors are both '", rest, "' without their prefix");
      continue;
    }
    throw make_error(path, ": unexpected tensor '", name,
                     "' (not an open-clip 'visual.*' or HF 'vision_model.*' CLIP vision tensor)");
  }
  WB_CHECK(open_clip.empty() || hf.empty(), path,
           ": mixes open-clip ('visual.*') and HF ('vision_model.*') CLIP vision tensors");
  WB_CHECK(!open_clip.empty() || !hf.empty(), path, ": no CLIP vision tensors ('visual.*' or ",
           "'vision_model.*') among its ", raw.size(), " tensors");
  return hf.empty() ? open_clip : from_hf(path, hf);
}

ClipVisionConfig detect_clip_vision_config(const std::map<std::string, Shape>& shapes,
                                           int64_t heads) {
  auto shape_of = [&](const std::string& name, size_t rank) -> const Shape* {
    auto it = shapes.find(name);
    return it != shapes.end() && it->second.size() == rank ? &it->second : nullptr;
  };
  const Shape* patch = shape_of("visual.patch_embedding.weight", 4);
  const Shape* pos = shape_of("visual.pos_embedding", 3);
  const Shape* fc1 = shape_of("visual.transformer.0.mlp.0.weight", 2);
  if (!patch || !pos || !fc1) {
    std::string names;
    for (const auto& [name, ok] :
         {std::pair<const char*, bool>{"visual.patch_embedding.weight", patch != nullptr},
          {"visual.pos_embedding", pos != nullptr},
          {"visual.transformer.0.mlp.0.weight", fc1 != nullptr}}) {
      if (!ok) names += (names.empty() ? "" : ", ") + std::string(name);
    }
    throw make_error("not a CLIP vision tower: missing or of the wrong rank: ", names);
  }
  ClipVisionConfig c;
  c.dim = (*patch)[0];
  c.patch = (*patch)[2];
  WB_CHECK((*patch)[1] == 3 && (*patch)[3] == c.patch, "CLIP vision: patch_embedding.weight ",
           core::shape_str(*patch), " is not [dim, 3, p, p]");
  const int64_t grid = std::llround(std::sqrt(static_cast<double>((*pos)[1] - 1)));
  WB_CHECK(grid >= 1 && grid * grid + 1 == (*pos)[1], "CLIP vision: pos_embedding ",
           core::shape_str(*pos), " is not a class token and a square grid of patches");
  c.image_size = grid * c.patch;
  c.mlp = (*fc1)[0];
  c.layers = 0;
  static const std::regex kBlock(R"(visual\.transformer\.(\d+)\..*)");
  for (const auto& [name, shape] : shapes) {
    std::smatch m;
    if (std::regex_match(name, m, kBlock)) {
      c.layers = std::max<int64_t>(c.layers, std::stoll(m[1].str()) + 1);
    }
  }
  WB_CHECK(c.layers >= 2, "CLIP vision: ", c.layers,
           " blocks; the features are those before the last block, so at least 2 are needed");
  c.out_layers = c.layers - 1;
  // open-clip ViT-H-14's head_width is 80: 16 heads.
  c.heads = heads > 0 ? heads : c.dim == 1280 ? 16 : 0;
  WB_CHECK(c.heads > 0 && c.dim % c.heads == 0, "CLIP vision: cannot tell the head count of a ",
           c.dim, "-wide tower (known: 1280, ViT-H/14, 16 heads)");
  if (auto it = shapes.find("visual.head"); it != shapes.end() && it->second.size() == 2) {
    c.out_dim = it->second[1];
  }

  // Every tensor: the tower's, plus the unused post-norm and head.
  std::map<std::string, Shape> expected = clip_vision_weight_shapes(c);
  std::map<std::string, Shape> optional = {{"visual.post_norm.weight", {c.dim}},
                                           {"visual.post_norm.bias", {c.dim}},
                                           {"visual.head", {c.dim, c.out_dim}}};
  check_tensor_shapes("CLIP vision weights do not fit a " + std::to_string(c.layers) +
                          "-block tower of width " + std::to_string(c.dim),
                      expected, shapes, optional);
  return c;
}

ClipVision load_clip_vision(const std::string& path, const core::Context& ctx,
                            core::DType gemm_dtype) {
  const ClipVision::Weights weights = read_clip_vision_weights(path);
  int64_t heads = 0;
  if (!is_pth(path)) {
    const io::Checkpoint checkpoint = io::Checkpoint::open(path);
    const auto& metadata = checkpoint.file_of(checkpoint.names().front()).metadata();
    if (auto it = metadata.find("heads"); it != metadata.end()) {
      try {
        heads = std::stoll(it->second);
      } catch (const std::exception&) {
        throw make_error(path, ": metadata heads='", it->second, "' is not a number");
      }
    }
  }
  std::map<std::string, Shape> shapes;
  for (const auto& [name, tensor] : weights) shapes[name] = tensor.shape();
  try {
    return ClipVision(detect_clip_vision_config(shapes, heads), weights, ctx, gemm_dtype);
  } catch (const Error& e) {
    throw make_error(path, ": ", e.what());
  }
}

}  // namespace wanbatch::model::wan
