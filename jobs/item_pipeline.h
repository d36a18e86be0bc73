// What one dp group does with one manifest item (DESIGN.md "Data"): encode the prompts (through the
// embedding cache), make the noise, sample with the group's Ulysses and CFG-parallel split, then on
// the group leader check the latents, decode and write DIR/<id>.mp4 and DIR/<id>.h5 (the video
// first: the .h5 marks the item done). The models load on the first item, so a rank whose group
// gets no item loads nothing.
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
#include "io/video_writer.h"
#include "jobs/manifest.h"
#include "jobs/run_report.h"
#include "model/wan/dit_loader.h"
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
  std::string vae;  // empty: latents only (--no-video)
  // The decode tiling for the loaded VAE (none: whole frames).
  std::function<std::optional<model::wan::VaeTiling>(const model::wan::WanVae&)> vae_tiling;
  io::VideoOptions video;
  std::string loras, high_loras;  // as the latents record describes them
  std::string version;            // wanbatch's, for the record
};

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
