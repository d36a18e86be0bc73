// The CLIP vision tower against the independent NumPy reference
// (tests/reference/clip_reference.py): the tower alone, the whole encode (normalisation, and the
// bicubic resize to 224 from smaller and larger images), the three weight layouts (open-clip
// safetensors and .pth, HF / ComfyUI names with and without prefixes), the tiny test writer, and
// the errors for malformed files.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "error_of.h"
#include "fixture_path.h"
#include "io/image_resize.h"
#include "io/safetensors.h"
#include "model/wan/clip_loader.h"
#include "model/wan/clip_vision.h"
#include "model/wan/config.h"
#include "model/wan/test_clip.h"
#include "reference_match.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

using core::Tensor;
using model::wan::ClipVision;
using testing::error_of;
using testing::fixture_path;
using testing::matches_reference;

// fp32 against float64 through 2 blocks of width 48 over 257 tokens (features of RMS ~1): the tower
// alone is within 9e-7 of |x| + rms; after the resize, whose fp32 source positions (as torch's)
// move the pixels by up to 1.2e-5, within 8.5e-6. 2e-5 leaves room for other summation orders.
constexpr double kRel = 2e-5;

std::shared_ptr<io::SafetensorsFile> reference_io() {
  return io::SafetensorsFile::open(fixture_path("clip.io.safetensors"));
}

ClipVision load_reference(const std::string& file, const core::Context& ctx) {
  return model::wan::load_clip_vision(fixture_path(file), ctx);
}

TEST(ClipVisionReference, ConfigurationFromShapesAndMetadata) {
  const auto io = reference_io();
  const auto& meta = io->metadata();
  const ClipVision clip = load_reference("clip.weights.safetensors", core::Context::cpu());
  const auto& c = clip.config();
  EXPECT_EQ(c.dim, std::stoll(meta.at("dim")));
  EXPECT_EQ(c.heads, std::stoll(meta.at("heads")));
  EXPECT_EQ(c.layers, std::stoll(meta.at("layers")));
  EXPECT_EQ(c.out_layers, std::stoll(meta.at("out_layers")));
  EXPECT_EQ(c.mlp, std::stoll(meta.at("mlp")));
  EXPECT_EQ(c.image_size, std::stoll(meta.at("image_size")));
  EXPECT_EQ(c.patch, std::stoll(meta.at("patch")));
  EXPECT_EQ(c.tokens(), 257);
}

TEST(ClipVisionReference, TowerMatchesOnNormalisedPixels) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = load_reference("clip.weights.safetensors", ctx);
  const Tensor features = clip.forward(ctx, io->tensor("pixels").clone());
  EXPECT_EQ(features.shape(), core::Shape({257, 48}));
  EXPECT_TRUE(
      matches_reference(features.to_floats(), io->tensor("features_pixels").to_floats(), kRel));
}

TEST(ClipVisionReference, EncodeNormalisesA224Image) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = load_reference("clip.weights.safetensors", ctx);
  EXPECT_TRUE(matches_reference(clip.encode(ctx, io->tensor("image_224")).to_floats(),
                                io->tensor("features_224").to_floats(), kRel));
}

// ViT-H/14's head width, 80, through the CPU attention (2 heads of 80 in a 160-wide tower).
TEST(ClipVisionReference, HeadWidth80Matches) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = load_reference("clip_hd80.weights.safetensors", ctx);
  EXPECT_EQ(clip.config().head_dim(), 80);
  EXPECT_TRUE(matches_reference(clip.encode(ctx, io->tensor("image_224")).to_floats(),
                                io->tensor("features_hd80_224").to_floats(), kRel));
}

// The bicubic resize alone, then the whole chain. The resize follows torch in computing source
// positions and tap weights in fp32 (the float64 reference does not): emulating that in NumPy
// gives exactly the observed worst errors, 6.6e-6 (up) and 1.2e-5 (down) of |x| + rms; 3e-5.
TEST(ClipVisionReference, EncodeResizesOtherSizes) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = load_reference("clip.weights.safetensors", ctx);
  for (const char* name : {"up", "down"}) {
    const Tensor image = io->tensor(std::string("image_") + name);
    EXPECT_TRUE(matches_reference(io::resize_bicubic(image, 224, 224).to_floats(),
                                  io->tensor(std::string("resized_") + name).to_floats(), 3e-5))
        << name;
    EXPECT_TRUE(matches_reference(clip.encode(ctx, image).to_floats(),
                                  io->tensor(std::string("features_") + name).to_floats(), kRel))
        << name;
  }
}

// bf16 GEMMs (the CUDA path's precision) stay near the fp32 result: bf16's 8-bit mantissa over two
// blocks gives ~1% errors.
TEST(ClipVisionReference, Bf16GemmsStayClose) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = model::wan::load_clip_vision(fixture_path("clip.weights.safetensors"), ctx,
                                                 core::DType::BF16);
  EXPECT_TRUE(matches_reference(clip.encode(ctx, io->tensor("image_224")).to_floats(),
                                io->tensor("features_224").to_floats(), 3e-2));
}

