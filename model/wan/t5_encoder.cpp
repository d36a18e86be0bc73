#include "model/wan/t5_encoder.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/ops.h"
#include "model/wan/shape_check.h"

namespace wanbatch::model::wan {
namespace {

namespace ops = core::ops;
using core::DType;
using core::Shape;
using core::Tensor;

constexpr float kEps = 1e-6f;  // T5LayerNorm's eps

// A layer's parameters on the compute device, in Block's order (also the sharded layout).
constexpr const char* kLayerTensors[] = {"norm1.weight",      "attn.q.weight",  "attn.k.weight",
                                         "attn.v.weight",     "attn.o.weight",  "norm2.weight",
                                         "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight"};

std::string block_name(int64_t i, const std::string& rest) {
  return "blocks." + std::to_string(i) + "." + rest;
}

// One Error listing every missing, unexpected and misshapen tensor.
void check_shapes(const std::map<std::string, Shape>& expected,
                  const std::map<std::string, Shape>& shapes) {
  check_tensor_shapes("T5 encoder weights do not fit the umt5 encoder", expected, shapes);
}

}  // namespace

int64_t t5_relative_position_bucket(int64_t rel_pos, int64_t num_buckets, int64_t max_distance) {
  // Bidirectional: half the buckets for keys after the query.
  const int64_t half = num_buckets / 2;
  int64_t bucket = rel_pos > 0 ? half : 0;
  const int64_t distance = std::abs(rel_pos);
  const int64_t max_exact = half / 2;
  if (distance < max_exact) return bucket + distance;
  // As torch evaluates it: float32 tensor ops with the Python float log(max_dist / max_exact)
  // rounded to float32, then .long() (truncation).
  const float ratio = static_cast<float>(distance) / static_cast<float>(max_exact);
  const auto log_range = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / log_range * static_cast<float>(half - max_exact);
  const int64_t large = max_exact + static_cast<int64_t>(scaled);
  return bucket + std::min(large, half - 1);
}

std::map<std::string, Shape> t5_weight_shapes(const T5Config& c) {
  std::map<std::string, Shape> shapes;
  shapes["token_embedding.weight"] = {c.vocab, c.dim};
  shapes["norm.weight"] = {c.dim};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    shapes[block_name(i, "norm1.weight")] = {c.dim};
    shapes[block_name(i, "norm2.weight")] = {c.dim};
    for (const char* p : {"q", "k", "v"}) {
      shapes[block_name(i, std::string("attn.") + p + ".weight")] = {c.dim_attn, c.dim};
    }
    shapes[block_name(i, "attn.o.weight")] = {c.dim, c.dim_attn};
    shapes[block_name(i, "ffn.gate.0.weight")] = {c.ffn_dim, c.dim};
    shapes[block_name(i, "ffn.fc1.weight")] = {c.ffn_dim, c.dim};
    shapes[block_name(i, "ffn.fc2.weight")] = {c.dim, c.ffn_dim};
    shapes[block_name(i, "pos_embedding.embedding.weight")] = {c.num_buckets, c.num_heads};
  }
  return shapes;
}

T5Config detect_t5_config(const std::map<std::string, Shape>& shapes) {
  auto shape_of = [&](const std::string& name, size_t rank) -> const Shape* {
    auto it = shapes.find(name);
    return it != shapes.end() && it->second.size() == rank ? &it->second : nullptr;
  };
  const Shape* embedding = shape_of("token_embedding.weight", 2);
  const Shape* q = shape_of("blocks.0.attn.q.weight", 2);
  const Shape* fc1 = shape_of("blocks.0.ffn.fc1.weight", 2);
  const Shape* relative = shape_of("blocks.0.pos_embedding.embedding.weight", 2);
  if (!embedding || !q || !fc1 || !relative) {
    // Not enough to size the model: report against an empty configuration's names.
    std::vector<std::string> absent;
    if (!embedding) absent.push_back("token_embedding.weight");
    if (!q) absent.push_back("blocks.0.attn.q.weight");
    if (!fc1) absent.push_back("blocks.0.ffn.fc1.weight");
    if (!relative) absent.push_back("blocks.0.pos_embedding.embedding.weight");
    std::string names;
    for (const auto& n : absent) names += (names.empty() ? "" : ", ") + n;
    throw make_error("not a umt5 text encoder: missing or not 2-D: ", names,
                     shapes.empty() ? " (no tensors at all)" : "");
  }
  T5Config c;
  c.vocab = (*embedding)[0];
  c.dim = (*embedding)[1];
  c.dim_attn = (*q)[0];
  c.ffn_dim = (*fc1)[0];
  c.num_buckets = (*relative)[0];
  c.num_heads = (*relative)[1];
  static const std::regex kBlock(R"(blocks\.(\d+)\..*)");
  for (const auto& [name, shape] : shapes) {
    std::smatch m;
    if (std::regex_match(name, m, kBlock)) {
      c.num_layers = std::max<int64_t>(c.num_layers, std::stoll(m[1].str()) + 1);
    }
  }
  WB_CHECK(c.num_heads > 0 && c.dim_attn % c.num_heads == 0, "T5 encoder: dim_attn ", c.dim_attn,
           " is not a multiple of the ", c.num_heads, " heads of the relative position table");
  WB_CHECK(c.num_buckets >= 4 && c.num_buckets % 2 == 0, "T5 encoder: ", c.num_buckets,
           " relative position buckets (need an even number, at least 4)");
  check_shapes(t5_weight_shapes(c), shapes);
  return c;
}

