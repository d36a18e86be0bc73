// What one dp group does with one manifest item (DESIGN.md "Data"): encode the prompts (through the
// embedding cache), make the noise, sample with the group's Ulysses and CFG-parallel split, then on
// the group leader check the latents, decode and write DIR/<id>.mp4 and DIR/<id>.h5 (the video
// first: the .h5 marks the item done). The models load on the first item, so a rank whose group
// gets no item loads nothing.
//
// An item with an image (issue 11) gets its size from the image (item_size below) and its image
// conditions from the VAE (and CLIP): I2V models (36 input channels) the condition channels y and,
// with the image branch, the CLIP features; TI2V-5B the image latent as latent frame 0. Every rank
// of the group computes them itself rather than the leader broadcasting them: every rank holds the
// VAE anyway, the others would only wait idle while the leader encoded (so no time is saved), the
// same inputs through the same code give the same bits, and an unreadable image fails on every
// rank alike through the agreement below, with no extra collective to keep in step.
//
// Failures: an item whose inputs cannot be made (bad noise file, ...) fails on every rank of the
// group alike; one whose latents hold NaN, or whose outputs cannot be written, fails on the
// leader; the batch goes on either way. A failure inside sampling with more than one rank in the
// group (a rank may be stuck in a collective) ends the job on every rank with one message, as
// does a model that cannot load.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "core/context.h"
#include "io/image_reader.h"
#include "io/video_writer.h"
#include "jobs/manifest.h"
#include "jobs/run_report.h"
#include "model/wan/dit_loader.h"
#include "model/wan/image_sizes.h"
#include "model/wan/vae.h"
#include "parallel/comm.h"
#include "parallel/groups.h"

namespace wanbatch::jobs {

struct PipelineOptions {
  std::string dit;       // the only model, or Wan2.2's low-noise expert
  std::string dit_high;  // Wan2.2's high-noise expert, or empty
  model::wan::DitLoadOptions low_load, high_load;
  double boundary = 0.875;  // used with two experts
  std::string t5, tokenizer, embedding_cache;
  int64_t text_len = 512;
  std::string vae;          // empty: none (--no-video with text-to-video)
  bool write_video = true;  // false: latents only (--no-video), the VAE only encodes images
  std::string clip;         // Wan2.1 I2V's CLIP vision weights, or empty
  // --offload model: a model waits in pinned host memory while another runs: the text encoder
  // after encoding, the expert not in use, the DiTs while the leader decodes.
  bool offload_models = false;
  // The decode tiling for the loaded VAE (none: whole frames).
  std::function<std::optional<model::wan::VaeTiling>(const model::wan::WanVae&)> vae_tiling;
  io::VideoOptions video;
  std::string loras, high_loras;  // as the latents record describes them
  std::string version;            // wanbatch's, for the record
};

// The video size of an item for a DiT of `in_dim` input channels: its width × height, or for an
// image item the size the official pipeline derives from the image within that pixel budget
// (36: image2video.py's, 48: textimage2video.py's). Throws when the budget is too small.
model::wan::PixelSize item_size(const ManifestItem& item, int64_t in_dim,
                                const io::Rgb8Image* image);

class ItemPipeline {
 public:
  // `groups` and `world` must outlive the pipeline; `world` is used to end the job.
  ItemPipeline(PipelineOptions options, const core::Context& ctx, const parallel::Groups& groups,
               const parallel::Comm& world);
  ~ItemPipeline();
  ItemPipeline(const ItemPipeline&) = delete;
  ItemPipeline& operator=(const ItemPipeline&) = delete;

  // Called by every rank of the item group together. The result (status, reason, timings,
  // outputs) is complete on the group leader.
  ItemResult run(const ManifestItem& item, size_t index, const std::filesystem::path& out_dir);

 private:
  struct Models;
  void load();

  PipelineOptions options_;
  core::Context ctx_;
  const parallel::Groups& groups_;
  const parallel::Comm& world_;
  std::unique_ptr<Models> models_;
};

}  // namespace wanbatch::jobs