// The official .pth (with its text-tower tensors) and the HF layout read as the same tensors.
TEST(ClipVisionLoader, PthAndHfLayoutsGiveTheOpenClipTensors) {
  const auto open_clip =
      model::wan::read_clip_vision_weights(fixture_path("clip.weights.safetensors"));
  const auto pth = model::wan::read_clip_vision_weights(fixture_path("clip.pth"));
  const auto hf = model::wan::read_clip_vision_weights(fixture_path("clip_hf.weights.safetensors"));
  EXPECT_FALSE(open_clip.count("textual.token_embedding.weight"));
  EXPECT_FALSE(open_clip.count("log_scale"));
  ASSERT_EQ(pth.size(), open_clip.size());
  ASSERT_EQ(hf.size() + 1, open_clip.size());  // HF's visual_projection is dropped
  for (const auto& [name, tensor] : open_clip) {
    ASSERT_TRUE(pth.count(name)) << name;
    EXPECT_EQ(pth.at(name).shape(), tensor.shape()) << name;
    EXPECT_EQ(pth.at(name).to_floats(), tensor.to_floats()) << name;
    if (name == "visual.head") continue;
    ASSERT_TRUE(hf.count(name)) << name;
    EXPECT_EQ(hf.at(name).shape(), tensor.shape()) << name;
    EXPECT_EQ(hf.at(name).to_floats(), tensor.to_floats()) << name;
  }
}

TEST(ClipVisionLoader, HfFileMatchesReference) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = load_reference("clip_hf.weights.safetensors", ctx);
  EXPECT_EQ(clip.config().out_layers, 2);
  EXPECT_TRUE(matches_reference(clip.encode(ctx, io->tensor("image_224")).to_floats(),
                                io->tensor("features_224").to_floats(), kRel));
}

// A .pth has no metadata: the head count of a non-ViT-H width must be given.
TEST(ClipVisionLoader, PthMatchesReferenceWithHeadsGiven) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  const std::string path = fixture_path("clip.pth");
  const std::string error = error_of([&] { model::wan::load_clip_vision(path, ctx); });
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("head count of a 48-wide tower"), std::string::npos) << error;
  const auto weights = model::wan::read_clip_vision_weights(path);
  std::map<std::string, core::Shape> shapes;
  for (const auto& [name, tensor] : weights) shapes[name] = tensor.shape();
  ClipVision clip(model::wan::detect_clip_vision_config(shapes, 4), weights, ctx);
  EXPECT_TRUE(matches_reference(clip.encode(ctx, io->tensor("image_224")).to_floats(),
                                io->tensor("features_224").to_floats(), kRel));
}

TEST(ClipVisionLoader, RealSizesNeedNoHeadCount) {
  const auto c = model::wan::clip_vit_h14();
  auto shapes = model::wan::clip_vision_weight_shapes(c);
  shapes["visual.post_norm.weight"] = {c.dim};
  shapes["visual.post_norm.bias"] = {c.dim};
  shapes["visual.head"] = {c.dim, 1024};
  const auto detected = model::wan::detect_clip_vision_config(shapes);
  EXPECT_EQ(detected.heads, 16);
  EXPECT_EQ(detected.head_dim(), 80);
  EXPECT_EQ(detected.layers, 32);
  EXPECT_EQ(detected.out_layers, 31);
  EXPECT_EQ(detected.mlp, 5120);
  EXPECT_EQ(detected.image_size, 224);
  EXPECT_EQ(detected.tokens(), 257);
}

// The tiny tower's features fit the tiny-i2v-clip DiT's image branch.
TEST(ClipVisionLoader, TinyConfigFitsTheTinyI2vDit) {
  const auto c = model::wan::tiny_clip_config();
  EXPECT_EQ(c.dim, model::wan::preset("tiny-i2v-clip").image_dim);
  EXPECT_EQ(c.tokens(), 257);
}

class ClipVisionFiles : public testing::TempDirTest {
 protected:
  using Named = std::vector<std::pair<std::string, Tensor>>;

  static Named read_all(const std::string& path) {
    const auto file = io::SafetensorsFile::open(path);
    Named tensors;
    for (const std::string& name : file->names()) tensors.emplace_back(name, file->tensor(name));
    return tensors;
  }
  std::string write(const std::string& name, const Named& tensors,
                    const std::map<std::string, std::string>& metadata = {{"heads", "4"}}) {
    const std::string path = (dir_ / name).string();
    io::write_safetensors(path, tensors, metadata);
    return path;
  }
  std::string load_error(const std::string& path) {
    return error_of([&] { model::wan::load_clip_vision(path, core::Context::cpu()); });
  }
};