T5Encoder::T5Encoder(const T5Config& config, const Weights& weights, const core::Context& ctx,
                     parallel::Comm* shard_comm)
    : config_(config), device_(ctx.device()) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, tensor] : weights) shapes[name] = tensor.shape();
  check_shapes(t5_weight_shapes(config), shapes);
  auto get = [&](const std::string& name) {
    return weights.at(name).to(DType::F32).to(ctx.device());
  };
  token_embedding_ = weights.at("token_embedding.weight").to(core::Device::cpu());
  WB_CHECK(core::is_floating(token_embedding_.dtype()), "T5 encoder: token_embedding.weight is ",
           token_embedding_.describe());
  final_norm_ = get("norm.weight");
  for (int64_t i = 0; i < config.num_layers; ++i) {
    relative_bias_.push_back(weights.at(block_name(i, "pos_embedding.embedding.weight"))
                                 .to(core::Device::cpu())
                                 .to(DType::F32));
  }
  if (shard_comm == nullptr || shard_comm->size() == 1) {
    for (int64_t i = 0; i < config.num_layers; ++i) {
      blocks_.push_back(make_block([&](size_t k) { return get(block_name(i, kLayerTensors[k])); }));
    }
    return;
  }
  shard_comm_ = shard_comm;
  for (int64_t i = 0; i < config.num_layers; ++i) {
    std::vector<std::pair<std::string, Tensor>> members;
    for (const char* n : kLayerTensors) members.emplace_back(n, weights.at(block_name(i, n)));
    sharded_.emplace_back(members, DType::F32, shard_comm->rank(), shard_comm->size(),
                          ctx.device());
  }
  for (Tensor& buffer : gathered_) buffer = sharded_.front().make_buffer();
}

T5Encoder::Block T5Encoder::make_block(const std::function<Tensor(size_t)>& get) {
  Block b;
  Tensor* members[] = {&b.norm1, &b.q, &b.k, &b.v, &b.o, &b.norm2, &b.gate, &b.fc1, &b.fc2};
  static_assert(std::size(members) == std::size(kLayerTensors));
  for (size_t k = 0; k < std::size(members); ++k) *members[k] = get(k);
  return b;
}

const T5Encoder::Block& T5Encoder::block(int64_t index) {
  if (sharded_.empty()) return blocks_.at(static_cast<size_t>(index));
  // Consecutive layers alternate between the two buffers, so a gather for the next layer may
  // overlap the current one once the communicator runs asynchronously.
  Tensor& buffer = gathered_[index % 2];
  const parallel::ShardedTensors& layer = sharded_.at(static_cast<size_t>(index));
  layer.gather(*shard_comm_, buffer);
  gathered_block_ = make_block([&](size_t k) { return layer.view(buffer, k); });
  return gathered_block_;
}

size_t T5Encoder::resident_layer_bytes() const {
  if (!resident_) return 0;
  size_t bytes = 0;
  for (const Block& b : blocks_) {
    for (const Tensor* t : {&b.norm1, &b.q, &b.k, &b.v, &b.o, &b.norm2, &b.gate, &b.fc1, &b.fc2}) {
      bytes += t->nbytes();
    }
  }
  for (const parallel::ShardedTensors& layer : sharded_) bytes += layer.shard_bytes();
  return bytes;
}

size_t T5Encoder::resident_weight_bytes() const {
  if (!resident_) return 0;
  size_t bytes = resident_layer_bytes() + final_norm_.nbytes();
  for (const Tensor& t : relative_bias_) bytes += t.nbytes();
  for (const Tensor& buffer : gathered_) {
    if (buffer.defined()) bytes += buffer.nbytes();
  }
  return bytes;
}

