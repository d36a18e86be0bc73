// Loading Wan2.1 I2V's CLIP vision tower as users have it: the official
// `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth` (the whole XLMRobertaCLIP state dict:
// the "visual.*" tensors are read, the text tower and log_scale ignored), or ComfyUI's
// `clip_vision_h.safetensors` (HF CLIPVisionModel names, "vision_model.*" with or without a
// prefix before it, or none), which are mapped to the open-clip ones: separate q/k/v projections
// fused into to_qkv, `pre_layrnorm` (HF's spelling) to pre_norm, class and position embeddings
// reshaped. The configuration comes from the shapes; every tensor is checked.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/context.h"
#include "core/dtype.h"
#include "model/wan/clip_vision.h"

namespace wanbatch::model::wan {

// The visual tensors of a .pth/.pt (PyTorch reader) or safetensors file (a file, index or folder),
// under open-clip names, on the host in their stored dtypes. Tensors of the text tower and HF's
// visual_projection / position_ids are dropped; a name that is neither a known visual tensor nor
// a known text-side one is an Error naming it and the file, as is a file with no visual tensor.
ClipVision::Weights read_clip_vision_weights(const std::string& path);

// The configuration from open-clip shapes: width and patch from the patch conv, image size from
// the positional embedding's token count, mlp from the first block, layers from the block count,
// out_layers = layers − 1 (use_31_block). The head count is not in the shapes: `heads` if > 0,
// else 16 for the 1280-wide ViT-H/14, else an Error. Then every tensor is checked: one Error lists
// the missing, unexpected and misshapen ones (visual.post_norm.* and visual.head may be present).
ClipVisionConfig detect_clip_vision_config(const std::map<std::string, core::Shape>& shapes,
                                           int64_t heads = 0);

// Reads, detects the configuration and builds the tower on the context's device. A safetensors
// file's "heads" metadata entry (as write_test_clip writes) gives the head count of non-ViT-H
// towers. Errors name the path.
ClipVision load_clip_vision(const std::string& path, const core::Context& ctx,
                            core::DType gemm_dtype = core::DType::F32);

}  // namespace wanbatch::model::wan
