#include "model/wan/vae_blocks.h"

#include "core/error.h"

namespace wanbatch::model::wan::vae {
namespace {

namespace ops = core::ops;
using core::DType;

// The per-frame 3×3 convs of Resample as 3-D convs with a 1-frame kernel.
ops::Conv3dParams upsample_conv_params() {
  ops::Conv3dParams p;
  p.padding = {0, 0, 1, 1, 1, 1};
  return p;
}
// ZeroPad2d((0, 1, 0, 1)) (one column right, one row below), then stride 2.
ops::Conv3dParams downsample_conv_params() {
  ops::Conv3dParams p;
  p.stride = {1, 2, 2};
  p.padding = {0, 0, 0, 1, 0, 1};
  return p;
}
ops::Conv3dParams time_stride2_params() {
  ops::Conv3dParams p;
  p.stride = {2, 1, 1};
  return p;
}

WeightSpec conv_weight(const std::string& name, Shape shape) {
  int64_t fan_in = 1;
  for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
  return {name + ".weight", std::move(shape), fan_in, WeightSpec::Kind::Linear};
}
WeightSpec conv_bias(const std::string& name, int64_t out, int64_t fan_in) {
  return {name + ".bias", {out}, fan_in, WeightSpec::Kind::Bias};
}
void add_conv(std::vector<WeightSpec>& specs, const std::string& name, Shape shape) {
  specs.push_back(conv_weight(name, shape));
  specs.push_back(conv_bias(name, shape[0], specs.back().fan_in));
}
// RMS_norm's gamma: [C, 1, 1] over images (the attention block), [C, 1, 1, 1] over videos.
void add_gamma(std::vector<WeightSpec>& specs, const std::string& name, int64_t c, bool images) {
  Shape shape = images ? Shape{c, 1, 1} : Shape{c, 1, 1, 1};
  specs.push_back({name + ".gamma", shape, c, WeightSpec::Kind::NormWeight});
}

void add_residual(std::vector<WeightSpec>& specs, const ResidualPlan& r) {
  add_gamma(specs, r.name + ".residual.0", r.in, false);
  add_conv(specs, r.name + ".residual.2", {r.out, r.in, 3, 3, 3});
  add_gamma(specs, r.name + ".residual.3", r.out, false);
  add_conv(specs, r.name + ".residual.6", {r.out, r.out, 3, 3, 3});
  if (r.in != r.out) add_conv(specs, r.name + ".shortcut", {r.out, r.in, 1, 1, 1});
}

}  // namespace

// ---------------------------------------------------------------- specs

std::vector<WeightSpec> coder_weight_specs(const CoderPlan& plan) {
  std::vector<WeightSpec> specs;
  const std::string& p = plan.name;
  add_conv(specs, p + ".conv1", {plan.conv1_channels, plan.in_channels, 3, 3, 3});
  auto add_levels = [&] {
    for (const LevelPlan& level : plan.levels) {
      for (const ResidualPlan& r : level.blocks) add_residual(specs, r);
      if (const auto& rs = level.resample) {
        add_conv(specs, rs->name + ".resample.1", {rs->out_channels, rs->channels, 3, 3});
        if (rs->mode == ResampleMode::Up3d) {
          add_conv(specs, rs->name + ".time_conv", {2 * rs->channels, rs->channels, 3, 1, 1});
        } else if (rs->mode == ResampleMode::Down3d) {
          add_conv(specs, rs->name + ".time_conv", {rs->channels, rs->channels, 3, 1, 1});
        }
      }
    }
  };
  auto add_middle = [&] {
    const int64_t c = plan.middle_channels;
    add_residual(specs, {p + ".middle.0", c, c});
    add_gamma(specs, p + ".middle.1.norm", c, true);
    add_conv(specs, p + ".middle.1.to_qkv", {3 * c, c, 1, 1});
    add_conv(specs, p + ".middle.1.proj", {c, c, 1, 1});
    add_residual(specs, {p + ".middle.2", c, c});
  };
  if (plan.decoder) {
    add_middle();
    add_levels();
  } else {
    add_levels();
    add_middle();
  }
  add_gamma(specs, p + ".head.0", plan.head_in, false);
  add_conv(specs, p + ".head.2", {plan.out_channels, plan.head_in, 3, 3, 3});
  return specs;
}

// ---------------------------------------------------------------- workspace, weights

Tensor Workspace::view(int slot, const Shape& shape) {
  const size_t bytes = static_cast<size_t>(core::shape_numel(shape)) * sizeof(float);
  auto& storage = storage_.at(static_cast<size_t>(slot));
  if (!storage || storage->bytes() < bytes) {
    storage = core::Storage::allocate(std::max<size_t>(bytes, 64), device_);
  }
  return Tensor::from_storage(storage, 0, shape, DType::F32);
}

Tensor WeightReader::get(const std::string& name) {
  auto it = weights_.find(name);
  WB_CHECK(it != weights_.end(), "VAE weights: tensor '", name, "' is missing");
  used_.insert(name);
  const Tensor& w = it->second;
  Tensor f32 = w.dtype() == DType::F32 ? w : w.to(DType::F32);
  return f32.device() == ctx_.device() ? f32 : f32.to(ctx_.device());
}

// ---------------------------------------------------------------- layers

CausalConv::CausalConv(WeightReader& weights, const std::string& name)
    : weight_(weights.get(name + ".weight")), bias_(weights.get(name + ".bias")) {
  const int64_t kh = weight_.dim(3), kw = weight_.dim(4);
  params_.padding = {0, 0, kh / 2, kh / 2, kw / 2, kw / 2};
  past_ = weight_.dim(2) - 1;
}

void CausalConv::forward(const core::Context& ctx, const Tensor& x, Tensor& out, Workspace& ws) {
  if (past_ == 0) return ops::conv3d(ctx, x, weight_, bias_, params_, out);
  const int64_t c = x.dim(0), t = x.dim(1), h = x.dim(2), w = x.dim(3);
  const Shape history_shape{c, past_, h, w};
  if (fresh_) {  // a new video: zeros before its first frame
    if (history_.shape() != history_shape || history_.device() != ctx.device()) {
      history_ = Tensor::empty(history_shape, DType::F32, ctx.device());
    }
    ops::fill(ctx, history_, 0.0f);
    fresh_ = false;
  }
  WB_CHECK(history_.shape() == history_shape, "VAE: chunk ", x.describe(),
           " does not continue the frames ", history_.describe(), " before it");
  // [history, chunk] → conv → the last `past_` frames become the history
  Tensor padded = ws.view(kPadded, {c, past_ + t, h, w});
  ops::copy_slice(ctx, history_, 1, 0, padded, 0, past_);
  ops::copy_slice(ctx, x, 1, 0, padded, past_, t);
  ops::conv3d(ctx, padded, weight_, bias_, params_, out);
  ops::copy_slice(ctx, padded, 1, t, history_, 0, past_);
}

void norm_silu(const core::Context& ctx, const Tensor& gamma, const Tensor& x, Tensor& out) {
  ops::rms_norm_channels(ctx, x, gamma, Tensor(), out);
  ops::silu(ctx, out, out);
}

ResidualBlock::ResidualBlock(WeightReader& weights, const ResidualPlan& plan)
    : out_(plan.out),
      gamma1_(weights.get(plan.name + ".residual.0.gamma").reshape({plan.in})),
      gamma2_(weights.get(plan.name + ".residual.3.gamma").reshape({plan.out})),
      conv1_(weights, plan.name + ".residual.2"),
      conv2_(weights, plan.name + ".residual.6") {
  if (plan.in != plan.out) {
    shortcut_weight_ = weights.get(plan.name + ".shortcut.weight");
    shortcut_bias_ = weights.get(plan.name + ".shortcut.bias");
  }
}

void ResidualBlock::reset() {
  conv1_.reset();
  conv2_.reset();
}

// out = conv2(silu(norm2(conv1(silu(norm1(x)))))) + shortcut(x); dropout is 0.
Act ResidualBlock::forward(const core::Context& ctx, const Act& in, Workspace& ws) {
  const Tensor& x = in.t;
  Shape shape = x.shape();
  shape[0] = out_;
  Tensor shortcut = x;
  if (shortcut_weight_.defined()) {
    shortcut = ws.view(kShortcut, shape);
    ops::conv3d(ctx, x, shortcut_weight_, shortcut_bias_, {}, shortcut);
  }
  Tensor normed = ws.view(kNormed, x.shape());
  norm_silu(ctx, gamma1_, x, normed);
  Tensor mid = ws.view(kMid, shape);
  conv1_.forward(ctx, normed, mid, ws);
  Tensor normed2 = ws.view(kNormed, shape);
  norm_silu(ctx, gamma2_, mid, normed2);
  Act out{ws.view(other_main(in.slot), shape), other_main(in.slot)};
  conv2_.forward(ctx, normed2, out.t, ws);
  ops::add(ctx, out.t, shortcut, out.t);
  return out;
}

AttentionBlock::AttentionBlock(WeightReader& weights, const std::string& name, int64_t c)
    : gamma_(weights.get(name + ".norm.gamma").reshape({c})) {
  // to_qkv is a 1×1 conv to [q; k; v] channels: three [C, C] linears.
  const Tensor qkv = weights.get(name + ".to_qkv.weight").reshape({3 * c, c});
  const Tensor qkv_bias = weights.get(name + ".to_qkv.bias");
  wq_ = qkv.slice(0, c);
  wk_ = qkv.slice(c, 2 * c);
  wv_ = qkv.slice(2 * c, 3 * c);
  bq_ = qkv_bias.slice(0, c);
  bk_ = qkv_bias.slice(c, 2 * c);
  bv_ = qkv_bias.slice(2 * c, 3 * c);
  proj_weight_ = weights.get(name + ".proj.weight").reshape({c, c});
  proj_bias_ = weights.get(name + ".proj.bias");
}

// Each frame's h·w positions attend to each other (one head of width C, scale 1/sqrt(C)).
Act AttentionBlock::forward(const core::Context& ctx, const Act& in, Workspace& ws) {
  const Tensor& x = in.t;
  const int64_t c = x.dim(0), t = x.dim(1), hw = x.dim(2) * x.dim(3), rows = t * hw;
  Tensor normed = ws.view(kNormed, x.shape());
  ops::rms_norm_channels(ctx, x, gamma_, Tensor(), normed);
  Tensor tokens = ws.view(kTokens, {t, hw, c});
  ops::permute(ctx, normed.reshape({c, t, hw}), {1, 2, 0}, tokens);
  const Tensor token_rows = tokens.reshape({rows, c});
  Tensor q = ws.view(kQuery, {rows, c}), k = ws.view(kKey, {rows, c});
  Tensor v = ws.view(kValue, {rows, c});
  ops::linear(ctx, token_rows, wq_, bq_, q);
  ops::linear(ctx, token_rows, wk_, bk_, k);
  ops::linear(ctx, token_rows, wv_, bv_, v);
  Tensor attended = ws.view(kAttention, {t, hw, 1, c});
  ops::attention(ctx, q.reshape({t, hw, 1, c}), k.reshape({t, hw, 1, c}), v.reshape({t, hw, 1, c}),
                 attended);
  Tensor projected = tokens.reshape({rows, c});
  ops::linear(ctx, attended.reshape({rows, c}), proj_weight_, proj_bias_, projected);
  Tensor back = ws.view(kNormed, {c, t, hw});
  ops::permute(ctx, tokens, {2, 0, 1}, back);
  Act out{ws.view(other_main(in.slot), x.shape()), other_main(in.slot)};
  ops::add(ctx, x, back.reshape(x.shape()), out.t);
  return out;
}

Resample::Resample(WeightReader& weights, const ResamplePlan& plan) : mode_(plan.mode) {
  const Tensor w = weights.get(plan.name + ".resample.1.weight");
  conv_weight_ = w.reshape({w.dim(0), w.dim(1), 1, w.dim(2), w.dim(3)});
  conv_bias_ = weights.get(plan.name + ".resample.1.bias");
  if (mode_ == ResampleMode::Up3d) up_time_ = CausalConv(weights, plan.name + ".time_conv");
  if (mode_ == ResampleMode::Down3d) {
    down_time_weight_ = weights.get(plan.name + ".time_conv.weight");
    down_time_bias_ = weights.get(plan.name + ".time_conv.bias");
  }
}

void Resample::reset() {
  up_time_.reset();
  first_chunk_ = true;
}

Act Resample::forward(const core::Context& ctx, const Act& in, Workspace& ws) {
  const Tensor& x = in.t;
  const int out_slot = other_main(in.slot);
  const int64_t c = x.dim(0), t = x.dim(1), h = x.dim(2), w = x.dim(3);
  if (mode_ == ResampleMode::Up2d || mode_ == ResampleMode::Up3d) {
    Tensor frames = x;
    if (mode_ == ResampleMode::Up3d) {
      if (first_chunk_) {
        // The official "Rep" marker: the first chunk skips time_conv (1 frame stays 1), and the
        // causal conv starts from zeros at the second chunk.
        first_chunk_ = false;
      } else {
        // time_conv to 2C channels; frame 2i takes channels [0, C) of frame i, 2i+1 [C, 2C).
        Tensor doubled = ws.view(kMid, {2 * c, t, h, w});
        up_time_.forward(ctx, x, doubled, ws);
        Tensor interleaved = ws.view(kPadded, {c, t, 2, h * w});
        ops::permute(ctx, doubled.reshape({2, c, t, h * w}), {1, 2, 0, 3}, interleaved);
        frames = interleaved.reshape({c, 2 * t, h, w});
      }
    }
    Tensor up = ws.view(kUp, {c, frames.dim(1), 2 * h, 2 * w});
    ops::upsample_nearest_2x(ctx, frames, up);
    const ops::Conv3dParams params = upsample_conv_params();
    Act out{ws.view(out_slot, ops::conv3d_output_shape(up.shape(), conv_weight_.shape(), params)),
            out_slot};
    ops::conv3d(ctx, up, conv_weight_, conv_bias_, params, out.t);
    return out;
  }

  const ops::Conv3dParams params = downsample_conv_params();
  const Shape down_shape = ops::conv3d_output_shape(x.shape(), conv_weight_.shape(), params);
  if (mode_ == ResampleMode::Down2d || first_chunk_) {
    Act out{ws.view(out_slot, down_shape), out_slot};
    ops::conv3d(ctx, x, conv_weight_, conv_bias_, params, out.t);
    if (mode_ == ResampleMode::Down3d) {
      // First chunk: no time_conv (frame 0 passes); its last frame starts the next chunk.
      const Shape frame_shape{c, 1, down_shape[2], down_shape[3]};
      if (last_frame_.shape() != frame_shape || last_frame_.device() != ctx.device()) {
        last_frame_ = Tensor::empty(frame_shape, DType::F32, ctx.device());
      }
      ops::copy_slice(ctx, out.t, 1, t - 1, last_frame_, 0, 1);
      first_chunk_ = false;
    }
    return out;
  }
  // Later chunks: the stride-2 time conv over [previous chunk's last frame, this chunk].
  WB_CHECK(t % 2 == 0,
           "VAE: a temporal downsampling chunk after the first needs an even number "
           "of frames, got ",
           x.describe());
  Tensor down = ws.view(kMid, down_shape);
  ops::conv3d(ctx, x, conv_weight_, conv_bias_, params, down);
  Tensor padded = ws.view(kPadded, {c, 1 + t, down_shape[2], down_shape[3]});
  ops::copy_slice(ctx, last_frame_, 1, 0, padded, 0, 1);
  ops::copy_slice(ctx, down, 1, 0, padded, 1, t);
  ops::copy_slice(ctx, down, 1, t - 1, last_frame_, 0, 1);
  const ops::Conv3dParams time_params = time_stride2_params();
  Act out{ws.view(out_slot,
                  ops::conv3d_output_shape(padded.shape(), down_time_weight_.shape(), time_params)),
          out_slot};
  ops::conv3d(ctx, padded, down_time_weight_, down_time_bias_, time_params, out.t);
  return out;
}

Level::Level(WeightReader& weights, const LevelPlan& plan) : plan_(plan) {
  for (const ResidualPlan& r : plan.blocks) blocks_.emplace_back(weights, r);
  if (plan.resample) resample_.emplace(weights, *plan.resample);
}

void Level::reset() {
  for (ResidualBlock& b : blocks_) b.reset();
  if (resample_) resample_->reset();
  first_chunk_ = true;
}

Act Level::forward(const core::Context& ctx, const Act& in, Workspace& ws) {
  const Tensor& x = in.t;
  const int64_t c = x.dim(0), t = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t ft = plan_.factor_t, fs = plan_.factor_s, out_c = plan_.out;
  // The shortcut reads the level's input, so it is computed before the blocks overwrite it.
  Tensor shortcut;
  if (plan_.shortcut == ShortcutKind::AvgDown) {
    // AvgDown3D: zero frames in front up to a multiple of ft; (t, h, w) sub-positions become
    // channels (c, kt, kh, kw); groups of c·ft·fs²/out consecutive channels are averaged.
    WB_CHECK(h % fs == 0 && w % fs == 0, "VAE: ", x.describe(), " does not divide by ", fs);
    const int64_t pad = (ft - t % ft) % ft, tp = t + pad;
    Tensor src = x;
    if (pad > 0) {
      src = ws.view(kRepeat, {c, tp, h, w});
      ops::fill(ctx, src, 0.0f);
      ops::copy_slice(ctx, x, 1, 0, src, pad, t);
    }
    Tensor shuffled = ws.view(kShuffle, {c, ft, fs, fs, tp / ft, h / fs, w / fs});
    ops::permute(ctx, src.reshape({c, tp / ft, ft, h / fs, fs, w / fs, fs}), {0, 2, 4, 6, 1, 3, 5},
                 shuffled);
    const int64_t group = c * ft * fs * fs / out_c;
    shortcut = ws.view(kLevelShortcut, {out_c, tp / ft, h / fs, w / fs});
    Tensor flat = shortcut.reshape({out_c, -1});
    ops::mean_dim(ctx, shuffled.reshape({out_c, group, -1}), 1, flat);
  } else if (plan_.shortcut == ShortcutKind::DupUp) {
    // DupUp3D: every channel repeated, the copies spread back over (t, h, w) sub-positions; the
    // first chunk drops the first ft − 1 frames (as the blocks' Up3d passes frame 0 alone).
    const int64_t repeats = out_c * ft * fs * fs / c;
    Tensor repeated = ws.view(kRepeat, {c * repeats, t, h, w});
    ops::repeat_interleave(ctx, x, 0, repeated);
    const int64_t skip = first_chunk_ ? ft - 1 : 0, frames = t * ft;
    Tensor spread = ws.view(skip > 0 ? kShuffle : kLevelShortcut, {out_c, t, ft, h, fs, w, fs});
    ops::permute(ctx, repeated.reshape({out_c, ft, fs, fs, t, h, w}), {0, 4, 1, 5, 2, 6, 3},
                 spread);
    shortcut = spread.reshape({out_c, frames, h * fs, w * fs});
    if (skip > 0) {
      Tensor kept = ws.view(kLevelShortcut, {out_c, frames - skip, h * fs, w * fs});
      ops::copy_slice(ctx, shortcut, 1, skip, kept, 0, frames - skip);
      shortcut = kept;
    }
  }
  first_chunk_ = false;

  Act y = in;
  for (ResidualBlock& b : blocks_) y = b.forward(ctx, y, ws);
  if (resample_) y = resample_->forward(ctx, y, ws);
  if (shortcut.defined()) {
    WB_CHECK(shortcut.shape() == y.t.shape(), "VAE: level shortcut ", shortcut.describe(),
             " does not match its blocks' output ", y.t.describe());
    ops::add(ctx, y.t, shortcut, y.t);
  }
  return y;
}

Coder::Coder(WeightReader& weights, const CoderPlan& plan)
    : plan_(plan), conv1_(weights, plan.name + ".conv1") {
  const std::string& p = plan.name;
  const int64_t c = plan.middle_channels;
  for (const LevelPlan& level : plan.levels) levels_.emplace_back(weights, level);
  middle1_.emplace(weights, ResidualPlan{p + ".middle.0", c, c});
  attention_.emplace(weights, p + ".middle.1", c);
  middle2_.emplace(weights, ResidualPlan{p + ".middle.2", c, c});
  head_gamma_ = weights.get(p + ".head.0.gamma").reshape({plan.head_in});
  head_conv_ = CausalConv(weights, p + ".head.2");
}

void Coder::reset() {
  conv1_.reset();
  for (Level& level : levels_) level.reset();
  middle1_->reset();
  middle2_->reset();
  head_conv_.reset();
}

Act Coder::middle(const core::Context& ctx, Act x, Workspace& ws) {
  x = middle1_->forward(ctx, x, ws);
  x = attention_->forward(ctx, x, ws);
  return middle2_->forward(ctx, x, ws);
}

Act Coder::forward(const core::Context& ctx, const Act& in, Workspace& ws) {
  Shape shape = in.t.shape();
  shape[0] = conv1_.out_channels();
  Act x{ws.view(other_main(in.slot), shape), other_main(in.slot)};
  conv1_.forward(ctx, in.t, x.t, ws);
  if (!plan_.decoder) {
    for (Level& level : levels_) x = level.forward(ctx, x, ws);
  }
  x = middle(ctx, x, ws);
  if (plan_.decoder) {
    for (Level& level : levels_) x = level.forward(ctx, x, ws);
  }
  Tensor normed = ws.view(kNormed, x.t.shape());
  norm_silu(ctx, head_gamma_, x.t, normed);
  shape = x.t.shape();
  shape[0] = head_conv_.out_channels();
  Act out{ws.view(other_main(x.slot), shape), other_main(x.slot)};
  head_conv_.forward(ctx, normed, out.t, ws);
  return out;
}

// channel = c·4 + r·2 + q for the sub-position (q, r) in (h, w): the w offset is the slower one.
void patchify(const core::Context& ctx, const Tensor& x, Tensor& out) {
  const int64_t c = x.dim(0), f = x.dim(1), h = x.dim(2) / 2, w = x.dim(3) / 2;
  Tensor out6 = out.reshape({c, 2, 2, f, h, w});
  ops::permute(ctx, x.reshape({c, f, h, 2, w, 2}), {0, 5, 3, 1, 2, 4}, out6);
}

void unpatchify(const core::Context& ctx, const Tensor& x, Tensor& out) {
  const int64_t c = x.dim(0) / 4, f = x.dim(1), h = x.dim(2), w = x.dim(3);
  Tensor out6 = out.reshape({c, f, h, 2, w, 2});
  ops::permute(ctx, x.reshape({c, 2, 2, f, h, w}), {0, 3, 4, 2, 5, 1}, out6);
}

}  // namespace wanbatch::model::wan::vae