void T5Encoder::plan(const core::Context& ctx, int64_t tokens) {
  Buffers& b = buffers_;
  if (b.tokens == tokens) return;
  const T5Config& c = config_;
  const auto device = ctx.device();
  auto make = [device](const Shape& shape) { return Tensor::empty(shape, DType::F32, device); };
  b.tokens = tokens;
  b.x = make({tokens, c.dim});
  b.normed = make({tokens, c.dim});
  b.proj = make({tokens, c.dim});
  for (Tensor* t : {&b.q, &b.k, &b.v, &b.attn}) *t = make({tokens, c.dim_attn});
  b.gate = make({tokens, c.ffn_dim});
  b.hidden = make({tokens, c.ffn_dim});
  b.bias = make({c.num_heads, tokens, tokens});
  b.host_bias = device.is_cpu() ? b.bias : Tensor::empty({c.num_heads, tokens, tokens}, DType::F32);
  b.buckets.resize(static_cast<size_t>(tokens * tokens));
  for (int64_t i = 0; i < tokens; ++i) {
    for (int64_t j = 0; j < tokens; ++j) {
      b.buckets[static_cast<size_t>(i * tokens + j)] =
          t5_relative_position_bucket(j - i, c.num_buckets, c.max_distance);
    }
  }
}

void T5Encoder::run_block(const core::Context& ctx, const Block& block, const Tensor& relative_bias,
                          int64_t length) {
  Buffers& b = buffers_;
  const T5Config& c = config_;
  const int64_t tokens = b.tokens, heads = c.num_heads;

  // The layer's relative-position bias: bias[h, i, j] = table[bucket(j − i), h].
  const float* table = relative_bias.data<float>();
  float* bias = b.host_bias.data<float>();
  for (int64_t h = 0; h < heads; ++h) {
    float* plane = bias + h * tokens * tokens;
    for (int64_t ij = 0; ij < tokens * tokens; ++ij) {
      plane[ij] = table[b.buckets[static_cast<size_t>(ij)] * heads + h];
    }
  }
  if (!ctx.device().is_cpu()) b.bias.copy_from(b.host_bias);

  // Self-attention: no 1/sqrt(d) scale, the position bias added, padding keys masked.
  ops::rms_norm(ctx, b.x, block.norm1, kEps, b.normed);
  ops::linear(ctx, b.normed, block.q, Tensor(), b.q);
  ops::linear(ctx, b.normed, block.k, Tensor(), b.k);
  ops::linear(ctx, b.normed, block.v, Tensor(), b.v);
  ops::AttentionOptions options;
  options.scale = 1.0f;
  options.k_lens = {length};
  options.bias = b.bias;
  auto as_heads = [&](const Tensor& t) { return t.reshape({1, tokens, heads, c.head_dim()}); };
  Tensor attn = as_heads(b.attn);
  ops::attention(ctx, as_heads(b.q), as_heads(b.k), as_heads(b.v), attn, options);
  ops::linear(ctx, b.attn, block.o, Tensor(), b.proj);
  ops::add(ctx, b.x, b.proj, b.x);

  // Gated-GELU feed-forward: fc2(gelu_tanh(gate(x)) · fc1(x)).
  ops::rms_norm(ctx, b.x, block.norm2, kEps, b.normed);
  ops::linear(ctx, b.normed, block.gate, Tensor(), b.gate);
  ops::gelu_tanh(ctx, b.gate, b.gate);
  ops::linear(ctx, b.normed, block.fc1, Tensor(), b.hidden);
  ops::mul(ctx, b.hidden, b.gate, b.hidden);
  ops::linear(ctx, b.hidden, block.fc2, Tensor(), b.proj);
  ops::add(ctx, b.x, b.proj, b.x);
}

void T5Encoder::set_resident(bool resident) {
  if (resident == resident_) return;
  auto move = [&](Tensor& t) {
    if (t.defined()) t = resident ? t.to(device_) : t.to_pinned();
  };
  move(final_norm_);
  for (Block& b : blocks_) {
    for (Tensor* t : {&b.norm1, &b.q, &b.k, &b.v, &b.o, &b.norm2, &b.gate, &b.fc1, &b.fc2})
      move(*t);
  }
  for (parallel::ShardedTensors& layer : sharded_) layer.place_on_host(!resident);
  for (Tensor& buffer : gathered_) {
    buffer = resident && !sharded_.empty() ? sharded_.front().make_buffer() : Tensor();
  }
  gathered_block_ = Block{};
  buffers_ = Buffers{};
  resident_ = resident;
}

