// The umt5-xxl text encoder Wan conditions on (wan-spec "Text encoder", official
// `wan/modules/t5.py`, T5Encoder with shared_pos=False), written over core::ops: token embedding;
// per layer T5LayerNorm → self-attention without 1/sqrt(d) scaling plus the layer's own
// bidirectional relative-position bias, keys past the real tokens masked → residual; T5LayerNorm →
// fc2(gelu_tanh(gate(x)) · fc1(x)) → residual; final T5LayerNorm. Computed in fp32 (the official
// runs in bf16; its fp16 clamp never triggers in fp32). Weights by official name; the activation
// buffers are planned once per sequence length and reused.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace wanbatch::model::wan {

struct T5Config {
  int64_t vocab = 0, dim = 0, dim_attn = 0, ffn_dim = 0, num_heads = 0, num_layers = 0,
          num_buckets = 0;
  int64_t max_distance = 128;  // T5RelativeEmbedding's max_dist (not stored in the weights)

  int64_t head_dim() const { return dim_attn / num_heads; }
};

// T5RelativeEmbedding._relative_position_bucket for rel_pos = key − query, bidirectional: the
// sign picks the half, |rel_pos| below num_buckets/4 is its own bucket, larger distances are
// log-spaced up to max_distance (computed in float32 as PyTorch does) and clamp to the last.
int64_t t5_relative_position_bucket(int64_t rel_pos, int64_t num_buckets, int64_t max_distance);

// The official tensor names and shapes the configuration implies.
std::map<std::string, core::Shape> t5_weight_shapes(const T5Config& config);

// The configuration from the tensors' shapes (official names): vocab and dim from
// token_embedding, dim_attn from attn.q, ffn_dim from ffn.fc1, layers from the block count, heads
// and buckets from blocks.0.pos_embedding.embedding.weight [buckets, heads]. Then every tensor is
// checked against it: one Error lists every missing, unexpected and misshapen tensor.
T5Config detect_t5_config(const std::map<std::string, core::Shape>& shapes);

class T5Encoder {
 public:
  using Weights = std::map<std::string, core::Tensor>;

  // Converts the weights to fp32 on the context's device; the token embedding stays as it is on
  // the host (its rows are converted when looked up: for umt5-xxl it is 1 G parameters).
  T5Encoder(const T5Config& config, const Weights& weights, const core::Context& ctx);

  const T5Config& config() const { return config_; }

  // ids [L] (int64 or int32, host): tokens 0 … length−1 are real, the rest padding, which is
  // masked out as keys (the official attention mask) so the real rows do not depend on it.
  // context [length, dim] gets the real rows. Running on the unpadded ids (L = length) gives the
  // same values faster; the padded form is for batching.
  void forward(const core::Context& ctx, const core::Tensor& ids, int64_t length,
               core::Tensor& context);
  // The same, allocating context [length, dim] f32 on the context's device.
  core::Tensor encode(const core::Context& ctx, const core::Tensor& ids, int64_t length);

 private:
  struct Block {
    core::Tensor norm1, q, k, v, o, norm2, gate, fc1, fc2;
    core::Tensor relative_bias;  // pos_embedding [buckets, heads], host f32
  };
  struct Buffers {
    int64_t tokens = -1;
    core::Tensor x, normed, q, k, v, attn, proj, gate, hidden, bias;
    std::vector<int64_t> buckets;  // [L, L] relative-position buckets, key − query
    core::Tensor host_bias;        // [H, L, L] on the host, filled per layer
  };

  void plan(const core::Context& ctx, int64_t tokens);
  void run_block(const core::Context& ctx, const Block& block, int64_t length);

  T5Config config_;
  core::Tensor token_embedding_;  // [vocab, dim], host, original dtype
  std::vector<Block> blocks_;
  core::Tensor final_norm_;
  Buffers buffers_;
};

}  // namespace wanbatch::model::wan
