// The batch job's manifest (DESIGN.md "Data"): a JSON Lines file, one item per line, read and
// validated completely before any model work starts. Every problem of the file is reported at once,
// each naming the file, the line and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/wan/defaults.h"

namespace wanbatch::jobs {

// What an item gets for each field it leaves out, and what the model can take. The caller fills it
// from the model (job_defaults below) and then applies the job config and the command line.
struct JobDefaults {
  std::string negative_prompt = model::wan::kDefaultNegativePrompt;
  int64_t width = 832, height = 480;  // Wan's 480p
  int64_t frames = 81;
  int64_t steps = 50;
  std::string solver = "unipc";
  double shift = 5.0;
  double guide_scale = 5.0;                // the low-noise (or only) model's
  std::optional<double> guide_scale_high;  // the high-noise expert's (absent: guide_scale)
  int64_t fps = 16;
  // The model: its latent channels decide the size rules (16: Wan2.1 VAE, 48: Wan2.2 VAE), and
  // only a two-expert (A14B) model takes a `[low, high]` guide_scale.
  int64_t latent_channels = 16;
  bool two_experts = false;
  // What the model does with an item's `image`, by its DiT's input channels: text-to-video models
  // (16) take none, image-to-video ones (36) need one, TI2V-5B (48) runs as text-to-video without.
  // An image item's width × height is not its size but the pixel budget its size (the image's
  // aspect ratio) is fitted into, as the official scripts' --size is for image-to-video.
  enum class ImageInput { None, Required, Optional };
  ImageInput image = ImageInput::None;
  std::string model_name = "the model";  // names the model in those errors
  // Wan2.1 I2V (generate.py): the shift of items that give none at 832×480 or 480×832.
  std::optional<double> shift_480p;
};

// The model's official defaults (model::wan::generation_defaults); width and height stay 832×480.
JobDefaults job_defaults(const model::wan::GenerationDefaults& generation, int64_t latent_channels,
                         bool two_experts);
// The same for this DiT, with what it does with images (ImageInput by config.in_dim; Wan2.1 I2V's
// 480p shift unless `lightning`) and TI2V-5B's size, 1280×704.
JobDefaults job_defaults(const model::wan::GenerationDefaults& generation,
                         const model::wan::DitConfig& config, bool two_experts, bool lightning);

// One manifest item with every field resolved (the item's own value, else the default).
struct ManifestItem {
  int64_t line = 0;  // 1-based line in the manifest
  std::string id;    // [A-Za-z0-9._-], not starting with '.', at most 128 characters
  std::string prompt, negative_prompt;
  uint64_t seed = 0;
  bool seed_from_id = false;  // true when the item gave no seed (see default_seed)
  int64_t width = 0, height = 0, frames = 0, steps = 0, fps = 0;
  std::string solver;  // canonical name: "unipc", "dpm++" or "euler"
  double shift = 0;
  double guide_scale = 0;
  std::optional<double> guide_scale_high;  // absent: the same as guide_scale
  // Paths as given, resolved against the manifest's folder when relative; empty when absent.
  std::string image, init_noise;
};

// The seed of an item that gives none: the 64-bit FNV-1a hash of its id's bytes (offset basis
// 14695981039346656037, prime 1099511628211). Stable across runs, machines and versions, and
// different items get different noise.
uint64_t default_seed(std::string_view id);

// Thrown for an invalid manifest; what() is a header line and then one line per error (at most
// kMaxReportedErrors, then "... and N more"). errors() holds every one.
class ManifestError : public Error {
 public:
  static constexpr size_t kMaxReportedErrors = 20;
  ManifestError(const std::string& name, std::vector<std::string> errors);
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

// Reads and validates the manifest at `path` (JSON Lines: one JSON object per line; lines that are
// empty or only whitespace are skipped; nothing else, not even `#` comments). Checks: valid JSON
// object per line; no unknown or repeated keys; `id` and `prompt` present; every value's type and
// range; unique ids; width, height and frames the model can take (model::sampling::latent_shape
// with defaults.latent_channels; an image item's width and height are a budget, any size);
// `image` and `init_noise` existing files; `image` given as the model needs (defaults.image).
// Throws ManifestError listing every problem, or Error when the file cannot be read.
std::vector<ManifestItem> read_manifest(const std::string& path, const JobDefaults& defaults);

// The same on text already in memory: `name` is used in messages, relative paths are resolved
// against `base_dir`.
std::vector<ManifestItem> parse_manifest(std::string_view text, const std::string& name,
                                         const std::filesystem::path& base_dir,
                                         const JobDefaults& defaults);

}  // namespace wanbatch::jobs
