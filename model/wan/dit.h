// The Wan diffusion transformer (wan-spec "DiT forward"), written once over core::ops for every
// variant: T2V, I2V (input channels concatenated with `y`, and Wan2.1's CLIP image branch), TI2V
// (per-token timesteps). Weights are held in the compute dtype on the context's device; the
// activation buffers are planned once per input shape and batch size and reused across calls.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "model/wan/config.h"
#include "parallel/comm.h"
#include "parallel/ulysses.h"
#include "parallel/weight_stream.h"

namespace wanbatch::model::wan {

class LoraUpdates;

// One sample's inputs. latent [C, F, H, W]; timestep [1] or one value per token [f·h·w] (TI2V);
// context [n, text_dim] with 1 ≤ n ≤ text_len (unpadded); y [C', F, H, W] for I2V; clip
// [257, image_dim] CLIP features for the Wan2.1 image branch.
struct DitInput {
  core::Tensor latent;
  core::Tensor timestep;
  core::Tensor context;
  core::Tensor y;
  core::Tensor clip;
};

class WanDit {
 public:
  // Tensors by official name (any distribution prefix already stripped).
  using Weights = std::map<std::string, core::Tensor>;

  // Builds the model from named weights on the context's device. Throws naming a missing tensor or
  // a shape that does not fit `config`. `gemm_dtype` is the precision of the GEMMs and attention
  // and of the activations between them (wan-spec "DiT forward": bf16 in the official code); the
  // residual stream, modulation, norms' statistics, the time embedding and the head stay fp32. F32
  // (the CPU reference) makes everything fp32.
  //
  // With `shard_comm` (sharded weights, DESIGN.md "Parallelism"), every block's parameters are
  // split evenly over its ranks: this rank keeps 1/N of them and gathers a block's whole set just
  // before running it (into one of two reusable buffers). Every rank of `shard_comm` builds the
  // model and runs each forward together; `shard_comm` must outlive the model.
  //
  // With `offload_blocks` (--offload blocks) the blocks' parameters (or this rank's shards) wait
  // in pinned host memory and are copied to the device a block ahead of their use, on a copy
  // stream (parallel/weight_stream.h).
  //
  // `loras` (optional) are added to each tensor just before it is converted (model/wan/lora.h),
  // so the host holds one merged tensor (resident) or one merged block (sharded) at a time.
  WanDit(const DitConfig& config, const Weights& weights, const core::Context& ctx,
         core::DType gemm_dtype = core::DType::F32, parallel::Comm* shard_comm = nullptr,
         bool offload_blocks = false, const LoraUpdates* loras = nullptr);

  const DitConfig& config() const { return config_; }
  core::DType gemm_dtype() const { return gemm_dtype_; }
  // Device bytes of block parameters this rank holds: the blocks, or their shards (none when
  // offloaded).
  size_t resident_block_bytes() const;
  // Device bytes of all the weights this rank holds: the blocks' (above), the buffers blocks are
  // gathered or copied into, the embeddings and the head.
  size_t resident_weight_bytes() const;
  // Bytes of block parameters waiting in pinned host memory (--offload blocks).
  size_t offloaded_block_bytes() const { return stream_ ? stream_->host_bytes() : 0; }
  // For the memory report: the device buffers blocks are gathered or copied into (counted in
  // resident_weight_bytes too), the weights waiting in host memory (offloaded blocks, or the
  // whole model while it is not resident), and the activation buffers planned for the last
  // forward's shape.
  size_t weight_buffer_bytes() const { return stream_ ? stream_->buffer_bytes() : 0; }
  size_t host_weight_bytes() const;
  size_t activation_bytes() const;

  // --offload model: moves every weight of the model (and its activation buffers, which are
  // planned again) to pinned host memory (false) or back to its device (true). A model that is
  // not resident refuses forward. On a CPU model it only changes which host memory holds it.
  void set_resident(bool resident);
  bool resident() const { return resident_; }

  // Ulysses sequence parallelism over `sp` (DESIGN.md "Parallelism"); null or one rank: off. Every
  // rank of the group calls forward with the same inputs; each embeds and runs only its share of
  // the (padded) tokens, self-attention exchanges q, k, v and its output over `sp`, and the output
  // tokens are gathered so every rank returns the whole velocity. The heads must divide by the
  // group size. `sp` must outlive the model's use of it.
  void set_sequence_parallel(parallel::Comm* sp);

  // velocity [out_dim, F, H, W] for one sample.
  void forward(const core::Context& ctx, const DitInput& input, core::Tensor& velocity);
  // One latent under several text contexts (classifier-free guidance: the prompt and the negative
  // prompt) as one batch, so every weight is read once: velocities[i] is the output for
  // contexts[i]; input.context is not used.
  void forward(const core::Context& ctx, const DitInput& input,
               const std::vector<const core::Tensor*>& contexts,
               const std::vector<core::Tensor*>& velocities);

