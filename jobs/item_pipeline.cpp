#include "jobs/item_pipeline.h"

#include <chrono>
#include <cmath>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory_stats.h"
#include "io/checkpoint.h"
#include "io/hdf5_file.h"
#include "io/latents_file.h"
#include "io/t5_tokenizer.h"
#include "jobs/item_outputs.h"
#include "model/sampling/latent_shape.h"
#include "model/sampling/philox_noise.h"
#include "model/sampling/sampler.h"
#include "model/wan/clip_loader.h"
#include "model/wan/image_conditioning.h"
#include "model/wan/t5_loader.h"
#include "model/wan/text_embedding_cache.h"
#include "model/wan/vae_loader.h"

namespace wanbatch::jobs {
namespace {

namespace fs = std::filesystem;
namespace sampling = model::sampling;
using core::Clock;
using core::seconds_since;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
using core::Tensor;

// The item's noise: Philox from its seed, or its init_noise file's 'noise' dataset.
Tensor item_noise(const ManifestItem& item, const model::wan::PixelSize& size,
                  const core::Shape& shape) {
  if (item.init_noise.empty()) return sampling::initial_noise(item.seed, shape);
  const Tensor noise = io::Hdf5Reader::open(item.init_noise).read_f32("noise", 4);
  WB_CHECK(noise.shape() == shape, item.init_noise, ": noise ", core::shape_str(noise.shape()),
           " does not fit ", size.width, "x", size.height, ", ", item.frames,
           " frames, which need ", core::shape_str(shape));
  return noise;
}

}  // namespace

model::wan::PixelSize item_size(const ManifestItem& item, int64_t in_dim,
                                const io::Rgb8Image* image) {
  if (item.image.empty() || !image) return {item.width, item.height};
  const int64_t budget = item.width * item.height;
  try {
    if (in_dim == 36) return model::wan::i2v_size(image->width, image->height, budget);
    if (in_dim == 48) return model::wan::ti2v_size(image->width, image->height, budget);
  } catch (const std::exception& e) {
    throw make_error(item.image, " (", image->width, "x", image->height, ") within ", item.width,
                     "x", item.height, " pixels: ", e.what());
  }
  throw make_error("an item with an image needs an image-to-video model; this DiT has ", in_dim,
                   " input channels");
}

struct ItemPipeline::Models {
  std::optional<model::wan::WanDit> low, high;
  std::optional<model::wan::WanVae> vae;
  std::optional<model::wan::ClipVision> clip;
  std::optional<io::T5Tokenizer> tokenizer;
  std::optional<model::wan::T5Encoder> encoder;
  std::optional<model::wan::TextEmbeddingCache> cache;
  std::string low_fingerprint, high_fingerprint;
  double load_seconds = 0;
  size_t weight_bytes = 0;  // the DiT's (both experts') on this rank
};

ItemPipeline::ItemPipeline(PipelineOptions options, const core::Context& ctx,
                           const parallel::Groups& groups, const parallel::Comm& world)
    : options_(std::move(options)), ctx_(ctx), groups_(groups), world_(world) {}

ItemPipeline::~ItemPipeline() = default;

void ItemPipeline::load() {
  const auto start = Clock::now();
  auto m = std::make_unique<Models>();
  const PipelineOptions& o = options_;
  m->tokenizer.emplace(o.tokenizer);
  m->cache.emplace(model::wan::TextEmbeddingCache::model_key(
                       o.tokenizer, model::wan::t5_weights_fingerprint(o.t5), o.text_len),
                   o.embedding_cache);
  m->low.emplace(model::wan::load_dit(o.dit, ctx_, o.low_load));
  m->low->set_sequence_parallel(groups_.sp.get());
  m->low_fingerprint = io::Checkpoint::open(o.dit).fingerprint();
  // --offload model: the low-noise expert waits in host memory while the high-noise one loads
  // and runs first.
  if (o.offload_models && !o.dit_high.empty()) m->low->set_resident(false);
  if (!o.dit_high.empty()) {
    m->high.emplace(model::wan::load_dit(o.dit_high, ctx_, o.high_load));
    m->high->set_sequence_parallel(groups_.sp.get());
    m->high_fingerprint = io::Checkpoint::open(o.dit_high).fingerprint();
    WB_CHECK(m->high->config().in_dim == m->low->config().in_dim &&
                 m->high->config().out_dim == m->low->config().out_dim,
             "the experts do not match: high-noise ", m->high->config().variant, ", low-noise ",
             m->low->config().variant);
  }
  if (!o.vae.empty()) {
    m->vae.emplace(model::wan::load_vae(o.vae, ctx_));
    WB_CHECK(m->vae->latent_channels() == m->low->config().out_dim, o.vae, " takes ",
             m->vae->latent_channels(), " latent channels; ", o.dit, " makes ",
             m->low->config().out_dim);
    if (o.vae_tiling) {
      if (const auto tiling = o.vae_tiling(*m->vae)) m->vae->set_tiling(tiling);
    }
  }
  const model::wan::DitConfig& config = m->low->config();
  WB_CHECK(config.image_branch == !o.clip.empty(), o.dit,
           config.image_branch ? " has the CLIP image branch: it needs the CLIP vision weights"
                               : " has no CLIP image branch: CLIP weights were given");
  if (!o.clip.empty()) {
    // On a GPU in fp16, as the official runs CLIP; on the CPU in fp32, the reference.
    m->clip.emplace(model::wan::load_clip_vision(
        o.clip, ctx_, ctx_.device().is_cuda() ? core::DType::F16 : core::DType::F32));
    WB_CHECK(m->clip->config().dim == config.image_dim && m->clip->config().tokens() == 257, o.clip,
             ": CLIP features of ", m->clip->config().tokens(), " tokens × ", m->clip->config().dim,
             "; ", o.dit, " takes 257 × ", config.image_dim);
  }
  m->load_seconds = seconds_since(start);
  m->weight_bytes =
      m->low->resident_weight_bytes() + (m->high ? m->high->resident_weight_bytes() : 0);
  WB_LOG(info) << "models loaded in " << m->load_seconds << " s: DiT weights "
               << static_cast<double>(m->weight_bytes) / kGiB << " GiB on this rank"
               << (o.low_load.shard_comm
                       ? " (blocks sharded over " + std::to_string(o.low_load.shard_comm->size()) +
                             " ranks)"
                       : std::string())
               << ", "
               << static_cast<double>(m->low->host_weight_bytes() +
                                      (m->high ? m->high->host_weight_bytes() : 0)) /
                      kGiB
               << " GiB in host memory (--offload), peak memory "
               << static_cast<double>(core::peak_bytes(ctx_)) / kGiB << " GiB ("
               << (ctx_.device().is_cuda() ? ctx_.device().str() : "host") << ")";
  models_ = std::move(m);
}

ItemResult ItemPipeline::run(const ManifestItem& item, size_t index, const fs::path& out_dir) {
  if (!models_) {
    // Every other rank would wait for this one in a collective: a load failure ends the job.
    try {
      load();
    } catch (const std::exception& e) {
      world_.abort(std::string("loading the models: ") + e.what());
    }
  }
  Models& m = *models_;
  parallel::Comm& group = *groups_.item;
  const bool leader = groups_.topology.leader();
  ItemResult r;
  r.id = item.id;
  r.index = index;
  r.rank = world_.rank();
  r.group = groups_.topology.dp_index;
  const auto item_start = Clock::now();
  // The DiTs' memory as sampling leaves it (before --offload model moves them for the decode).
  bool memory_noted = false;
  const auto note_memory = [&] {
    size_t buffers = 0, host = 0, activations = 0;
    for (const auto* dit : {&m.low, &m.high}) {
      if (!dit->has_value()) continue;
      buffers += (*dit)->weight_buffer_bytes();
      host += (*dit)->host_weight_bytes();
      activations += (*dit)->activation_bytes();
    }
    r.weight_buffers_gib = static_cast<double>(buffers) / kGiB;
    r.host_weights_gib = static_cast<double>(host) / kGiB;
    r.activations_gib = static_cast<double>(activations) / kGiB;
    memory_noted = true;
  };
  const auto finish = [&](const std::string& status, const std::string& reason) {
    r.status = status;
    r.reason = reason;
    r.total_seconds = seconds_since(item_start);
    r.memory_of = ctx_.device().is_cuda() ? ctx_.device().str() : "host";
    r.weights_gib = static_cast<double>(m.weight_bytes) / kGiB;
    if (!memory_noted) note_memory();
    r.peak_gib = static_cast<double>(core::peak_bytes(ctx_)) / kGiB;
    if (status == "failed") {
      WB_LOG(error) << item.id << " (line " << item.line << ") failed: " << reason;
    }
    return r;
  };

  // Inputs, on every rank of the group alike; the group agrees whether they could be made.
  sampling::SamplerOptions options;
  sampling::SampleConditions conditions;
  model::wan::PixelSize size{item.width, item.height};
  Tensor noise;
  std::string input_error;
  try {
    auto t = Clock::now();
    options.solver = sampling::parse_solver(item.solver);
    options.steps = static_cast<int>(item.steps);
    options.shift = item.shift;
    options.guide_scale = item.guide_scale;
    options.guide_scale_high = item.guide_scale_high;
    options.boundary = options_.boundary;
    options.item = item.id;
    options.cfg = groups_.cfg.get();
    options.offload_models = options_.offload_models;
    const bool guided = options.guide_scale != 1.0 ||
                        (m.high && options.guide_scale_high.value_or(options.guide_scale) != 1.0);
    // Sharded (with the DiT's shard group), the encoder runs collectively, so the group's ranks
    // must miss the cache together. They see the same texts in the same order, but with a disk
    // cache another group may write a prompt's file between two ranks' looks: they agree first,
    // and any rank's miss makes all of them encode.
    parallel::Comm* const text_shards = options_.low_load.shard_comm;
    auto encode = [&](const std::string& text) {
      std::optional<model::wan::TextEmbedding> found = m.cache->find(text);
      if (text_shards && group.size() > 1) {
        Tensor missed = Tensor::from_vector(std::vector<int64_t>{found ? 0 : 1}, {1});
        group.all_reduce_sum(missed);
        if (missed.data<int64_t>()[0] > 0) found.reset();
      }
      if (found) return *found;
      model::wan::TextEmbedding e = [&] {
        if (!m.encoder) {
          m.encoder.emplace(model::wan::load_t5_encoder(options_.t5, ctx_, text_shards));
          WB_CHECK(m.tokenizer->vocab_size() <= m.encoder->config().vocab, options_.tokenizer, ": ",
                   m.tokenizer->vocab_size(), " pieces, more than the ", m.encoder->config().vocab,
                   " embeddings of ", options_.t5);
        }
        const io::T5Tokens tokens = m.tokenizer->tokenize(text, options_.text_len);
        const std::vector<int64_t> ids(tokens.ids.begin(), tokens.ids.begin() + tokens.length);
        model::wan::TextEmbedding e;
        e.ids = Tensor::from_vector(ids, {tokens.length});
        m.encoder->set_resident(true);
        e.context = m.encoder->encode(ctx_, e.ids, tokens.length).to(core::Device::cpu());
        return e;
      }();
      m.cache->insert(text, e);
      return e;
    };
    conditions.context = encode(item.prompt).context;
    if (guided) conditions.context_null = encode(item.negative_prompt).context;
    if (options_.offload_models && m.encoder) m.encoder->set_resident(false);
    if (!item.image.empty()) {
      // The image's conditions at the size it gives (image2video.py, textimage2video.py).
      const io::Rgb8Image image = io::read_image_rgb8(item.image);
      const model::wan::DitConfig& config = m.low->config();
      size = item_size(item, config.in_dim, &image);
      WB_CHECK(m.vae, item.id, ": an image item needs the VAE, which was not given");
      if (config.in_dim == 36) {
        conditions.y = model::wan::i2v_condition(ctx_, *m.vae, model::wan::i2v_image(image, size),
                                                 item.frames);
        // CLIP sees the whole image as read, not the resized one.
        if (m.clip) conditions.clip = m.clip->encode(ctx_, io::rgb8_to_tensor(image));
      } else {
        conditions.first_frame =
            model::wan::ti2v_first_frame(ctx_, *m.vae, model::wan::ti2v_image(image, size));
      }
    }
    r.encode_seconds = seconds_since(t);
    noise = item_noise(
        item, size,
        sampling::latent_shape(m.low->config().out_dim, size.width, size.height, item.frames));
  } catch (const std::exception& e) {
    input_error = e.what();
  }
  if (group.size() > 1) {
    Tensor failed = Tensor::from_vector(std::vector<int64_t>{input_error.empty() ? 0 : 1}, {1});
    group.all_reduce_sum(failed);
    if (failed.data<int64_t>()[0] > 0 && input_error.empty()) {
      input_error = "another rank of the group could not prepare the item";
    }
  }
  if (!input_error.empty()) return finish("failed", input_error);
  r.width = size.width;
  r.height = size.height;

  // Sampling: collective over the group.
  sampling::SampleResult result;
  auto t = Clock::now();
  try {
    result =
        sampling::sample(ctx_, {&*m.low, m.high ? &*m.high : nullptr}, options, noise, conditions);
  } catch (const std::exception& e) {
    if (group.size() > 1) world_.abort(item.id + ": sampling failed: " + e.what());
    return finish("failed", e.what());
  }
  r.sample_seconds = seconds_since(t);
  note_memory();
  if (!leader) return finish("done", "");

  // The leader checks and writes.
  try {
    const Tensor latents = result.latents.to(core::Device::cpu());
    const float* p = latents.data<float>();
    for (int64_t i = 0; i < latents.numel(); ++i) {
      WB_CHECK(std::isfinite(p[i]), "the latents hold NaN or infinity (element ", i, ")");
    }
    io::LatentsRecord record;
    record.id = item.id;
    record.prompt = item.prompt;
    record.negative_prompt = item.negative_prompt;
    record.seed = item.seed;
    record.noise = noise_source(item);
    record.width = size.width;
    record.height = size.height;
    if (!item.image.empty()) {
      record.image = item.image;
      record.max_area = item.width * item.height;
    }
    record.frames = item.frames;
    record.fps = item.fps;
    record.solver = item.solver;
    record.steps = item.steps;
    record.shift = item.shift;
    record.guide_scale = item.guide_scale;
    record.guide_scale_high = item.guide_scale_high;
    if (m.high) record.boundary = options_.boundary;
    record.timesteps.assign(result.timesteps.begin(), result.timesteps.end());
    record.model_variant = m.low->config().variant;
    record.weights = options_.dit;
    record.weights_fingerprint = m.low_fingerprint;
    record.loras = options_.loras;
    if (m.high) {
      record.high_noise_weights = options_.dit_high;
      record.high_noise_fingerprint = m.high_fingerprint;
      record.high_noise_loras = options_.high_loras;
    }
    record.world_size = world_.size();
    record.sp_size = groups_.topology.sp;
    record.load_seconds = m.load_seconds;
    record.sample_seconds = r.sample_seconds;
    record.wanbatch_version = options_.version;
    const std::string h5 = latents_path(out_dir, item);
    if (options_.offload_models) {  // the decoder gets the device to itself
      m.low->set_resident(false);
      if (m.high) m.high->set_resident(false);
    }
    if (m.vae && options_.write_video) {
      t = Clock::now();
      Tensor frames =
          Tensor::empty(m.vae->decoded_shape(latents.shape()), core::DType::F32, ctx_.device());
      m.vae->decode(ctx_, result.latents, frames);
      io::VideoOptions video = options_.video;
      video.fps = static_cast<int>(item.fps);
      r.video = video_path(out_dir, item);
      io::write_video(r.video, frames.to(core::Device::cpu()), video);
      r.decode_seconds = seconds_since(t);
    }
    io::write_latents_file(h5, latents, record);
    r.latents = h5;
  } catch (const std::exception& e) {
    // No half-done item: a video written for latents that then failed goes too.
    if (!r.video.empty()) fs::remove(r.video);
    r.video.clear();
    return finish("failed", e.what());
  }
  return finish("done", "");
}

}  // namespace wanbatch::jobs
