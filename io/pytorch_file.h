// PyTorch `.pth` / `.pt` state dicts as torch.save writes them since PyTorch 1.6 (the official
// Wan2.1_VAE.pth, Wan2.2_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth), read without Python.
//
// The file is a ZIP archive of stored (uncompressed) entries under one top folder: `data.pkl`, the
// pickled object, and `data/<key>`, one raw little-endian storage per key; the pickle names each
// storage by a persistent id ('storage', torch.<Type>Storage, key, location, numel) and rebuilds
// tensors with torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...), or for dtypes
// newer than the storage classes (fp8, uint16/32/64) _rebuild_tensor_v3(UntypedStorage, ...,
// dtype). The archive is mapped (io/mapped_file.h) and its central directory read directly,
// ZIP64 included.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace wanbatch::io {

// Every tensor of the state dict in `path`, by key, as host tensors.
//
// - The pickled object is a dict (or OrderedDict) of tensors (and nn.Parameter wrappers of them),
//   or a dict holding such a dict under "state_dict" or else "model" (a training checkpoint): that
//   one is unwrapped and its other entries (epoch, optimizer, ...) are ignored.
// - A contiguous tensor whose dtype core has (float32, bfloat16, float16, float8_e4m3fn, int64,
//   int32) is a zero-copy view into the mapping, which it keeps alive (if aligned to its element
//   size, as torch.save's 64-byte aligned entries always are); tensors sharing a storage
//   share one core::Storage. A non-contiguous one (transposed, sliced, expanded) is copied into a
//   contiguous tensor. Dtypes core lacks are converted into a copy: float64 to f32; int16, int8,
//   uint8, bool and uint16 to i32; uint32 to i64. Others (other fp8 and fp4 formats, uint64,
//   complex, quantized) are an error naming the key. Python attributes on tensors, requires_grad
//   and the dict's `_metadata` are dropped.
// - Anything else is a one-line Error naming the file: not a ZIP archive (the pre-1.6 legacy format
//   and TorchScript archives are named as such), a truncated archive, a compressed or encrypted
//   entry, a pickle opcode or global outside what state dicts use, a missing `data/<key>` entry, a
//   tensor reaching past its storage, a value that is not a tensor, a big-endian file.
std::map<std::string, core::Tensor> read_pytorch_state_dict(const std::string& path);

}  // namespace wanbatch::io
