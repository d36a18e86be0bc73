// Loading the umt5-xxl text encoder as users have it: Wan's official
// `models_t5_umt5-xxl-enc-bf16.pth` (official names), or a safetensors file in those names or in
// Hugging Face / ComfyUI names (`umt5_xxl_fp16.safetensors`:
// `encoder.block.N.layer.0.SelfAttention.q`, `shared.weight`, ...), which are mapped to the
// official ones.
#pragma once

#include <string>

#include "core/context.h"
#include "model/wan/t5_encoder.h"
#include "parallel/comm.h"

namespace wanbatch::model::wan {

// The official name of a tensor name in either layout (official names pass through unchanged).
// HF's wi_0 (the GELU-gated branch) is the official ffn.gate.0, wi_1 is ffn.fc1, wo ffn.fc2.
std::string official_t5_name(const std::string& name);

// The tensors by official name: .pth / .pt through the PyTorch reader, anything else as
// safetensors (a file, an index or a folder). HF files that hold both `shared.weight` and
// `encoder.embed_tokens.weight` (tied) keep one. ComfyUI's fp8-scaled files are refused with an
// Error saying they are not supported yet. Errors name the path.
T5Encoder::Weights read_t5_weights(const std::string& path);

// A fingerprint of the weights for cache keys and output attributes: io::Checkpoint::fingerprint
// for safetensors; for a .pth the same kind of hash over names, dtypes, shapes and the first and
// last 4 KiB of every tensor.
std::string t5_weights_fingerprint(const std::string& path);

// Reads, detects the configuration and builds the encoder on the context's device. With
// `shard_comm` (sharded weights, T5Encoder), each rank reads only its slice of every layer tensor
// from the file (safetensors and .pth alike are memory-mapped), and the load is collective: every
// rank of `shard_comm` calls it, and if it fails on any rank it throws on all of them (the others
// would otherwise wait for that rank in encode).
T5Encoder load_t5_encoder(const std::string& path, const core::Context& ctx,
                          parallel::Comm* shard_comm = nullptr);

}  // namespace wanbatch::model::wan
