// The umt5-xxl text encoder Wan conditions on (wan-spec "Text encoder", official
// `wan/modules/t5.py`, T5Encoder with shared_pos=False), written over core::ops: token embedding;
// per layer T5LayerNorm → self-attention without 1/sqrt(d) scaling plus the layer's own
// bidirectional relative-position bias, keys past the real tokens masked → residual; T5LayerNorm →
// fc2(gelu_tanh(gate(x)) · fc1(x)) → residual; final T5LayerNorm. Computed in fp32 (the official
// runs in bf16; its fp16 clamp never triggers in fp32). Weights by official name; the activation
// buffers are planned once per sequence length and reused. The layers' parameters may be sharded
// over a communicator's ranks (sharded weights, DESIGN.md "Parallelism"), as the DiT's blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "parallel/comm.h"
#include "parallel/sharded_tensors.h"

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
  //
  // With `shard_comm` of more than one rank, every layer's parameters (norms, attention and
  // feed-forward weights: all but the small host-side relative-position tables) are laid end to
  // end and split evenly over its ranks: this rank copies only its slice from `weights` (from a
  // memory-mapped checkpoint it reads only those bytes) and gathers a layer's whole set just before
  // running it, into one of two reusable buffers. The token embedding stays replicated: it is a
  // host view of the checkpoint, of which a lookup reads only the ≤ text_len rows it needs, so
  // splitting it by rows would add a collective and save no memory. Every rank of `shard_comm`
  // builds the encoder and calls forward / encode together with the same ids; `shard_comm` must
  // outlive the encoder.
  T5Encoder(const T5Config& config, const Weights& weights, const core::Context& ctx,
            parallel::Comm* shard_comm = nullptr);

  const T5Config& config() const { return config_; }
  bool sharded() const { return shard_comm_ != nullptr; }
  // Bytes of layer parameters this rank holds (its shards when sharded).
  size_t resident_layer_bytes() const;
  // Bytes of the weights this encoder holds: the layers (or their shards and the two gather
  // buffers), the final norm and the relative-position tables. Not the token embedding, which
  // stays a view of the checkpoint on the host (only looked-up rows are read).
  size_t resident_weight_bytes() const;

  // --offload model: every weight on the device (and the activation buffers) moves to pinned host
  // memory (false) or back (true). An encoder that is not resident refuses to encode.
  void set_resident(bool resident);
  bool resident() const { return resident_; }

  // ids [L] (int64 or int32, host): tokens 0 … length−1 are real, the rest padding, which is
  // masked out as keys (the official attention mask) so the real rows do not depend on it.
  // context [length, dim] gets the real rows. Running on the unpadded ids (L = length) gives the
  // same values faster; the padded form is for batching. Sharded, the ranks first compare their
  // arguments: bad arguments on any rank, or ids that differ between ranks, throw on every rank.
  void forward(const core::Context& ctx, const core::Tensor& ids, int64_t length,
               core::Tensor& context);
  // The same, allocating context [length, dim] f32 on the context's device.
  core::Tensor encode(const core::Context& ctx, const core::Tensor& ids, int64_t length);

 private:
  struct Block {
    core::Tensor norm1, q, k, v, o, norm2, gate, fc1, fc2;
  };
  struct Buffers {
    int64_t tokens = -1;
    core::Tensor x, normed, q, k, v, attn, proj, gate, hidden, bias;
    std::vector<int64_t> buckets;  // [L, L] relative-position buckets, key − query
    core::Tensor host_bias;        // [H, L, L] on the host, filled per layer
  };

  // A layer's tensors by their index in the layer's layout (kLayerTensors: norm1, q, k, v, o,
  // norm2, gate, fc1, fc2).
  static Block make_block(const std::function<core::Tensor(size_t)>& get);
  // Layer `index`: resident, or gathered from the shards into one of the two buffers.
  const Block& block(int64_t index);
  // Sharded: every rank learns every rank's argument check and ids; throws on all alike.
  void agree_on_input(const core::Context& ctx, const core::Tensor& ids, int64_t length,
                      const std::string& problem);

  void plan(const core::Context& ctx, int64_t tokens);
  void run_block(const core::Context& ctx, const Block& block, const core::Tensor& relative_bias,
                 int64_t length);

  T5Config config_;
  core::Device device_;
  bool resident_ = true;
  core::Tensor token_embedding_;             // [vocab, dim], host, original dtype
  std::vector<Block> blocks_;                // resident layers (unsharded)
  std::vector<core::Tensor> relative_bias_;  // per layer pos_embedding [buckets, heads], host f32
  core::Tensor final_norm_;
  // Sharded layers: one flat f32 group per layer, every layer the same layout.
  std::vector<parallel::ShardedTensors> sharded_;
  parallel::Comm* shard_comm_ = nullptr;
  core::Tensor gathered_[2];  // alternating between consecutive layers
  Block gathered_block_;
  Buffers buffers_;
};

}  // namespace wanbatch::model::wan
