// The inputs of one DiT reference case (tests/reference/dit_reference.py's dit_<name>.io file) as a
// DitInput on a device, f32: shared by the CPU, GPU and MPI DiT tests. Header-only.
#pragma once

#include "core/device.h"
#include "core/dtype.h"
#include "io/safetensors.h"
#include "model/wan/dit.h"

namespace wanbatch::testing {

inline model::wan::DitInput read_dit_input(const io::SafetensorsFile& io,
                                           const core::Device& device = core::Device::cpu()) {
  auto get = [&](const char* name) { return io.tensor(name).to(core::DType::F32).to(device); };
  model::wan::DitInput input;
  input.latent = get("latent");
  input.timestep = get("timestep");
  input.context = get("context");
  if (io.contains("y")) input.y = get("y");
  if (io.contains("clip")) input.clip = get("clip");
  return input;
}

}  // namespace wanbatch::testing