 private:
  struct Linear {
    core::Tensor weight, bias;
  };
  struct Block {
    Linear q, k, v, o;
    core::Tensor norm_q, norm_k;
    Linear cross_q, cross_k, cross_v, cross_o;
    core::Tensor cross_norm_q, cross_norm_k;
    Linear k_img, v_img;
    core::Tensor norm_k_img;
    core::Tensor norm3_weight, norm3_bias;
    Linear ffn_in, ffn_out;
    core::Tensor modulation;  // [6, dim]
  };
  // Activations for one input shape.
  // Activations for one input shape. `tokens` and `time_rows` are this rank's (its share of the
  // padded sequence under Ulysses); `seq_tokens` is the whole sequence.
  struct Buffers {
    int64_t batch = -1, tokens = -1, time_rows = -1, image_tokens = -1, seq_tokens = -1;
    core::Tensor x, normed, q, k, v, attn, proj, hidden;
    core::Tensor ctx_k, ctx_v, img_k, img_v, cross_attn, img_attn;
    core::Tensor e, e0, e0_act, e0_grouped, modulation, head_shift, head_scale, head_out;
    core::Tensor text, text_hidden, text_padded, img, img_hidden, img_normed;
    core::Tensor input_cat, patches, sinusoid;  // flat: their shapes follow the latent's
    core::Tensor timestep;                      // this rank's per-token timesteps (Ulysses)
    core::Tensor head_in;                       // the head's fp32 input
    core::Tensor q_heads, k_heads, v_heads, attn_heads, head_all;  // Ulysses only
    // The exchanges of v, q and k, in flight at once (index = slot, kExchangeV...): each sends
    // from a buffer of its own and receives into the one it was sent from (v, q or k: free once
    // sent). The attention output's exchange back borrows v's and q's send buffers.
    parallel::UlyssesScratch exchange[3];
    parallel::UlyssesScratch exchange_back;
    parallel::UlyssesScratch gather;  // the output tokens (fp32)
  };
  // This rank's share of the sequence: global token range [begin, begin + tokens), of which the
  // first `valid` are real (the rest pad the sequence to a multiple of the sp size).
  struct SequenceRange {
    int64_t begin = 0, tokens = 0, valid = 0, padded = 0;
  };

  // A block's tensors by name within the block ("self_attn.q.weight", ...).
  Block make_block(const std::function<core::Tensor(const std::string&)>& get) const;
  // Block `index`: resident, or gathered from the shards into `slot`'s buffers.
  const Block& block(const core::Context& ctx, int64_t index);

  void plan(const core::Context& ctx, int64_t batch, int64_t seq_tokens, const SequenceRange& range,
            int64_t time_rows, int64_t image_tokens);
  void embed_time(const core::Context& ctx, const core::Tensor& timestep);
  void embed_context(const core::Context& ctx, const std::vector<const core::Tensor*>& contexts,
                     const core::Tensor& clip);
  // One block. Its FFN's gated residual is left pending in proj and modulation[5], for the next
  // norm to apply (fused); `ffn_residual_pending`: the previous block's is, so apply it first.
  void run_block(const core::Context& ctx, const Block& block, const core::ops::RopeGrid& grid,
                 const SequenceRange& range, bool ffn_residual_pending);
  // Under Ulysses, starts `local` (this rank's v, q or k) on its way to head-sharded in `slot`;
  // self_attention finishes all three.
  static constexpr int kExchangeV = 0, kExchangeQ = 1, kExchangeK = 2;
  void start_exchange(const core::Context& ctx, const core::Tensor& local, int slot);
  void self_attention(const core::Context& ctx, const SequenceRange& range);
  void linear(const core::Context& ctx, const Linear& layer, const core::Tensor& x,
              core::Tensor& out) const;
  static std::vector<core::Tensor*> block_tensors(Block& block);
  std::vector<core::Tensor*> outer_tensors();  // the embeddings' and the head's

  DitConfig config_;
  core::DType gemm_dtype_ = core::DType::F32;
  core::Device device_;
  bool resident_ = true;
  core::Tensor patch_weight_, patch_bias_;  // patch embedding as a [dim, C·pt·ph·pw] linear
  Linear text_in_, text_out_, time_in_, time_out_, time_projection_, head_;
  core::Tensor head_modulation_;  // [2, dim]
  Linear img_fc1_, img_fc2_;
  core::Tensor img_norm1_weight_, img_norm1_bias_, img_norm2_weight_, img_norm2_bias_;
  std::vector<Block> blocks_;  // resident blocks (neither sharded nor offloaded)
  // Sharded or offloaded blocks: every block has the same layout of two flat groups (GEMM dtype,
  // fp32); `slots_` says where each of its tensors is (group, index).
  std::optional<parallel::WeightStream> stream_;
  std::map<std::string, std::pair<int, size_t>> slots_;
  Block gathered_block_;  // views into the stream's buffers for the block being run
  Buffers buffers_;
  parallel::Comm* sp_ = nullptr;
};

}  // namespace wanbatch::model::wan
