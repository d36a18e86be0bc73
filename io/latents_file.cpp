#include "io/latents_file.h"

#include "core/error.h"
#include "io/hdf5_file.h"

namespace wanbatch::io {
namespace {

template <typename T>
void write_optional(Hdf5Writer& out, const char* name, const std::optional<T>& value) {
  if (value) out.attribute(name, *value);
}

}  // namespace

void write_latents_file(const std::string& path, const core::Tensor& latents,
                        const LatentsRecord& r) {
  WB_CHECK(latents.ndim() == 4, "latents for ", path, " must be [C, T, H, W], got ",
           latents.describe());
  Hdf5Writer out(path);
  out.write("latents", latents);
  write_optional(out, "id", r.id);
  write_optional(out, "prompt", r.prompt);
  write_optional(out, "negative_prompt", r.negative_prompt);
  if (r.seed) out.attribute_unsigned("seed", *r.seed);
  out.attribute("noise", r.noise);
  write_optional(out, "width", r.width);
  write_optional(out, "height", r.height);
  write_optional(out, "frames", r.frames);
  write_optional(out, "fps", r.fps);
  write_optional(out, "image", r.image);
  write_optional(out, "max_area", r.max_area);
  out.attribute("solver", r.solver);
  out.attribute("steps", r.steps);
  out.attribute("shift", r.shift);
  out.attribute("guide_scale", r.guide_scale);
  write_optional(out, "guide_scale_high", r.guide_scale_high);
  write_optional(out, "boundary", r.boundary);
  out.write("timesteps",
            core::Tensor::from_vector(r.timesteps, {static_cast<int64_t>(r.timesteps.size())}));
  out.attribute("model_variant", r.model_variant);
  out.attribute("weights", r.weights);
  out.attribute("weights_fingerprint", r.weights_fingerprint);
  if (!r.high_noise_weights.empty()) {
    out.attribute("high_noise_weights", r.high_noise_weights);
    out.attribute("high_noise_fingerprint", r.high_noise_fingerprint);
    out.attribute("high_noise_loras", r.high_noise_loras);
  }
  out.attribute("loras", r.loras);
  out.attribute("world_size", r.world_size);
  out.attribute("sp_size", r.sp_size);
  out.attribute("load_seconds", r.load_seconds);
  out.attribute("sample_seconds", r.sample_seconds);
  out.attribute("wanbatch_version", r.wanbatch_version);
  out.commit();
}

LatentsFile read_latents_file(const std::string& path) {
  const Hdf5Reader in = Hdf5Reader::open(path);
  LatentsFile f;
  f.latents = in.read("latents");
  WB_CHECK(f.latents.ndim() == 4 && f.latents.dtype() == core::DType::F32, "'latents' in ", path,
           " must be f32 [C, T, H, W], got ", f.latents.describe());
  LatentsRecord& r = f.record;
  r.id = in.attribute_string("id");
  r.prompt = in.attribute_string("prompt");
  r.negative_prompt = in.attribute_string("negative_prompt");
  r.seed = in.attribute_unsigned("seed");
  r.noise = in.attribute_string("noise").value_or("");
  r.width = in.attribute_integer("width");
  r.height = in.attribute_integer("height");
  r.frames = in.attribute_integer("frames");
  r.fps = in.attribute_integer("fps");
  r.image = in.attribute_string("image");
  r.max_area = in.attribute_integer("max_area");
  r.solver = in.attribute_string("solver").value_or("");
  r.steps = in.attribute_integer("steps").value_or(0);
  r.shift = in.attribute_number("shift").value_or(0);
  r.guide_scale = in.attribute_number("guide_scale").value_or(0);
  r.guide_scale_high = in.attribute_number("guide_scale_high");
  r.boundary = in.attribute_number("boundary");
  if (in.has("timesteps")) r.timesteps = in.read("timesteps").to_floats();
  r.model_variant = in.attribute_string("model_variant").value_or("");
  r.weights = in.attribute_string("weights").value_or("");
  r.weights_fingerprint = in.attribute_string("weights_fingerprint").value_or("");
  r.high_noise_weights = in.attribute_string("high_noise_weights").value_or("");
  r.high_noise_fingerprint = in.attribute_string("high_noise_fingerprint").value_or("");
  r.loras = in.attribute_string("loras").value_or("");
  r.high_noise_loras = in.attribute_string("high_noise_loras").value_or("");
  r.world_size = in.attribute_integer("world_size").value_or(1);
  r.sp_size = in.attribute_integer("sp_size").value_or(1);
  r.load_seconds = in.attribute_number("load_seconds").value_or(0);
  r.sample_seconds = in.attribute_number("sample_seconds").value_or(0);
  r.wanbatch_version = in.attribute_string("wanbatch_version").value_or("");
  return f;
}

}  // namespace wanbatch::io
