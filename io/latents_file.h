// The per-item latents file (DESIGN.md "Data"): `/latents` f32 [C, T, H, W] (chunked) plus, at the
// root, the attributes that say how it was made, as plain strings and numbers so that h5dump and
// h5py read them directly. Written under a temporary name and renamed when complete.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanbatch::io {

struct LatentsRecord {
  // What was asked for (absent when the tool did not know it, e.g. `tool sample` has no prompt).
  std::optional<std::string> id, prompt, negative_prompt;
  std::optional<uint64_t> seed;
  std::string noise;  // where the initial noise came from ("philox seed 7", a file)
  std::optional<int64_t> width, height, frames, fps;  // the video's (an image item's: as made)
  // Image-to-video: the image the video starts from, and the pixel budget (the item's width ×
  // height) its size was fitted into.
  std::optional<std::string> image;
  std::optional<int64_t> max_area;
  // How it was sampled.
  std::string solver;
  int64_t steps = 0;
  double shift = 0;
  double guide_scale = 0;
  std::optional<double> guide_scale_high, boundary;
  std::vector<float> timesteps;
  // With what.
  std::string model_variant;
  std::string weights, weights_fingerprint;  // the (low-noise) model
  std::string high_noise_weights, high_noise_fingerprint;
  std::string loras, high_noise_loras;  // "path:strength, ..."
  int64_t world_size = 1, sp_size = 1;
  double load_seconds = 0, sample_seconds = 0;
  std::string wanbatch_version;
};

// Writes `latents` and `record` to `path` atomically.
void write_latents_file(const std::string& path, const core::Tensor& latents,
                        const LatentsRecord& record);

struct LatentsFile {
  core::Tensor latents;
  LatentsRecord record;
};

// Reads a file write_latents_file wrote (or one with at least `/latents`); throws naming the file.
LatentsFile read_latents_file(const std::string& path);

}  // namespace wanbatch::io
