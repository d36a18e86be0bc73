// WanVae: checkpoint checks, the latent normalisation and the chunk loops of WanVAE_.encode /
// WanVAE_.decode (wan-spec "VAEs"); the networks are in vae_blocks.cpp and vae2_*.cpp.
#include "model/wan/vae.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/ops.h"
#include "model/wan/vae_blocks.h"

namespace wanbatch::model::wan {
namespace {

namespace ops = core::ops;
using core::DType;
using core::Shape;
using core::Tensor;
using vae::Act;

// A name every Wan VAE checkpoint has: what comes before it is the distribution's prefix
// ("first_stage_model.", "vae.", ...).
constexpr const char* kAnchor = "decoder.conv1.weight";

vae::CoderPlan encoder_plan(const VaeConfig& c) {
  return c.kind == VaeConfig::Kind::Wan21 ? vae::encoder_plan_21(c) : vae::encoder_plan_22(c);
}
vae::CoderPlan decoder_plan(const VaeConfig& c) {
  return c.kind == VaeConfig::Kind::Wan21 ? vae::decoder_plan_21(c) : vae::decoder_plan_22(c);
}

// The weights under their official names: the prefix in front of the anchor stripped; tensors
// outside that prefix (other models of a whole-pipeline file) are left out.
std::map<std::string, Tensor> strip_prefix(const std::map<std::string, Tensor>& weights) {
  const std::string anchor = kAnchor;
  std::vector<std::string> prefixes;
  for (const auto& [name, tensor] : weights) {
    if (name.size() >= anchor.size() && name.ends_with(anchor) &&
        (name.size() == anchor.size() || name[name.size() - anchor.size() - 1] == '.')) {
      prefixes.push_back(name.substr(0, name.size() - anchor.size()));
    }
  }
  WB_CHECK(!prefixes.empty(), "VAE weights: no '", anchor, "' tensor among ", weights.size(),
           " tensors: not a Wan VAE checkpoint");
  WB_CHECK(prefixes.size() == 1, "VAE weights: several VAEs in one set of tensors (prefixes '",
           prefixes[0], "' and '", prefixes[1], "')");
  const std::string& prefix = prefixes[0];
  if (prefix.empty()) return weights;
  std::map<std::string, Tensor> stripped;
  for (const auto& [name, tensor] : weights) {
    if (name.starts_with(prefix)) stripped.emplace(name.substr(prefix.size()), tensor);
  }
  return stripped;
}

// Kind and widths from the tensors: Wan2.2 nests each level in its own Sequential; the widths
// come from the first convs and conv2 (z → z).
VaeConfig detect_config(const std::map<std::string, Tensor>& weights) {
  VaeConfig config;
  const bool nested = std::any_of(weights.begin(), weights.end(), [](const auto& entry) {
    return entry.first.starts_with("encoder.downsamples.0.downsamples.") ||
           entry.first.starts_with("decoder.upsamples.0.upsamples.");
  });
  config.kind = nested ? VaeConfig::Kind::Wan22 : VaeConfig::Kind::Wan21;
  const std::string kind = vae_kind_name(config.kind);
  auto shape_of = [&](const std::string& name) {
    auto it = weights.find(name);
    WB_CHECK(it != weights.end(), kind, " weights: tensor '", name, "' is missing");
    WB_CHECK(it->second.ndim() == 5, kind, " weights: tensor '", name, "' is ",
             it->second.describe(), ", expected a 5-D conv weight");
    return it->second.shape();
  };
  const Shape decoder_conv1 = shape_of("decoder.conv1.weight");
  const Shape encoder_conv1 = shape_of("encoder.conv1.weight");
  config.z_dim = decoder_conv1[1];
  WB_CHECK(decoder_conv1[0] % 4 == 0, kind, " weights: decoder.conv1.weight ",
           core::shape_str(decoder_conv1), " does not have 4·dec_dim outputs");
  config.dec_dim = decoder_conv1[0] / 4;
  config.dim = encoder_conv1[0];
  const int64_t official_z = VaeConfig::official(config.kind).z_dim;
  WB_CHECK(config.z_dim == official_z, kind, " weights: ", config.z_dim,
           " latent channels (decoder.conv1.weight ", core::shape_str(decoder_conv1), "); the ",
           kind, " has ", official_z, " (its normalisation constants)");
  WB_CHECK(config.dim > 0 && config.dec_dim > 0, kind, " weights: empty conv1 weights");
  return config;
}

// Missing, unexpected and misshapen tensors, all listed in one error.
void check_weights(const VaeConfig& config, const std::map<std::string, Tensor>& weights) {
  std::vector<std::string> missing, misshapen, unexpected;
  std::set<std::string> known;
  for (const WeightSpec& spec : vae_weight_specs(config)) {
    known.insert(spec.name);
    auto it = weights.find(spec.name);
    if (it == weights.end()) {
      missing.push_back(spec.name);
    } else if (it->second.shape() != spec.shape) {
      misshapen.push_back(spec.name + " " + core::shape_str(it->second.shape()) + " (expected " +
                          core::shape_str(spec.shape) + ")");
    } else {
      WB_CHECK(core::is_floating(it->second.dtype()), vae_kind_name(config.kind),
               " weights: tensor '", spec.name, "' is ", it->second.describe(),
               ", not floating point");
    }
  }
  for (const auto& [name, tensor] : weights) {
    if (!known.count(name)) unexpected.push_back(name);
  }
  if (missing.empty() && misshapen.empty() && unexpected.empty()) return;
  auto list = [](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return std::string();
    std::string s = std::string("; ") + what + " (" + std::to_string(names.size()) + "): ";
    const size_t shown = std::min<size_t>(names.size(), 8);
    for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
    if (shown < names.size()) s += ", ...";
    return s;
  };
  throw make_error(vae_kind_name(config.kind), " weights (dim ", config.dim, ", dec_dim ",
                   config.dec_dim, ", z ", config.z_dim, ") do not fit", list("missing", missing),
                   list("misshapen", misshapen), list("unexpected", unexpected));
}

Tensor vector_tensor(const std::vector<float>& values, const core::Context& ctx) {
  return Tensor::from_vector(values, {static_cast<int64_t>(values.size())}).to(ctx.device());
}

// Frames [begin, begin + count) of src [C, T, ...] into dst [C, count, ...] (f32), through a
// buffer of src's dtype when it is not f32.
void read_frames(const core::Context& ctx, const Tensor& src, int64_t begin, int64_t count,
                 Tensor& dst, Tensor& staging) {
  if (src.dtype() == DType::F32) return ops::copy_slice(ctx, src, 1, begin, dst, 0, count);
  if (staging.shape() != dst.shape() || staging.dtype() != src.dtype()) {
    staging = Tensor::empty(dst.shape(), src.dtype(), ctx.device());
  }
  ops::copy_slice(ctx, src, 1, begin, staging, 0, count);
  ops::cast(ctx, staging, dst);
}

}  // namespace

VaeConfig VaeConfig::official(Kind kind) {
  VaeConfig c;
  c.kind = kind;
  if (kind == Kind::Wan21) {
    c.dim = c.dec_dim = 96;
    c.z_dim = 16;
  } else {
    c.dim = 160;
    c.dec_dim = 256;
    c.z_dim = 48;
  }
  return c;
}

std::string vae_kind_name(VaeConfig::Kind kind) {
  return kind == VaeConfig::Kind::Wan21 ? "Wan2.1 VAE" : "Wan2.2 VAE";
}

VaeTiling vae_tiling_from_pixels(std::optional<int64_t> tile_pixels,
                                 std::optional<int64_t> overlap_pixels, int64_t spatial_stride) {
  const int64_t s = spatial_stride;
  const int64_t tile = tile_pixels.value_or(VaeTiling{}.tile * s);
  WB_CHECK(tile > 0 && tile % s == 0, "tile size ", tile,
           " px is not a positive multiple of the VAE's spatial stride ", s);
  const int64_t overlap = overlap_pixels.value_or(tile / 4 / s * s);
  WB_CHECK(overlap >= 0 && overlap % s == 0, "tile overlap ", overlap,
           " px is not a multiple of the VAE's spatial stride ", s);
  WB_CHECK(2 * overlap < tile, "tile overlap ", overlap, " px is not less than half the tile size ",
           tile, " px");
  return {tile / s, overlap / s};
}

// Tiles start every tile − overlap latent pixels until one reaches the end; the last is cut at the
// border. Since 2·overlap < tile, the last one is longer than the overlap and at most two tiles
// meet at any pixel, so the ramps (j + ½)/P and 1 − (j + ½)/P over the P shared output pixels
// sum to 1 there (symmetric: no tile's edge pixel gets full weight or none).
std::vector<VaeTileSpan> vae_tile_spans(int64_t latent_size, const VaeTiling& tiling,
                                        int64_t spatial_stride) {
  WB_CHECK(latent_size >= 1 && tiling.tile >= 1 && tiling.overlap >= 0 &&
               2 * tiling.overlap < tiling.tile && spatial_stride >= 1,
           "VAE tiling: tiles of ", tiling.tile, " overlapping by ", tiling.overlap,
           " latent pixels over ", latent_size);
  const int64_t step = tiling.tile - tiling.overlap;
  std::vector<VaeTileSpan> spans;
  for (int64_t begin = 0;; begin += step) {
    spans.push_back({begin, std::min(tiling.tile, latent_size - begin), {}});
    if (begin + tiling.tile >= latent_size) break;
  }
  const int64_t ramp = tiling.overlap * spatial_stride;
  for (size_t i = 0; i < spans.size(); ++i) {
    const int64_t n = spans[i].size * spatial_stride;
    std::vector<float>& weights = spans[i].weights;
    weights.assign(static_cast<size_t>(n), 1.0f);
    for (int64_t j = 0; j < ramp; ++j) {
      const double rising = (static_cast<double>(j) + 0.5) / static_cast<double>(ramp);
      if (i > 0) weights[static_cast<size_t>(j)] = static_cast<float>(rising);
      if (i + 1 < spans.size()) {
        weights[static_cast<size_t>(n - ramp + j)] = static_cast<float>(1.0 - rising);
      }
    }
  }
  return spans;
}

std::vector<WeightSpec> vae_weight_specs(const VaeConfig& config) {
  std::vector<WeightSpec> specs = vae::coder_weight_specs(encoder_plan(config));
  const std::vector<WeightSpec> decoder = vae::coder_weight_specs(decoder_plan(config));
  const int64_t z = config.z_dim;
  // WanVAE_.conv1 (after the encoder, 2z → 2z) and conv2 (before the decoder, z → z), 1×1×1.
  specs.push_back({"conv1.weight", {2 * z, 2 * z, 1, 1, 1}, 2 * z, WeightSpec::Kind::Linear});
  specs.push_back({"conv1.bias", {2 * z}, 2 * z, WeightSpec::Kind::Bias});
  specs.push_back({"conv2.weight", {z, z, 1, 1, 1}, z, WeightSpec::Kind::Linear});
  specs.push_back({"conv2.bias", {z}, z, WeightSpec::Kind::Bias});
  specs.insert(specs.end(), decoder.begin(), decoder.end());
  return specs;
}

WanVae::WanVae(const std::map<std::string, Tensor>& all_weights, const core::Context& ctx) {
  const std::map<std::string, Tensor> weights = strip_prefix(all_weights);
  config_ = detect_config(weights);
  check_weights(config_, weights);

  vae::WeightReader reader(weights, ctx);
  encoder_ = std::make_unique<vae::Coder>(reader, encoder_plan(config_));
  decoder_ = std::make_unique<vae::Coder>(reader, decoder_plan(config_));
  conv1_weight_ = reader.get("conv1.weight");
  conv1_bias_ = reader.get("conv1.bias");
  conv2_weight_ = reader.get("conv2.weight");
  conv2_bias_ = reader.get("conv2.bias");
  WB_CHECK(reader.used().size() == weights.size(), "VAE: internal error: ", reader.used().size(),
           " of ", weights.size(), " checked tensors used");
  workspace_ = std::make_unique<vae::Workspace>(ctx.device());

  // The official code keeps scale = [mean, 1/std] in float32 and computes (mu − mean)·(1/std)
  // when encoding, z / (1/std) + mean when decoding.
  const std::vector<float>& mean = vae_latent_mean(config_.kind);
  const std::vector<float>& std_dev = vae_latent_std(config_.kind);
  std::vector<float> inv_std(mean.size()), neg_mean_inv(mean.size()), std_back(mean.size());
  for (size_t c = 0; c < mean.size(); ++c) {
    inv_std[c] = 1.0f / std_dev[c];
    neg_mean_inv[c] = static_cast<float>(-static_cast<double>(mean[c]) * inv_std[c]);
    std_back[c] = static_cast<float>(1.0 / static_cast<double>(inv_std[c]));
  }
  inv_std_ = vector_tensor(inv_std, ctx);
  neg_mean_inv_std_ = vector_tensor(neg_mean_inv, ctx);
  std_ = vector_tensor(std_back, ctx);
  mean_ = vector_tensor(mean, ctx);
}

WanVae::~WanVae() = default;
WanVae::WanVae(WanVae&&) noexcept = default;
WanVae& WanVae::operator=(WanVae&&) noexcept = default;

std::array<int64_t, 3> WanVae::stride() const {
  const int64_t s = config_.spatial_stride();
  return {VaeConfig::kTemporalStride, s, s};
}

Shape WanVae::decoded_shape(const Shape& latents) const {
  const std::string kind = vae_kind_name(config_.kind);
  WB_CHECK(latents.size() == 4 && latents[0] == config_.z_dim && latents[1] >= 1 &&
               latents[2] >= 1 && latents[3] >= 1,
           kind, ": latents ", core::shape_str(latents), " must be [", config_.z_dim,
           ", T, h, w] with T, h, w ≥ 1");
  const int64_t s = config_.spatial_stride();
  return {3, 1 + VaeConfig::kTemporalStride * (latents[1] - 1), latents[2] * s, latents[3] * s};
}

Shape WanVae::encoded_shape(const Shape& video) const {
  const std::string kind = vae_kind_name(config_.kind);
  const int64_t s = config_.spatial_stride(), ts = VaeConfig::kTemporalStride;
  WB_CHECK(video.size() == 4 && video[0] == 3, kind, ": video ", core::shape_str(video),
           " must be [3, F, H, W]");
  WB_CHECK(video[1] >= 1 && (video[1] - 1) % ts == 0, kind, ": video ", core::shape_str(video),
           " has ", video[1], " frames; the VAE takes 4k + 1 (",
           std::max<int64_t>(1, (video[1] - 1) / ts * ts + 1), " or ",
           ((video[1] + ts - 2) / ts) * ts + 1, ")");
  WB_CHECK(video[2] >= s && video[3] >= s && video[2] % s == 0 && video[3] % s == 0, kind,
           ": video ", core::shape_str(video), " is ", video[3], "x", video[2],
           "; width and height must be multiples of ", s);
  return {config_.z_dim, (video[1] - 1) / ts + 1, video[2] / s, video[3] / s};
}

void WanVae::set_chunks(int64_t decode_latent_frames, int64_t encode_frames) {
  WB_CHECK(decode_latent_frames >= 1, "VAE: decode chunk of ", decode_latent_frames,
           " latent frames");
  WB_CHECK(encode_frames >= 4 && encode_frames % 4 == 0, "VAE: encode chunk of ", encode_frames,
           " frames (a positive multiple of 4)");
  decode_chunk_ = decode_latent_frames;
  encode_chunk_ = encode_frames;
}

void WanVae::set_tiling(std::optional<VaeTiling> tiling) {
  if (tiling) {
    WB_CHECK(tiling->tile >= 1 && tiling->overlap >= 0 && 2 * tiling->overlap < tiling->tile,
             "VAE tiling: tiles of ", tiling->tile, " latent pixels overlapping by ",
             tiling->overlap, "; the tile must be positive and the overlap less than half of it");
  }
  tiling_ = tiling;
}

// WanVAE_.decode: z·std + mean, conv2, then the decoder chunk by chunk: latent frame 0 alone (1
// video frame), then decode_chunk_ latent frames at a time (4 video frames each); clamp.
void WanVae::decode(const core::Context& ctx, const Tensor& latents, Tensor& video) {
  const Shape expected = decoded_shape(latents.shape());
  WB_CHECK(video.shape() == expected && video.dtype() == DType::F32, vae_kind_name(config_.kind),
           ": video output ", video.describe(), ", expected ", core::shape_str(expected), " f32");
  if (tiling_ && (latents.dim(2) > tiling_->tile || latents.dim(3) > tiling_->tile)) {
    return decode_tiled(ctx, latents, video);
  }
  decode_chunks(ctx, latents, [&](Tensor& rgb, int64_t first_frame) {
    ops::clamp(ctx, rgb, -1.0f, 1.0f, rgb);
    ops::copy_slice(ctx, rgb, 1, 0, video, first_frame, rgb.dim(1));
  });
}

void WanVae::decode_chunks(const core::Context& ctx, const Tensor& latents, const ChunkSink& sink) {
  const int64_t z = config_.z_dim, frames = latents.dim(1), h = latents.dim(2), w = latents.dim(3);
  vae::Workspace& ws = *workspace_;
  decoder_->reset();
  Tensor staging;
  int64_t out_frame = 0;
  for (int64_t begin = 0; begin < frames;) {
    const int64_t count = begin == 0 ? 1 : std::min(decode_chunk_, frames - begin);
    Tensor chunk = ws.view(vae::kChunk, {z, count, h, w});
    read_frames(ctx, latents, begin, count, chunk, staging);
    ops::channel_affine(ctx, chunk, std_, mean_, chunk);
    Act x{ws.view(vae::kMainA, chunk.shape()), vae::kMainA};
    ops::conv3d(ctx, chunk, conv2_weight_, conv2_bias_, {}, x.t);
    Act y = decoder_->forward(ctx, x, ws);
    Tensor rgb = y.t;
    if (config_.kind == VaeConfig::Kind::Wan22) {
      rgb = ws.view(vae::other_main(y.slot), {3, y.t.dim(1), 2 * y.t.dim(2), 2 * y.t.dim(3)});
      vae::unpatchify(ctx, y.t, rgb);
    }
    const int64_t made = rgb.dim(1);
    WB_CHECK(made == (begin == 0 ? 1 : VaeConfig::kTemporalStride * count),
             "VAE: internal error: ", count, " latent frames decoded to ", made);
    sink(rgb, out_frame);
    out_frame += made;
    begin += count;
  }
}

// Tile by tile (rows of tiles, then tiles along the row), each over all frames from a fresh cache:
// its frames, weighted by the product of its row and column ramps, are added into the video, which
// starts at zero; the sum is clamped at the end (as diffusers clamps after blending).
void WanVae::decode_tiled(const core::Context& ctx, const Tensor& latents, Tensor& video) {
  const int64_t s = config_.spatial_stride();
  const int64_t z = latents.dim(0), frames = latents.dim(1), w = latents.dim(3);
  const int64_t height = video.dim(2), width = video.dim(3), planes = 3 * video.dim(1);
  const std::vector<VaeTileSpan> rows = vae_tile_spans(latents.dim(2), *tiling_, s);
  const std::vector<VaeTileSpan> columns = vae_tile_spans(w, *tiling_, s);
  ops::fill(ctx, video, 0.0f);
  const Tensor video_planes = video.reshape({planes, height, width});
  for (const VaeTileSpan& row : rows) {
    // The latent rows of this row of tiles, all frames, in the input's dtype.
    Tensor row_latents = Tensor::empty({z, frames, row.size, w}, latents.dtype(), ctx.device());
    ops::copy_slice(ctx, latents, 2, row.begin, row_latents, 0, row.size);
    const int64_t tile_h = row.size * s, top = row.begin * s;
    Tensor band = Tensor::empty({tile_h, width}, DType::F32, ctx.device());
    for (const VaeTileSpan& column : columns) {
      Tensor tile_latents =
          Tensor::empty({z, frames, row.size, column.size}, latents.dtype(), ctx.device());
      ops::copy_slice(ctx, row_latents, 3, column.begin, tile_latents, 0, column.size);
      const int64_t tile_w = column.size * s, left = column.begin * s;
      std::vector<float> weights(static_cast<size_t>(tile_h * tile_w));
      for (int64_t y = 0; y < tile_h; ++y) {
        for (int64_t x = 0; x < tile_w; ++x) {
          weights[static_cast<size_t>(y * tile_w + x)] =
              row.weights[static_cast<size_t>(y)] * column.weights[static_cast<size_t>(x)];
        }
      }
      const Tensor weight = Tensor::from_vector(weights, {tile_h, tile_w}).to(ctx.device());
      Tensor window = Tensor::empty({tile_h, tile_w}, DType::F32, ctx.device());
      decode_chunks(ctx, tile_latents, [&](Tensor& rgb, int64_t first_frame) {
        ops::mul(ctx, rgb, weight, rgb);
        // Each (channel, frame) plane: video[top:, left:] += rgb, through the band of rows.
        const int64_t made = rgb.dim(1);
        const Tensor rgb_planes = rgb.reshape({3 * made, tile_h, tile_w});
        for (int64_t p = 0; p < 3 * made; ++p) {
          Tensor plane = video_planes.select((p / made) * video.dim(1) + first_frame + p % made);
          ops::copy_slice(ctx, plane, 0, top, band, 0, tile_h);
          ops::copy_slice(ctx, band, 1, left, window, 0, tile_w);
          ops::add(ctx, window, rgb_planes.select(p), window);
          ops::copy_slice(ctx, window, 1, 0, band, left, tile_w);
          ops::copy_slice(ctx, band, 0, 0, plane, top, tile_h);
        }
      });
    }
  }
  ops::clamp(ctx, video, -1.0f, 1.0f, video);
}

// WanVAE_.encode: the encoder over frame 0 alone, then encode_chunk_ frames at a time (4 by
// default, as the official 1, 4, 4, ...); conv1; mu = the first z channels, normalised.
void WanVae::encode(const core::Context& ctx, const Tensor& video, Tensor& latents) {
  const Shape expected = encoded_shape(video.shape());
  WB_CHECK(latents.shape() == expected && latents.dtype() == DType::F32,
           vae_kind_name(config_.kind), ": latents output ", latents.describe(), ", expected ",
           core::shape_str(expected), " f32");
  const int64_t z = config_.z_dim, frames = video.dim(1), h = video.dim(2), w = video.dim(3);
  vae::Workspace& ws = *workspace_;
  encoder_->reset();
  Tensor staging;
  int64_t out_frame = 0;
  for (int64_t begin = 0; begin < frames;) {
    const int64_t count = begin == 0 ? 1 : std::min(encode_chunk_, frames - begin);
    Tensor chunk = ws.view(vae::kChunk, {3, count, h, w});
    read_frames(ctx, video, begin, count, chunk, staging);
    Act x{chunk, vae::kChunk};
    if (config_.kind == VaeConfig::Kind::Wan22) {
      x = Act{ws.view(vae::kMainB, {12, count, h / 2, w / 2}), vae::kMainB};
      vae::patchify(ctx, chunk, x.t);
    }
    Act y = encoder_->forward(ctx, x, ws);
    Tensor moments = ws.view(vae::other_main(y.slot), y.t.shape());
    ops::conv3d(ctx, y.t, conv1_weight_, conv1_bias_, {}, moments);
    Tensor mu = moments.slice(0, z);  // the log-variance half is not needed
    ops::channel_affine(ctx, mu, inv_std_, neg_mean_inv_std_, mu);
    const int64_t made = mu.dim(1);
    WB_CHECK(made == (begin == 0 ? 1 : count / VaeConfig::kTemporalStride),
             "VAE: internal error: ", count, " frames encoded to ", made);
    ops::copy_slice(ctx, mu, 1, 0, latents, out_frame, made);
    out_frame += made;
    begin += count;
  }
}

}  // namespace wanbatch::model::wan
