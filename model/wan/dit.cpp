#include "model/wan/dit.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/ops.h"
#include "core/profiler.h"
#include "model/wan/lora.h"
#include "model/wan/weight_layout.h"
#include "parallel/topology.h"

namespace wanbatch::model::wan {
namespace {

namespace ops = core::ops;
using core::DType;
using core::Shape;
using core::Tensor;

// Wan's LayerNorm/RMSNorm eps; the image branch uses torch.nn.LayerNorm's default.
constexpr float kEps = 1e-6f;
constexpr float kImageNormEps = 1e-5f;
// The reference splits the cross-attention context after this many CLIP tokens.
constexpr int64_t kClipTokens = 257;

// dst ← src, converted to dst's dtype: on the stream when src is already on ctx's device (the
// sampler puts its inputs there), so a step neither waits for the device nor allocates; from
// elsewhere, a copy that waits for the device (and allocates when the dtypes differ).
void copy_into(const core::Context& ctx, const Tensor& src, Tensor dst) {
  if (src.device() == ctx.device()) {
    ops::cast(ctx, src, dst);
  } else {
    dst.copy_from(src);
  }
}

}  // namespace

WanDit::WanDit(const DitConfig& config, const Weights& weights, const core::Context& ctx,
               DType gemm_dtype, parallel::Comm* shard_comm, bool offload_blocks,
               const LoraUpdates* loras)
    : config_(config), gemm_dtype_(gemm_dtype), device_(ctx.device()) {
  WB_CHECK(gemm_dtype == DType::F32 || gemm_dtype == DType::BF16 || gemm_dtype == DType::F16,
           "DiT: GEMMs in ", core::dtype_name(gemm_dtype), " are not supported (f32, bf16, f16)");
  // Every tensor the configuration implies, with its shape, and converted for compute.
  std::map<std::string, Shape> expected;
  for (const WeightSpec& spec : dit_weight_specs(config)) expected[spec.name] = spec.shape;
  // fp32 for what the reference keeps in fp32 (norm weights, modulation, the time embedding, the
  // head, the patch embedding's few FLOPs); the GEMM dtype for the GEMMs of the blocks, the text
  // and image embeddings.
  auto get = [&](const std::string& name, DType dtype = DType::F32) {
    auto it = weights.find(name);
    WB_CHECK(it != weights.end(), "DiT weights: tensor '", name, "' is missing");
    WB_CHECK(it->second.shape() == expected.at(name), "DiT weights: tensor '", name, "' is ",
             it->second.describe(), ", expected ", core::shape_str(expected.at(name)));
    const Tensor merged = loras ? loras->apply(name, it->second) : it->second;
    return merged.to(dtype).to(ctx.device());
  };
  auto linear = [&](const std::string& name) {
    return Linear{get(name + ".weight", gemm_dtype), get(name + ".bias", gemm_dtype)};
  };
  auto linear_f32 = [&](const std::string& name) {
    return Linear{get(name + ".weight"), get(name + ".bias")};
  };
  const int64_t dim = config.dim;
  patch_weight_ = get("patch_embedding.weight").reshape({dim, -1});
  patch_bias_ = get("patch_embedding.bias");
  text_in_ = linear("text_embedding.0");
  text_out_ = linear("text_embedding.2");
  time_in_ = linear_f32("time_embedding.0");
  time_out_ = linear_f32("time_embedding.2");
  time_projection_ = linear_f32("time_projection.1");
  head_ = linear_f32("head.head");
  head_modulation_ = get("head.modulation").reshape({2, dim});
  if (config.image_branch) {
    img_norm1_weight_ = get("img_emb.proj.0.weight");
    img_norm1_bias_ = get("img_emb.proj.0.bias");
    img_fc1_ = linear("img_emb.proj.1");
    img_fc2_ = linear("img_emb.proj.3");
    img_norm2_weight_ = get("img_emb.proj.4.weight");
    img_norm2_bias_ = get("img_emb.proj.4.bias");
  }
  // The blocks: the GEMMs' weights and biases in the GEMM dtype, norms and modulation in fp32.
  auto block_dtype = [gemm_dtype](const std::string& suffix) {
    return suffix.find("norm") != std::string::npos || suffix == "modulation" ? DType::F32
                                                                              : gemm_dtype;
  };
  std::vector<std::string> suffixes;
  for (const auto& [name, shape] : expected) {
    if (name.rfind("blocks.0.", 0) == 0) suffixes.push_back(name.substr(9));
  }
  const bool sharded = shard_comm != nullptr && shard_comm->size() > 1;
  if (!sharded && !offload_blocks) {
    for (int64_t i = 0; i < config.num_layers; ++i) {
      const std::string p = "blocks." + std::to_string(i) + ".";
      blocks_.push_back(make_block(
          [&](const std::string& suffix) { return get(p + suffix, block_dtype(suffix)); }));
    }
    return;
  }
  // Sharded or offloaded: each block's parameters as two flat groups (GEMM dtype, fp32), which
  // the weight stream moves into device buffers block by block.
  for (const std::string& suffix : suffixes) {
    const int group = block_dtype(suffix) == DType::F32 ? 1 : 0;
    size_t index = 0;
    for (const auto& [other, slot] : slots_) index += slot.first == group;
    slots_[suffix] = {group, index};
  }
  auto block_source = [&](int64_t i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    std::vector<parallel::WeightStream::Group> members(2);
    for (const auto& [suffix, slot] : slots_) members[slot.first].resize(slot.second + 1);
    for (const auto& [suffix, slot] : slots_) {
      auto it = weights.find(p + suffix);
      WB_CHECK(it != weights.end(), "DiT weights: tensor '", p + suffix, "' is missing");
      WB_CHECK(it->second.shape() == expected.at(p + suffix), "DiT weights: tensor '", p + suffix,
               "' is ", it->second.describe(), ", expected ",
               core::shape_str(expected.at(p + suffix)));
      // Merged here, one block at a time: the stream keeps only this rank's slice of it.
      members[slot.first][slot.second] = {
          suffix, loras ? loras->apply(p + suffix, it->second) : it->second};
    }
    return members;
  };
  stream_.emplace(ctx, config.num_layers, block_source, std::vector<DType>{gemm_dtype, DType::F32},
                  parallel::WeightStream::Placement{shard_comm, offload_blocks});
}

WanDit::Block WanDit::make_block(const std::function<Tensor(const std::string&)>& get) const {
  auto linear = [&](const std::string& name) {
    return Linear{get(name + ".weight"), get(name + ".bias")};
  };
  Block b;
  b.q = linear("self_attn.q");
  b.k = linear("self_attn.k");
  b.v = linear("self_attn.v");
  b.o = linear("self_attn.o");
  b.norm_q = get("self_attn.norm_q.weight");
  b.norm_k = get("self_attn.norm_k.weight");
  b.cross_q = linear("cross_attn.q");
  b.cross_k = linear("cross_attn.k");
  b.cross_v = linear("cross_attn.v");
  b.cross_o = linear("cross_attn.o");
  b.cross_norm_q = get("cross_attn.norm_q.weight");
  b.cross_norm_k = get("cross_attn.norm_k.weight");
  if (config_.image_branch) {
    b.k_img = linear("cross_attn.k_img");
    b.v_img = linear("cross_attn.v_img");
    b.norm_k_img = get("cross_attn.norm_k_img.weight");
  }
  b.norm3_weight = get("norm3.weight");
  b.norm3_bias = get("norm3.bias");
  b.ffn_in = linear("ffn.0");
  b.ffn_out = linear("ffn.2");
  b.modulation = get("modulation").reshape({6, config_.dim});
  return b;
}

const WanDit::Block& WanDit::block(const core::Context& ctx, int64_t index) {
  if (!stream_) return blocks_.at(static_cast<size_t>(index));
  const std::array<Tensor, 2>* buffers = nullptr;
  {
    const core::ProfileScope profile(ctx, "all_gather");
    buffers = &stream_->acquire(index);
  }
  gathered_block_ = make_block([&](const std::string& suffix) {
    const auto& [group, i] = slots_.at(suffix);
    return stream_->view((*buffers)[static_cast<size_t>(group)], static_cast<size_t>(group), i);
  });
  return gathered_block_;
}

std::vector<Tensor*> WanDit::block_tensors(Block& b) {
  return {&b.q.weight,       &b.q.bias,         &b.k.weight,       &b.k.bias,
          &b.v.weight,       &b.v.bias,         &b.o.weight,       &b.o.bias,
          &b.norm_q,         &b.norm_k,         &b.cross_q.weight, &b.cross_q.bias,
          &b.cross_k.weight, &b.cross_k.bias,   &b.cross_v.weight, &b.cross_v.bias,
          &b.cross_o.weight, &b.cross_o.bias,   &b.cross_norm_q,   &b.cross_norm_k,
          &b.k_img.weight,   &b.k_img.bias,     &b.v_img.weight,   &b.v_img.bias,
          &b.norm_k_img,     &b.norm3_weight,   &b.norm3_bias,     &b.ffn_in.weight,
          &b.ffn_in.bias,    &b.ffn_out.weight, &b.ffn_out.bias,   &b.modulation};
}

std::vector<Tensor*> WanDit::outer_tensors() {
  return {&patch_weight_,    &patch_bias_,       &text_in_.weight,         &text_in_.bias,
          &text_out_.weight, &text_out_.bias,    &time_in_.weight,         &time_in_.bias,
          &time_out_.weight, &time_out_.bias,    &time_projection_.weight, &time_projection_.bias,
          &head_.weight,     &head_.bias,        &head_modulation_,        &img_fc1_.weight,
          &img_fc1_.bias,    &img_fc2_.weight,   &img_fc2_.bias,           &img_norm1_weight_,
          &img_norm1_bias_,  &img_norm2_weight_, &img_norm2_bias_};
}

size_t WanDit::resident_weight_bytes() const {
  if (!resident_) return 0;
  size_t bytes = resident_block_bytes() + (stream_ ? stream_->buffer_bytes() : 0);
  for (const Tensor* t : const_cast<WanDit*>(this)->outer_tensors()) {
    if (t->defined()) bytes += t->nbytes();
  }
  return bytes;
}

size_t WanDit::resident_block_bytes() const {
  if (!resident_) return 0;
  size_t bytes = 0;
  for (const Block& b : blocks_) {
    for (const Tensor* t : block_tensors(const_cast<Block&>(b))) {
      if (t->defined()) bytes += t->nbytes();
    }
  }
  if (stream_) bytes += stream_->device_shard_bytes();
  return bytes;
}

size_t WanDit::host_weight_bytes() const {
  size_t bytes = offloaded_block_bytes();
  if (resident_) return bytes;
  for (const Tensor* t : const_cast<WanDit*>(this)->outer_tensors()) {
    if (t->defined()) bytes += t->nbytes();
  }
  for (const Block& b : blocks_) {
    for (const Tensor* t : block_tensors(const_cast<Block&>(b))) {
      if (t->defined()) bytes += t->nbytes();
    }
  }
  return bytes;
}

size_t WanDit::activation_bytes() const {
  const Buffers& b = buffers_;
  size_t bytes = 0;
  for (const Tensor* t : {&b.x,
                          &b.normed,
                          &b.q,
                          &b.k,
                          &b.v,
                          &b.attn,
                          &b.proj,
                          &b.hidden,
                          &b.ctx_k,
                          &b.ctx_v,
                          &b.img_k,
                          &b.img_v,
                          &b.cross_attn,
                          &b.img_attn,
                          &b.e,
                          &b.e0,
                          &b.e0_act,
                          &b.e0_grouped,
                          &b.modulation,
                          &b.head_shift,
                          &b.head_scale,
                          &b.head_out,
                          &b.text,
                          &b.text_hidden,
                          &b.text_padded,
                          &b.img,
                          &b.img_hidden,
                          &b.img_normed,
                          &b.input_cat,
                          &b.patches,
                          &b.sinusoid,
                          &b.timestep,
                          &b.head_in,
                          &b.q_heads,
                          &b.k_heads,
                          &b.v_heads,
                          &b.attn_heads,
                          &b.head_all,
                          &b.exchange[kExchangeV].send,  // their recv buffers are v, q, k
                          &b.exchange[kExchangeQ].send,
                          &b.exchange[kExchangeK].send,
                          &b.gather.send,
                          &b.gather.recv}) {
    if (t->defined()) bytes += t->nbytes();
  }
  return bytes;
}

void WanDit::set_resident(bool resident) {
  if (resident == resident_) return;
  auto move = [&](Tensor& t) {
    if (t.defined()) t = resident ? t.to(device_) : t.to_pinned();
  };
  for (Tensor* t : outer_tensors()) move(*t);
  for (Block& b : blocks_) {
    for (Tensor* t : block_tensors(b)) move(*t);
  }
  if (stream_) stream_->set_resident(resident);
  gathered_block_ = Block{};
  buffers_ = Buffers{};  // the activations too; planned again by the next forward
  resident_ = resident;
}

void WanDit::linear(const core::Context& ctx, const Linear& layer, const Tensor& x,
                    Tensor& out) const {
  ops::linear(ctx, x, layer.weight, layer.bias, out);
}

void WanDit::set_sequence_parallel(parallel::Comm* sp) {
  WB_CHECK(!sp || config_.num_heads % sp->size() == 0, "--ulysses ", sp ? sp->size() : 1,
           " does not divide the model's ", config_.num_heads, " attention heads");
  sp_ = sp && sp->size() > 1 ? sp : nullptr;
  buffers_ = Buffers{};  // planned again for the new split
}

void WanDit::plan(const core::Context& ctx, int64_t batch, int64_t seq_tokens,
                  const SequenceRange& range, int64_t time_rows, int64_t image_tokens) {
  Buffers& b = buffers_;
  const int64_t tokens = range.tokens;
  if (b.batch == batch && b.tokens == tokens && b.seq_tokens == seq_tokens &&
      b.time_rows == time_rows && b.image_tokens == image_tokens) {
    return;
  }
  const auto& c = config_;
  const auto device = ctx.device();
  const DType low = gemm_dtype_;
  auto make = [device](const Shape& shape, DType dtype = DType::F32) {
    return Tensor::empty(shape, dtype, device);
  };
  const int64_t patch_volume = c.patch_size[0] * c.patch_size[1] * c.patch_size[2];
  b.batch = batch;
  b.tokens = tokens;
  b.seq_tokens = seq_tokens;
  b.time_rows = time_rows;
  const int64_t rows = batch * tokens, text_rows = batch * c.text_len;
  b.image_tokens = image_tokens;
  b.x = make({rows, c.dim});
  b.head_in = make({rows, c.dim});
  for (Tensor* t : {&b.normed, &b.q, &b.k, &b.v, &b.attn, &b.proj, &b.cross_attn, &b.img_attn}) {
    *t = make({rows, c.dim}, low);
  }
  b.hidden = make({rows, c.ffn_dim}, low);
  b.patches = make({seq_tokens, c.in_dim * patch_volume});
  b.input_cat = make({seq_tokens * c.in_dim * patch_volume});
  b.sinusoid = make({time_rows, c.freq_dim});
  b.head_out = make({rows, patch_volume * c.out_dim});
  b.e = make({time_rows, c.dim});
  b.e0_act = make({time_rows, c.dim});
  b.e0 = make({time_rows, 6 * c.dim});
  b.modulation = make({6, time_rows, c.dim});
  b.e0_grouped = make({6, time_rows, c.dim});
  b.head_shift = make({time_rows, c.dim});
  b.head_scale = make({time_rows, c.dim});
  b.text_padded = make({text_rows, c.text_dim}, low);
  b.text_hidden = make({text_rows, c.dim}, low);
  b.text = make({text_rows, c.dim}, low);
  b.ctx_k = make({text_rows, c.dim}, low);
  b.ctx_v = make({text_rows, c.dim}, low);
  if (image_tokens > 0) {
    b.img_normed = make({image_tokens, c.image_dim}, low);
    b.img_hidden = make({image_tokens, c.image_dim}, low);
    b.img = make({image_tokens, c.dim}, low);
    b.img_k = make({image_tokens, c.dim}, low);
    b.img_v = make({image_tokens, c.dim}, low);
  }
  if (sp_) {
    const int64_t n = sp_->size();
    const Shape heads_shape{batch, range.padded, c.num_heads / n, c.head_dim()};
    for (Tensor* t : {&b.q_heads, &b.k_heads, &b.v_heads, &b.attn_heads}) {
      *t = make(heads_shape, low);
    }
    b.head_all = make({batch, range.padded, patch_volume * c.out_dim});
    for (parallel::UlyssesScratch& e : b.exchange) e.send = make({rows * c.dim}, low);
    b.exchange[kExchangeV].recv = b.v;
    b.exchange[kExchangeQ].recv = b.q;
    b.exchange[kExchangeK].recv = b.k;
    b.exchange_back.send = b.exchange[kExchangeV].send;
    b.exchange_back.recv = b.exchange[kExchangeQ].send;
    b.gather.recv = make({n * rows * patch_volume * c.out_dim});
    if (time_rows > 1) b.timestep = make({time_rows});
  }
}

// e = time_embedding(sinusoid(t)); e0 = time_projection(e), regrouped [6, T, dim] so each of the
// six modulation vectors is a contiguous [T, dim] (wan-spec "DiT forward": all in fp32).
void WanDit::embed_time(const core::Context& ctx, const Tensor& timestep) {
  Buffers& b = buffers_;
  const int64_t rows = b.time_rows;
  ops::sinusoidal_embedding(ctx, timestep.reshape({rows}), b.sinusoid);
  linear(ctx, time_in_, b.sinusoid, b.e0_act);
  ops::silu(ctx, b.e0_act, b.e0_act);
  linear(ctx, time_out_, b.e0_act, b.e);
  ops::silu(ctx, b.e, b.e0_act);
  linear(ctx, time_projection_, b.e0_act, b.e0);
  ops::permute(ctx, b.e0.reshape({rows, 6, config_.dim}), {1, 0, 2}, b.e0_grouped);
  // Head modulation: shift = e + head.modulation[0], scale = e + head.modulation[1].
  ops::add(ctx, b.e, head_modulation_.select(0), b.head_shift);
  ops::add(ctx, b.e, head_modulation_.select(1), b.head_scale);
}

// The text context zero-padded to text_len rows before the embedding MLP (the padded rows become
// bias terms and are attended to, as in the reference), and the CLIP tokens' projection.
void WanDit::embed_context(const core::Context& ctx, const std::vector<const Tensor*>& contexts,
                           const Tensor& clip) {
  Buffers& b = buffers_;
  const int64_t text_len = config_.text_len;
  ops::fill(ctx, b.text_padded, 0.0f);
  for (size_t i = 0; i < contexts.size(); ++i) {
    const int64_t first = static_cast<int64_t>(i) * text_len;
    Tensor rows = b.text_padded.slice(first, first + contexts[i]->dim(0));
    copy_into(ctx, *contexts[i], rows);
  }
  ops::linear_gelu_tanh(ctx, b.text_padded, text_in_.weight, text_in_.bias, b.text_hidden);
  linear(ctx, text_out_, b.text_hidden, b.text);
  if (b.image_tokens > 0) {  // the same image for every context
    ops::layer_norm(ctx, clip, img_norm1_weight_, img_norm1_bias_, kImageNormEps, b.img_normed);
    linear(ctx, img_fc1_, b.img_normed, b.img_hidden);
    ops::gelu_erf(ctx, b.img_hidden, b.img_hidden);
    linear(ctx, img_fc2_, b.img_hidden, b.img);
    ops::layer_norm(ctx, b.img, img_norm2_weight_, img_norm2_bias_, kImageNormEps, b.img);
  }
}

static_assert(parallel::Comm::kAllToAllSlots >= 3, "v, q and k are exchanged at once");

// Under Ulysses, `local` (v, q or k: [batch·tokens, dim]) starts from this rank's tokens (all
// heads) to every token (this rank's heads); the exchange overlaps what is queued before
// self_attention finishes it.
void WanDit::start_exchange(const core::Context& ctx, const Tensor& local, int slot) {
  if (!sp_) return;
  Buffers& b = buffers_;
  const Shape shape{b.batch, b.tokens, config_.num_heads, config_.head_dim()};
  parallel::sequence_to_heads_start(ctx, *sp_, local.reshape(shape), b.exchange[slot], slot);
}

// Attention over the whole sequence. Under Ulysses, the exchanges of v, q and k (started by
// start_exchange) are finished, and the output goes back to this rank's tokens (all heads); the
// padding keys are masked.
void WanDit::self_attention(const core::Context& ctx, const SequenceRange& range) {
  Buffers& b = buffers_;
  const Shape local{b.batch, b.tokens, config_.num_heads, config_.head_dim()};
  Tensor attn = b.attn.reshape(local);
  if (!sp_) {
    ops::attention(ctx, b.q.reshape(local), b.k.reshape(local), b.v.reshape(local), attn);
    return;
  }
  // In the order they were started: v's is the likeliest to be done.
  parallel::sequence_to_heads_finish(ctx, *sp_, b.exchange[kExchangeV], kExchangeV, b.v_heads);
  parallel::sequence_to_heads_finish(ctx, *sp_, b.exchange[kExchangeQ], kExchangeQ, b.q_heads);
  parallel::sequence_to_heads_finish(ctx, *sp_, b.exchange[kExchangeK], kExchangeK, b.k_heads);
  ops::AttentionOptions options;
  if (range.padded > b.seq_tokens)
    options.k_lens.assign(static_cast<size_t>(b.batch), b.seq_tokens);
  ops::attention(ctx, b.q_heads, b.k_heads, b.v_heads, b.attn_heads, options);
  parallel::heads_to_sequence(ctx, *sp_, b.attn_heads, b.exchange_back, attn);
}

void WanDit::run_block(const core::Context& ctx, const Block& block,
                       const core::ops::RopeGrid& grid, const SequenceRange& range,
                       bool ffn_residual_pending) {
  Buffers& b = buffers_;
  const int64_t batch = b.batch, tokens = b.tokens, heads = config_.num_heads;
  const int64_t head_dim = config_.head_dim();
  // Rows i·tokens … (i+1)·tokens of a [batch·tokens, …] buffer: sample i.
  auto sample = [tokens](const Tensor& t, int64_t i) {
    return t.slice(i * tokens, (i + 1) * tokens);
  };
  auto as_heads = [&](const Tensor& t, int64_t n) {
    return t.reshape({n, t.dim(0) / n, heads, head_dim});
  };
  // The six modulation vectors: shift/scale/gate for attention, then for the FFN. They are per
  // token under TI2V, so they are applied sample by sample. Every residual update is fused with
  // the norm that reads it (one pass over the fp32 stream); the FFN's gate (5) is computed last,
  // as the previous block's gate 5 may still be pending in the same slot.
  for (int64_t i = 0; i < 5; ++i) {
    Tensor m = b.modulation.select(i);
    ops::add(ctx, b.e0_grouped.select(i), block.modulation.select(i), m);
  }
  auto mod = [&](int64_t i) { return b.modulation.select(i); };
  // x += proj · gate (gate undefined: x += proj), then normed = the norm of x, per sample.
  auto residual_then_modulate = [&](const Tensor& gate, int64_t shift, int64_t scale) {
    for (int64_t i = 0; i < batch; ++i) {
      Tensor x = sample(b.x, i), out = sample(b.normed, i);
      ops::residual_layernorm_modulate(ctx, x, sample(b.proj, i), gate, mod(shift), mod(scale),
                                       kEps, out);
    }
  };

  // Self-attention: q, k RMS-normed over the full dim, RoPE on both (global token positions),
  // attention, out projection. The previous block's FFN residual lands first.
  if (ffn_residual_pending) {
    residual_then_modulate(mod(5), 0, 1);
  } else {
    for (int64_t i = 0; i < batch; ++i) {
      Tensor out = sample(b.normed, i);
      ops::layernorm_modulate(ctx, sample(b.x, i), mod(0), mod(1), kEps, out);
    }
  }
  {
    Tensor m = b.modulation.select(5);
    ops::add(ctx, b.e0_grouped.select(5), block.modulation.select(5), m);
  }
  // v, q, k in this order, each starting its Ulysses exchange once ready, so that v's and q's
  // exchanges run while the projections after them compute. RMS norm and RoPE are fused.
  auto norm_rope = [&](Tensor& x, const Tensor& weight) {
    for (int64_t i = 0; i < batch; ++i) {
      Tensor x3 = sample(x, i).reshape({tokens, heads, head_dim});
      ops::rms_norm_rope(ctx, x3, weight, kEps, grid, range.begin, x3);
    }
  };
  linear(ctx, block.v, b.normed, b.v);
  start_exchange(ctx, b.v, kExchangeV);
  linear(ctx, block.q, b.normed, b.q);
  norm_rope(b.q, block.norm_q);
  start_exchange(ctx, b.q, kExchangeQ);
  linear(ctx, block.k, b.normed, b.k);
  norm_rope(b.k, block.norm_k);
  start_exchange(ctx, b.k, kExchangeK);
  self_attention(ctx, range);
  linear(ctx, block.o, b.attn, b.proj);

  // Cross-attention over all text_len context rows (no mask), plus the image branch, after the
  // attention's gated residual and norm3.
  for (int64_t i = 0; i < batch; ++i) {
    Tensor x = sample(b.x, i), out = sample(b.normed, i);
    ops::residual_layer_norm(ctx, x, sample(b.proj, i), mod(2), block.norm3_weight,
                             block.norm3_bias, kEps, out);
  }
  linear(ctx, block.cross_q, b.normed, b.q);
  ops::rms_norm(ctx, b.q, block.cross_norm_q, kEps, b.q);
  linear(ctx, block.cross_k, b.text, b.ctx_k);
  ops::rms_norm(ctx, b.ctx_k, block.cross_norm_k, kEps, b.ctx_k);
  linear(ctx, block.cross_v, b.text, b.ctx_v);
  Tensor cross = as_heads(b.cross_attn, batch);
  {
    // Its own name too, so a profile can tell it from self-attention (Lq tokens, Lk text_len).
    const core::ProfileScope profile(ctx, "cross_attention");
    ops::attention(ctx, as_heads(b.q, batch), as_heads(b.ctx_k, batch), as_heads(b.ctx_v, batch),
                   cross);
  }
  if (b.image_tokens > 0) {
    linear(ctx, block.k_img, b.img, b.img_k);
    ops::rms_norm(ctx, b.img_k, block.norm_k_img, kEps, b.img_k);
    linear(ctx, block.v_img, b.img, b.img_v);
    for (int64_t i = 0; i < batch; ++i) {  // every sample attends to the one image
      Tensor img_attn = as_heads(sample(b.img_attn, i), 1);
      ops::attention(ctx, as_heads(sample(b.q, i), 1), as_heads(b.img_k, 1), as_heads(b.img_v, 1),
                     img_attn);
    }
    ops::add(ctx, b.cross_attn, b.img_attn, b.cross_attn);
  }
  linear(ctx, block.cross_o, b.cross_attn, b.proj);

  // Feed-forward with tanh GELU, after the cross-attention's (ungated) residual. Its own gated
  // residual is left to the next norm: the next block's first, or the head's.
  residual_then_modulate(Tensor(), 3, 4);
  ops::linear_gelu_tanh(ctx, b.normed, block.ffn_in.weight, block.ffn_in.bias, b.hidden);
  linear(ctx, block.ffn_out, b.hidden, b.proj);
}

void WanDit::forward(const core::Context& ctx, const DitInput& input, Tensor& velocity) {
  forward(ctx, input, {&input.context}, {&velocity});
}

void WanDit::forward(const core::Context& ctx, const DitInput& input,
                     const std::vector<const Tensor*>& contexts,
                     const std::vector<Tensor*>& velocities) {
  const DitConfig& c = config_;
  const Tensor& latent = input.latent;
  WB_CHECK(resident_, "DiT: forward while the model is offloaded (set_resident(true) first)");
  WB_CHECK(!contexts.empty() && contexts.size() == velocities.size(), "DiT: ", contexts.size(),
           " contexts for ", velocities.size(), " outputs");
  WB_CHECK(latent.ndim() == 4, "DiT input: latent must be [C, F, H, W], got ", latent.describe());
  const int64_t y_channels = input.y.defined() ? input.y.dim(0) : 0;
  WB_CHECK(latent.dim(0) + y_channels == c.in_dim, "DiT input: latent ", latent.describe(),
           input.y.defined() ? " with y " + input.y.describe() : std::string(), " has ",
           latent.dim(0) + y_channels, " channels, the model takes ", c.in_dim);
  WB_CHECK(!input.y.defined() || (input.y.ndim() == 4 &&
                                  std::equal(input.y.shape().begin() + 1, input.y.shape().end(),
                                             latent.shape().begin() + 1)),
           "DiT input: y ", input.y.describe(), " does not match latent ", latent.describe());
  const auto& p = c.patch_size;
  WB_CHECK(latent.dim(1) % p[0] == 0 && latent.dim(2) % p[1] == 0 && latent.dim(3) % p[2] == 0,
           "DiT input: latent ", latent.describe(), " is not a multiple of the patch size");
  const core::ops::RopeGrid grid{latent.dim(1) / p[0], latent.dim(2) / p[1], latent.dim(3) / p[2]};
  const int64_t tokens = grid.frames * grid.height * grid.width;
  const int64_t time_rows = input.timestep.numel();
  WB_CHECK(time_rows == 1 || time_rows == tokens, "DiT input: ", time_rows, " timesteps for ",
           tokens, " tokens (give one, or one per token)");
  for (const Tensor* context : contexts) {
    WB_CHECK(context->ndim() == 2 && context->dim(1) == c.text_dim && context->dim(0) >= 1 &&
                 context->dim(0) <= c.text_len,
             "DiT input: context ", context->describe(), " must be [n, ", c.text_dim,
             "] with 1 <= n <= ", c.text_len);
  }
  int64_t image_tokens = 0;
  if (c.image_branch) {
    WB_CHECK(input.clip.defined() && input.clip.ndim() == 2 && input.clip.dim(0) == kClipTokens &&
                 input.clip.dim(1) == c.image_dim,
             "DiT input: this model needs CLIP features [", kClipTokens, ", ", c.image_dim,
             "], got ", input.clip.describe());
    image_tokens = kClipTokens;
  }
  const Shape out_shape{c.out_dim, latent.dim(1), latent.dim(2), latent.dim(3)};
  for (const Tensor* velocity : velocities) {
    WB_CHECK(velocity->shape() == out_shape, "DiT output ", velocity->describe(), ", expected ",
             core::shape_str(out_shape));
  }

  const auto batch = static_cast<int64_t>(contexts.size());
  SequenceRange range{0, tokens, tokens, tokens};
  if (sp_) {
    const parallel::SequenceShard shard =
        parallel::shard_sequence(tokens, sp_->size(), sp_->rank());
    range = {shard.begin, shard.end - shard.begin, shard.valid, shard.padded};
  }
  const int64_t local_time_rows = time_rows == 1 ? 1 : range.tokens;
  plan(ctx, batch, tokens, range, local_time_rows, image_tokens);
  Buffers& b = buffers_;

  // Patch embedding as a linear over (c, pt, ph, pw) patches in (f, h, w) token order, for this
  // rank's tokens (padding rows are zero), once, then copied to every sample of the batch.
  const int64_t channels = c.in_dim;
  Tensor input_cat = b.input_cat.reshape({channels, latent.dim(1), latent.dim(2), latent.dim(3)});
  copy_into(ctx, latent, input_cat.slice(0, latent.dim(0)));
  if (input.y.defined()) copy_into(ctx, input.y, input_cat.slice(latent.dim(0), channels));
  Tensor& patches = b.patches;
  Tensor patches7 =
      patches.reshape({grid.frames, grid.height, grid.width, channels, p[0], p[1], p[2]});
  ops::permute(
      ctx, input_cat.reshape({channels, grid.frames, p[0], grid.height, p[1], grid.width, p[2]}),
      {1, 3, 5, 0, 2, 4, 6}, patches7);
  Tensor first = b.x.slice(0, range.tokens);
  if (range.valid < range.tokens) {
    Tensor padding = first.slice(range.valid, range.tokens);
    ops::fill(ctx, padding, 0.0f);
  }
  if (range.valid > 0) {
    Tensor real = first.slice(0, range.valid);
    ops::linear(ctx, patches.slice(range.begin, range.begin + range.valid), patch_weight_,
                patch_bias_, real);
  }
  for (int64_t i = 1; i < batch; ++i) {
    copy_into(ctx, first, b.x.slice(i * range.tokens, (i + 1) * range.tokens));
  }

  Tensor timestep = input.timestep;
  if (time_rows > 1 && sp_) {  // this rank's tokens' timesteps; padding tokens get 0
    ops::fill(ctx, b.timestep, 0.0f);
    if (range.valid > 0) {
      copy_into(ctx, timestep.reshape({tokens}).slice(range.begin, range.begin + range.valid),
                b.timestep.slice(0, range.valid));
    }
    timestep = b.timestep;
  } else if (timestep.dtype() != DType::F32) {
    timestep = timestep.to(DType::F32);
  }
  embed_time(ctx, timestep);
  embed_context(ctx, contexts, input.clip);
  for (int64_t i = 0; i < c.num_layers; ++i) run_block(ctx, block(ctx, i), grid, range, i > 0);

  // Head (after the last block's FFN residual), every rank's tokens gathered under Ulysses, and
  // unpatchify: (f, h, w, pt, ph, pw, c) → (c, f·pt, h·ph, w·pw).
  // The head runs in fp32, as the reference's (under an fp32 autocast region).
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t first = i * range.tokens, last = first + range.tokens;
    Tensor x = b.x.slice(first, last), head_in = b.head_in.slice(first, last);
    ops::residual_layernorm_modulate(ctx, x, b.proj.slice(first, last), b.modulation.select(5),
                                     b.head_shift, b.head_scale, kEps, head_in);
  }
  linear(ctx, head_, b.head_in, b.head_out);
  const int64_t out_width = b.head_out.dim(1);
  Tensor all_tokens = b.head_out;  // [batch · sequence rows, out_width]
  int64_t sequence_rows = tokens;
  if (sp_) {
    parallel::gather_sequence(ctx, *sp_, b.head_out.reshape({batch, range.tokens, out_width}),
                              b.gather, b.head_all);
    all_tokens = b.head_all.reshape({batch * range.padded, out_width});
    sequence_rows = range.padded;
  }
  for (int64_t i = 0; i < batch; ++i) {
    Tensor velocity7 = velocities[static_cast<size_t>(i)]->reshape(
        {c.out_dim, grid.frames, p[0], grid.height, p[1], grid.width, p[2]});
    ops::permute(ctx,
                 all_tokens.slice(i * sequence_rows, i * sequence_rows + tokens)
                     .reshape({grid.frames, grid.height, grid.width, p[0], p[1], p[2], c.out_dim}),
                 {6, 0, 3, 1, 4, 2, 5}, velocity7);
  }
}

}  // namespace wanbatch::model::wan