void T5Encoder::forward(const core::Context& ctx, const Tensor& ids, int64_t length,
                        Tensor& context) {
  const T5Config& c = config_;
  WB_CHECK(resident_, "T5 encoder: encode while offloaded (set_resident(true) first)");
  // Checked before anything runs; sharded, every rank learns every rank's verdict first, so a bad
  // argument on one rank cannot leave the others waiting in a gather.
  std::string problem;
  try {
    WB_CHECK(ids.ndim() == 1 && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32) &&
                 ids.device().is_cpu(),
             "T5 encoder: ids must be a host int64 or int32 vector, got ", ids.describe());
    WB_CHECK(length >= 1 && length <= ids.dim(0), "T5 encoder: ", length, " real tokens of ",
             ids.dim(0), " ids (need 1 <= length <= ids)");
    WB_CHECK(context.shape() == Shape({length, c.dim}), "T5 encoder: output ", context.describe(),
             ", expected ", core::shape_str({length, c.dim}));
    const Tensor ids64 = ids.dtype() == DType::I64 ? ids : ids.to(DType::I64);
    for (int64_t i = 0; i < ids64.numel(); ++i) {
      const int64_t id = ids64.data<int64_t>()[i];
      WB_CHECK(id >= 0 && id < c.vocab, "T5 encoder: token id ", id, " at position ", i,
               " is outside the vocabulary of ", c.vocab);
    }
  } catch (const Error& e) {
    problem = e.what();
  }
  if (shard_comm_) {
    agree_on_input(ctx, ids, length, problem);
  } else if (!problem.empty()) {
    throw Error(problem);
  }
  const int64_t tokens = ids.dim(0);
  plan(ctx, tokens);
  Buffers& b = buffers_;

  // Token embedding, row by row from the embedding's own dtype.
  const Tensor ids64 = ids.dtype() == DType::I64 ? ids : ids.to(DType::I64);
  const int64_t* id = ids64.data<int64_t>();
  Tensor x = ctx.device().is_cpu() ? b.x : Tensor::empty({tokens, c.dim}, DType::F32);
  for (int64_t i = 0; i < tokens; ++i) {
    x.slice(i, i + 1).copy_from(token_embedding_.slice(id[i], id[i] + 1));
  }
  if (!ctx.device().is_cpu()) b.x.copy_from(x);

  for (int64_t i = 0; i < c.num_layers; ++i) {
    run_block(ctx, block(i), relative_bias_[static_cast<size_t>(i)], length);
  }
  Tensor out = b.normed.slice(0, length);
  ops::rms_norm(ctx, b.x.slice(0, length), final_norm_, kEps, out);
  context.copy_from(out);
}

void T5Encoder::agree_on_input(const core::Context& ctx, const Tensor& ids, int64_t length,
                               const std::string& problem) {
  // Each rank's record: whether its arguments are bad, then its ids' count, length and hash.
  constexpr int64_t kRecord = 4;
  std::vector<int64_t> record(kRecord, 0);
  if (problem.empty()) {
    const Tensor ids64 = ids.dtype() == DType::I64 ? ids : ids.to(DType::I64);
    uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64 over the ids' bytes
    const auto* bytes = static_cast<const unsigned char*>(ids64.raw());
    for (size_t i = 0; i < ids64.nbytes(); ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    record = {0, ids.dim(0), length, static_cast<int64_t>(hash)};
  } else {
    record[0] = 1;
  }
  // On the context's device: the shard communicator moves what the gathers move (NCCL on a GPU).
  const Tensor mine = Tensor::from_vector(record, {kRecord}).to(ctx.device());
  Tensor all;
  shard_comm_->all_gather(mine, all);
  const Tensor host = all.to(core::Device::cpu());
  const int64_t* r = host.data<int64_t>();
  if (!problem.empty()) throw Error(problem);
  for (int rank = 0; rank < shard_comm_->size(); ++rank) {
    const int64_t* other = r + rank * kRecord;
    WB_CHECK(other[0] == 0, "T5 encoder: rank ", rank,
             " of the shard group was given bad arguments to encode (its log has the error)");
  }
  for (int rank = 1; rank < shard_comm_->size(); ++rank) {
    const int64_t* other = r + rank * kRecord;
    WB_CHECK(std::equal(r, r + kRecord, other),
             "T5 encoder: the ranks of the shard group must encode the same ids together; rank 0 "
             "has ",
             r[1], " ids (", r[2], " real), rank ", rank, " ", other[1], " ids (", other[2],
             " real)", other[1] == r[1] && other[2] == r[2] ? ", other values" : "");
  }
}

Tensor T5Encoder::encode(const core::Context& ctx, const Tensor& ids, int64_t length) {
  // A bad length is reported by forward (on every rank, sharded), not by the allocation.
  Tensor context =
      Tensor::empty({std::max<int64_t>(length, 0), config_.dim}, DType::F32, ctx.device());
  forward(ctx, ids, length, context);
  return context;
}

}  // namespace wanbatch::model::wan
