// The Wan VAE's building blocks as streaming layers over core::ops (internal to model/wan/vae*.cpp;
// wan-spec "VAEs"). Activations are one video's [C, T, H, W] chunk; every layer that looks back
// in time keeps what it needs of the previous chunks (the official feat_cache), so chunk after
// chunk gives what the whole sequence would. The network's shape (which blocks, their names and
// widths) is a CoderPlan, made per VAE version in vae2_1.cpp / vae2_2.cpp; the same plan lists
// the checkpoint's tensors and builds the layers.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "model/wan/vae.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan::vae {

using core::Shape;
using core::Tensor;

// ---------------------------------------------------------------- plans

struct ResidualPlan {
  std::string name;  // e.g. "decoder.upsamples.4"
  int64_t in = 0, out = 0;
};
enum class ResampleMode { Up2d, Up3d, Down2d, Down3d };
struct ResamplePlan {
  std::string name;
  ResampleMode mode = ResampleMode::Up2d;
  int64_t channels = 0, out_channels = 0;  // the spatial conv's (2.1's upsampling halves them)
};
// Wan2.2's block shortcuts around a level: AvgDown3D (encoder) or DupUp3D (decoder).
enum class ShortcutKind { None, AvgDown, DupUp };
struct LevelPlan {
  std::vector<ResidualPlan> blocks;
  std::optional<ResamplePlan> resample;
  ShortcutKind shortcut = ShortcutKind::None;
  int64_t in = 0, out = 0, factor_t = 1, factor_s = 1;
};
// Encoder3d or Decoder3d: conv1, then (encoder) levels, middle or (decoder) middle, levels, then
// the head (RMS_norm, SiLU, conv).
struct CoderPlan {
  std::string name;  // "encoder" / "decoder"
  bool decoder = false;
  int64_t in_channels = 0, conv1_channels = 0, middle_channels = 0, head_in = 0, out_channels = 0;
  std::vector<LevelPlan> levels;
};

// Every checkpoint tensor of a plan, in the official names and shapes.
std::vector<WeightSpec> coder_weight_specs(const CoderPlan& plan);

// The plans of one VAE version (vae2_1.cpp, vae2_2.cpp).
CoderPlan encoder_plan_21(const VaeConfig& config);
CoderPlan decoder_plan_21(const VaeConfig& config);
CoderPlan encoder_plan_22(const VaeConfig& config);
CoderPlan decoder_plan_22(const VaeConfig& config);

// ---------------------------------------------------------------- scratch memory

// Scratch slots, one per role. A layer reads its input from one slot and writes its output to
// another; the two main slots alternate along the network.
enum Slot : int {
  kMainA,
  kMainB,
  kShortcut,  // ResidualBlock's 1×1×1 shortcut
  kNormed,    // norm (+ SiLU) outputs, attention's way back
  kPadded,    // a causal conv's [history, chunk]
  kMid,       // a block's inner conv output
  kUp,        // upsampled frames
  kTokens,    // attention: [T, HW, C]
  kQuery,
  kKey,
  kValue,
  kAttention,
  kLevelShortcut,  // Wan2.2: AvgDown3D / DupUp3D result, alive across a whole level
  kShuffle,        // Wan2.2: the shortcut's space/time ↔ channel permutation
  kRepeat,         // Wan2.2: padded or repeated shortcut input
  kChunk,          // the network's input chunk
  kSlotCount
};

// Numbered f32 buffers that keep the largest size asked of them: a video of one size allocates
// during its first two chunks and never after. A view taken before a slot grows keeps the old
// memory alive, so it stays valid.
class Workspace {
 public:
  explicit Workspace(core::Device device) : device_(device) {}
  Tensor view(int slot, const Shape& shape);

 private:
  core::Device device_;
  std::array<std::shared_ptr<core::Storage>, kSlotCount> storage_;
};

// An activation and the slot holding it.
struct Act {
  Tensor t;
  int slot = kMainA;
};
// The main slot a layer writes to when its input is in `slot`.
inline int other_main(int slot) { return slot == kMainA ? kMainB : kMainA; }

// ---------------------------------------------------------------- weights

// Reads tensors by name (already checked against the specs), converted to fp32 on the device.
class WeightReader {
 public:
  WeightReader(const std::map<std::string, Tensor>& weights, const core::Context& ctx)
      : weights_(weights), ctx_(ctx) {}
  Tensor get(const std::string& name);
  const std::set<std::string>& used() const { return used_; }