TEST_F(ClipVisionFiles, WrittenTestWeightsLoadWithTheirConfig) {
  const std::string path = (dir_ / "tiny.safetensors").string();
  model::wan::write_test_clip(path, model::wan::tiny_clip_config(), 7);
  const core::Context ctx = core::Context::cpu();
  ClipVision clip = model::wan::load_clip_vision(path, ctx);
  const auto& c = clip.config();
  const auto tiny = model::wan::tiny_clip_config();
  EXPECT_EQ(c.dim, tiny.dim);
  EXPECT_EQ(c.heads, tiny.heads);
  EXPECT_EQ(c.layers, tiny.layers);
  EXPECT_EQ(c.out_layers, tiny.out_layers);
  EXPECT_EQ(c.out_dim, tiny.out_dim);
  const Tensor image = reference_io()->tensor("image_224");
  const std::vector<float> features = clip.encode(ctx, image).to_floats();
  ASSERT_EQ(features.size(), 257u * 48u);
  double sum_sq = 0.0;
  for (float f : features) {
    ASSERT_TRUE(std::isfinite(f));
    sum_sq += static_cast<double>(f) * f;
  }
  EXPECT_GT(sum_sq / static_cast<double>(features.size()), 0.1);  // O(1), not vanishing
}

TEST_F(ClipVisionFiles, HfNamesWithOrWithoutAPrefix) {
  const auto io = reference_io();
  const core::Context ctx = core::Context::cpu();
  const std::vector<float> want = io->tensor("features_224").to_floats();
  Named prefixed, bare;
  for (auto& [name, tensor] : read_all(fixture_path("clip_hf.weights.safetensors"))) {
    const std::string stripped = name.rfind("vision_model.", 0) == 0 ? name.substr(13) : name;
    prefixed.emplace_back("clip_vision." + name, tensor);
    bare.emplace_back(stripped, tensor);
  }
  for (const std::string& path :
       {write("prefixed.safetensors", prefixed), write("bare.safetensors", bare)}) {
    ClipVision clip = model::wan::load_clip_vision(path, ctx);
    EXPECT_TRUE(
        matches_reference(clip.encode(ctx, io->tensor("image_224")).to_floats(), want, kRel))
        << path;
  }
}

TEST_F(ClipVisionFiles, MissingTensorIsNamed) {
  Named tensors;
  for (auto& t : read_all(fixture_path("clip.weights.safetensors"))) {
    if (t.first != "visual.transformer.1.mlp.0.bias") tensors.push_back(t);
  }
  const std::string path = write("missing.safetensors", tensors);
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("missing (1): visual.transformer.1.mlp.0.bias"), std::string::npos) << error;
}

TEST_F(ClipVisionFiles, WrongShapeIsNamed) {
  Named tensors;
  for (auto& [name, tensor] : read_all(fixture_path("clip.weights.safetensors"))) {
    tensors.emplace_back(name, name == "visual.pre_norm.weight" ? tensor.slice(0, 47) : tensor);
  }
  const std::string path = write("shape.safetensors", tensors);
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("misshapen (1): visual.pre_norm.weight [47] (expected [48])"),
            std::string::npos)
      << error;
}

TEST_F(ClipVisionFiles, UnknownTensorsAreNamed) {
  Named open_clip = read_all(fixture_path("clip.weights.safetensors"));
  open_clip.emplace_back("visual.transformer.0.attn.extra", Tensor::zeros({2}, core::DType::F32));
  std::string path = write("unknown.safetensors", open_clip);
  std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("unexpected (1): visual.transformer.0.attn.extra"), std::string::npos)
      << error;

  Named stray = read_all(fixture_path("clip.weights.safetensors"));
  stray.emplace_back("model.diffusion_model.x", Tensor::zeros({2}, core::DType::F32));
  path = write("stray.safetensors", stray);
  error = load_error(path);
  EXPECT_NE(error.find("unexpected tensor 'model.diffusion_model.x'"), std::string::npos) << error;

  Named hf = read_all(fixture_path("clip_hf.weights.safetensors"));
  hf.emplace_back("vision_model.encoder.layers.0.self_attn.rotary.weight",
                  Tensor::zeros({2}, core::DType::F32));
  path = write("hf_unknown.safetensors", hf);
  error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("unexpected tensor 'encoder.layers.0.self_attn.rotary.weight'"),
            std::string::npos)
      << error;
}

TEST_F(ClipVisionFiles, HfMissingProjectionIsNamed) {
  Named tensors;
  for (auto& t : read_all(fixture_path("clip_hf.weights.safetensors"))) {
    if (t.first != "vision_model.encoder.layers.1.self_attn.k_proj.weight") tensors.push_back(t);
  }
  const std::string path = write("hf_missing.safetensors", tensors);
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("visual.transformer.1.attn.to_qkv.weight: the HF k_proj"), std::string::npos)
      << error;
}

TEST_F(ClipVisionFiles, NotAClipFile) {
  const std::string path =
      write("dit.safetensors", {{"blocks.0.ffn.0.weight", Tensor::zeros({2}, core::DType::F32)}});
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("unexpected tensor 'blocks.0.ffn.0.weight'"), std::string::npos) << error;
}

}  // namespace
}  // namespace wanbatch
