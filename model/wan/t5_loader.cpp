#include "model/wan/t5_loader.h"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/pytorch_file.h"

namespace wanbatch::model::wan {
namespace {

bool is_pth(const std::string& path) {
  const std::string extension = std::filesystem::path(path).extension().string();
  return extension == ".pth" || extension == ".pt";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ComfyUI's fp8-scaled files: a `scaled_fp8` marker, or scales beside the weights.
bool is_scaled_fp8_name(const std::string& name) {
  return name == "scaled_fp8" || ends_with(name, ".scale_weight") ||
         ends_with(name, ".weight_scale") || ends_with(name, ".scale_input") ||
         ends_with(name, ".input_scale");
}

}  // namespace

std::string official_t5_name(const std::string& name) {
  static const std::regex kAttention(
      R"(encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkvo])\.weight)");
  static const std::regex kRelative(
      R"(encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.relative_attention_bias\.weight)");
  static const std::regex kNorm(R"(encoder\.block\.(\d+)\.layer\.([01])\.layer_norm\.weight)");
  static const std::regex kFfn(
      R"(encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.(wi_0|wi_1|wo)\.weight)");
  std::smatch m;
  if (std::regex_match(name, m, kAttention)) {
    return "blocks." + m[1].str() + ".attn." + m[2].str() + ".weight";
  }
  if (std::regex_match(name, m, kRelative)) {
    return "blocks." + m[1].str() + ".pos_embedding.embedding.weight";
  }
  if (std::regex_match(name, m, kNorm)) {
    return "blocks." + m[1].str() + (m[2].str() == "0" ? ".norm1.weight" : ".norm2.weight");
  }
  if (std::regex_match(name, m, kFfn)) {
    const std::string w = m[2].str();
    return "blocks." + m[1].str() +
           (w == "wi_0"   ? ".ffn.gate.0.weight"
            : w == "wi_1" ? ".ffn.fc1.weight"
                          : ".ffn.fc2.weight");
  }
  if (name == "shared.weight" || name == "encoder.embed_tokens.weight") {
    return "token_embedding.weight";
  }
  if (name == "encoder.final_layer_norm.weight") return "norm.weight";
  return name;
}

T5Encoder::Weights read_t5_weights(const std::string& path) {
  std::map<std::string, core::Tensor> raw;
  if (is_pth(path)) {
    raw = io::read_pytorch_state_dict(path);
  } else {
    const io::Checkpoint checkpoint = io::Checkpoint::open(path);
    for (const std::string& name : checkpoint.names()) raw.emplace(name, checkpoint.tensor(name));
  }
  for (const auto& [name, tensor] : raw) {
    WB_CHECK(!is_scaled_fp8_name(name), path, ": an fp8-scaled text encoder ('", name,
             "' found); fp8-scaled T5 files are not supported yet: use the bf16/fp16 file "
             "(models_t5_umt5-xxl-enc-bf16.pth or umt5_xxl_fp16.safetensors)");
  }
  // HF files may hold the tied embedding twice; keep shared.weight.
  if (raw.count("shared.weight") && raw.count("encoder.embed_tokens.weight")) {
    WB_CHECK(raw.at("shared.weight").shape() == raw.at("encoder.embed_tokens.weight").shape(), path,
             ": shared.weight ", raw.at("shared.weight").describe(),
             " and encoder.embed_tokens.weight ", raw.at("encoder.embed_tokens.weight").describe(),
             " differ");
    raw.erase("encoder.embed_tokens.weight");
  }
  T5Encoder::Weights weights;
  for (auto& [name, tensor] : raw) {
    const std::string official = official_t5_name(name);
    auto [it, inserted] = weights.emplace(official, std::move(tensor));
    WB_CHECK(inserted, path, ": two tensors are both '", official,
             "' once names are made official");
  }
  return weights;
}

std::string t5_weights_fingerprint(const std::string& path) {
  if (!is_pth(path)) return io::Checkpoint::open(path).fingerprint();
  constexpr size_t kSample = 4096;
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64, as io::Checkpoint::fingerprint
  auto mix = [&hash](const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  };
  for (const auto& [name, tensor] : io::read_pytorch_state_dict(path)) {
    mix(name.data(), name.size() + 1);
    const std::string dtype(core::dtype_name(tensor.dtype()));
    mix(dtype.data(), dtype.size() + 1);
    for (int64_t d : tensor.shape()) mix(&d, sizeof d);
    const auto* data = static_cast<const unsigned char*>(tensor.raw());
    const size_t bytes = tensor.nbytes(), n = std::min(kSample, bytes);
    mix(data, n);
    mix(data + bytes - n, n);
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

namespace {

T5Encoder build_t5_encoder(const std::string& path, const core::Context& ctx,
                           parallel::Comm* shard_comm) {
  const T5Encoder::Weights weights = read_t5_weights(path);
  std::map<std::string, core::Shape> shapes;
  for (const auto& [name, tensor] : weights) shapes[name] = tensor.shape();
  try {
    return T5Encoder(detect_t5_config(shapes), weights, ctx, shard_comm);
  } catch (const Error& e) {
    throw make_error(path, ": ", e.what());
  }
}

}  // namespace

T5Encoder load_t5_encoder(const std::string& path, const core::Context& ctx,
                          parallel::Comm* shard_comm) {
  if (shard_comm == nullptr || shard_comm->size() == 1) {
    return build_t5_encoder(path, ctx, nullptr);
  }
  std::optional<T5Encoder> encoder;
  std::string problem;
  try {
    encoder.emplace(build_t5_encoder(path, ctx, shard_comm));
  } catch (const std::exception& e) {
    problem = e.what();
  }
  // Every rank learns which loaded (on the context's device: NCCL moves device tensors).
  const core::Tensor mine =
      core::Tensor::from_vector(std::vector<int64_t>{problem.empty() ? 0 : 1}, {1})
          .to(ctx.device());
  core::Tensor all;
  shard_comm->all_gather(mine, all);
  const core::Tensor failed = all.to(core::Device::cpu());
  if (!problem.empty()) throw Error(problem);
  for (int rank = 0; rank < shard_comm->size(); ++rank) {
    WB_CHECK(failed.data<int64_t>()[rank] == 0, path, ": rank ", rank,
             " of the shard group could not load the text encoder (its log has the error)");
  }
  WB_LOG(info) << "text encoder: " << encoder->config().num_layers << " layers sharded over "
               << shard_comm->size() << " ranks, "
               << static_cast<double>(encoder->resident_weight_bytes()) / (1 << 20)
               << " MiB of weights on this rank besides the token embedding";
  return std::move(*encoder);
}

}  // namespace wanbatch::model::wan