 private:
  const std::map<std::string, Tensor>& weights_;
  const core::Context& ctx_;
  std::set<std::string> used_;
};

// ---------------------------------------------------------------- layers

// CausalConv3d: kernel [O, C, kt, kh, kw], spatial zero padding kh/2, kw/2 on both sides and
// kt − 1 frames of the past in front: zeros at the start of a video, then the last frames of the
// previous chunks (the official cache, which holds exactly those frames).
class CausalConv {
 public:
  CausalConv() = default;
  CausalConv(WeightReader& weights, const std::string& name);
  int64_t out_channels() const { return weight_.dim(0); }
  void reset() { fresh_ = true; }
  // x [C, t, H, W] → out [O, t, H, W] (not in kPadded).
  void forward(const core::Context& ctx, const Tensor& x, Tensor& out, Workspace& ws);

 private:
  Tensor weight_, bias_;
  core::ops::Conv3dParams params_;
  int64_t past_ = 0;
  Tensor history_;  // [C, past, H, W]
  bool fresh_ = true;
};

// RMS_norm then SiLU, as every residual block and head applies them before a conv.
void norm_silu(const core::Context& ctx, const Tensor& gamma, const Tensor& x, Tensor& out);

class ResidualBlock {
 public:
  ResidualBlock(WeightReader& weights, const ResidualPlan& plan);
  void reset();
  Act forward(const core::Context& ctx, const Act& x, Workspace& ws);

 private:
  int64_t out_ = 0;
  Tensor gamma1_, gamma2_;
  CausalConv conv1_, conv2_;
  Tensor shortcut_weight_, shortcut_bias_;  // 1×1×1 when the width changes
};

// The middle block's attention: per frame, one head of width C over the h·w positions.
class AttentionBlock {
 public:
  AttentionBlock(WeightReader& weights, const std::string& name, int64_t channels);
  Act forward(const core::Context& ctx, const Act& x, Workspace& ws);

 private:
  Tensor gamma_, wq_, bq_, wk_, bk_, wv_, bv_, proj_weight_, proj_bias_;
};

class Resample {
 public:
  Resample(WeightReader& weights, const ResamplePlan& plan);
  void reset();
  Act forward(const core::Context& ctx, const Act& x, Workspace& ws);

 private:
  ResampleMode mode_;
  Tensor conv_weight_, conv_bias_;            // the per-frame 3×3 conv as [O, C, 1, 3, 3]
  CausalConv up_time_;                        // Up3d: C → 2C channels, then frames interleaved
  Tensor down_time_weight_, down_time_bias_;  // Down3d: stride-2 valid conv in time
  Tensor last_frame_;                         // Down3d: the previous chunk's last frame
  bool first_chunk_ = true;
};

// A level: residual blocks, an optional resample, and (Wan2.2) a shortcut around them all.
class Level {
 public:
  Level(WeightReader& weights, const LevelPlan& plan);
  void reset();
  Act forward(const core::Context& ctx, const Act& x, Workspace& ws);

 private:
  LevelPlan plan_;
  std::vector<ResidualBlock> blocks_;
  std::optional<Resample> resample_;
  bool first_chunk_ = true;
};

// Encoder3d / Decoder3d.
class Coder {
 public:
  Coder(WeightReader& weights, const CoderPlan& plan);
  const CoderPlan& plan() const { return plan_; }
  void reset();  // the start of a video
  Act forward(const core::Context& ctx, const Act& x, Workspace& ws);

 private:
  Act middle(const core::Context& ctx, Act x, Workspace& ws);
  CoderPlan plan_;
  CausalConv conv1_;
  std::vector<Level> levels_;
  std::optional<ResidualBlock> middle1_, middle2_;
  std::optional<AttentionBlock> attention_;
  Tensor head_gamma_;
  CausalConv head_conv_;
};

// Wan2.2's patchify ("c f (h q) (w r) -> (c r q) f h w", q = r = 2) and its inverse.
void patchify(const core::Context& ctx, const Tensor& x, Tensor& out);
void unpatchify(const core::Context& ctx, const Tensor& x, Tensor& out);

}  // namespace wanbatch::model::wan::vae
