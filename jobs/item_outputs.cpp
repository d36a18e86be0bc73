#include "jobs/item_outputs.h"

namespace wanbatch::jobs {

namespace fs = std::filesystem;

std::string latents_path(const fs::path& dir, const ManifestItem& item) {
  return (dir / (item.id + ".h5")).string();
}

std::string video_path(const fs::path& dir, const ManifestItem& item) {
  return (dir / (item.id + ".mp4")).string();
}

std::string noise_source(const ManifestItem& item) {
  return item.init_noise.empty() ? "philox seed " + std::to_string(item.seed) : item.init_noise;
}

namespace {

// An image item's size comes from its image within the budget of its width × height.
bool size_matches(const io::LatentsRecord& r, const ManifestItem& item) {
  if (item.image.empty()) return !r.image && r.width == item.width && r.height == item.height;
  return r.image == item.image && r.max_area == item.width * item.height;
}

}  // namespace

bool record_matches(const io::LatentsRecord& r, const ManifestItem& item) {
  const double high = item.guide_scale_high.value_or(item.guide_scale);
  return r.id == item.id && r.prompt == item.prompt && r.negative_prompt == item.negative_prompt &&
         r.seed == std::optional<uint64_t>(item.seed) && r.noise == noise_source(item) &&
         size_matches(r, item) && r.frames == item.frames && r.fps == item.fps &&
         r.solver == item.solver && r.steps == item.steps && r.shift == item.shift &&
         r.guide_scale == item.guide_scale && r.guide_scale_high.value_or(r.guide_scale) == high;
}

bool item_complete(const fs::path& dir, const ManifestItem& item, bool with_video) {
  const std::string h5 = latents_path(dir, item);
  if (!fs::exists(h5) || (with_video && !fs::exists(video_path(dir, item)))) return false;
  try {
    return record_matches(io::read_latents_file(h5).record, item);
  } catch (const std::exception&) {
    return false;  // partial or foreign: made again
  }
}

}  // namespace wanbatch::jobs
