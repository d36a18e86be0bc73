// Loading a Wan VAE as users have it: the official .pth (Wan2.1_VAE.pth, Wan2.2_VAE.pth) or a
// safetensors file (ComfyUI's, or ours), the version told apart by its tensors.
#pragma once

#include <string>

#include "core/context.h"
#include "model/wan/vae.h"

namespace wanbatch::model::wan {

// By extension: .pth / .pt through the PyTorch reader, anything else as safetensors (a file, an
// index or a folder). Errors name the path.
WanVae load_vae(const std::string& path, const core::Context& ctx);

}  // namespace wanbatch::model::wan
