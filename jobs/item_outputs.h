// An item's outputs in the run's folder (DESIGN.md "Data"): DIR/<id>.h5 and DIR/<id>.mp4, and
// when they count as complete for resuming: both present (the .h5 alone with --no-video) and the
// .h5's record saying it was made for the item as the manifest now reads.
#pragma once

#include <filesystem>
#include <string>

#include "io/latents_file.h"
#include "jobs/manifest.h"

namespace wanbatch::jobs {

std::string latents_path(const std::filesystem::path& dir, const ManifestItem& item);
std::string video_path(const std::filesystem::path& dir, const ManifestItem& item);

// "philox seed N", or the item's init_noise file.
std::string noise_source(const ManifestItem& item);

// Whether the record matches the item: prompts, seed and noise, size (an image item's: its image
// and pixel budget), frames, fps, solver, steps, shift and guide scales.
bool record_matches(const io::LatentsRecord& record, const ManifestItem& item);

// Both files present and the record matching; an unreadable .h5 is not complete.
bool item_complete(const std::filesystem::path& dir, const ManifestItem& item, bool with_video);

}  // namespace wanbatch::jobs
