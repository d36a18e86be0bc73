// The umt5 text encoder on small random weights: the relative-position buckets against values
// worked out by hand from T5's formula, the forward against a plain double-precision loop
// implementation of the official T5Encoder written here, padding invariance, and the loader (HF
// names, configuration detection, errors).
#include "model/wan/t5_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/wan/t5_loader.h"
#include "reference_match.h"
#include "temp_dir_test.h"

namespace wanbatch::model::wan {
namespace {

using core::DType;
using core::Tensor;

TEST(T5RelativePositionBucket, MatchesHandComputedValues) {
  // 32 buckets, max distance 128 (umt5): 16 per direction, distances below 8 exact, then
  // 8 + floor(log(d / 8) / log(16) · 8), at most 15; keys after the query add 16.
  const std::vector<std::pair<int64_t, int64_t>> cases = {
      {0, 0},    {-1, 1},    {1, 17},    {-7, 7},     {7, 23},    {-8, 8},
      {8, 24},   {-12, 9},   {-16, 10},  {16, 26},    {-31, 11},  {-32, 12},
      {-64, 14}, {-127, 15}, {-128, 15}, {-1000, 15}, {1000, 31}, {90, 30}};
  for (const auto& [rel, bucket] : cases) {
    EXPECT_EQ(t5_relative_position_bucket(rel, 32, 128), bucket) << "rel_pos " << rel;
  }
}

// Small random weights in the official layout.
T5Encoder::Weights random_weights(const T5Config& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  T5Encoder::Weights w;
  for (const auto& [name, shape] : t5_weight_shapes(c)) {
    std::vector<float> values(static_cast<size_t>(core::shape_numel(shape)));
    const bool norm = name.find("norm") != std::string::npos;
    const float scale = name == "token_embedding.weight" ? 1.0f : norm ? 0.2f : 0.4f;
    for (float& v : values) v = (norm ? 1.0f : 0.0f) + scale * normal(rng);
    w[name] = Tensor::from_vector(values, shape);
  }
  return w;
}

T5Config small_config() {
  T5Config c;
  c.vocab = 20;
  c.dim = 8;
  c.dim_attn = 12;
  c.ffn_dim = 10;
  c.num_heads = 3;
  c.num_layers = 2;
  c.num_buckets = 8;
  return c;
}

// The official T5Encoder.forward written as plain loops in double precision.
std::vector<float> naive_encoder(const T5Config& c, const T5Encoder::Weights& w,
                                 const std::vector<int64_t>& ids, int64_t length) {
  const int64_t L = static_cast<int64_t>(ids.size()), D = c.dim, A = c.dim_attn, H = c.num_heads,
                hd = A / H, F = c.ffn_dim;
  auto W = [&](const std::string& n) { return w.at(n).to_floats(); };
  using Mat = std::vector<double>;
  auto rms = [&](const Mat& x, const std::vector<float>& g) {
    Mat out(x.size());
    for (int64_t i = 0; i < L; ++i) {
      double ms = 0;
      for (int64_t d = 0; d < D; ++d) ms += x[i * D + d] * x[i * D + d];
      const double r = 1.0 / std::sqrt(ms / D + 1e-6);
      for (int64_t d = 0; d < D; ++d) out[i * D + d] = x[i * D + d] * r * g[d];
    }
    return out;
  };
  auto lin = [&](const Mat& x, int64_t in, const std::vector<float>& m, int64_t out_dim) {
    Mat out(static_cast<size_t>(L * out_dim), 0.0);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t o = 0; o < out_dim; ++o) {
        double s = 0;
        for (int64_t k = 0; k < in; ++k) s += x[i * in + k] * m[o * in + k];
        out[i * out_dim + o] = s;
      }
    return out;
  };
  const auto emb = W("token_embedding.weight");
  Mat x(static_cast<size_t>(L * D));
  for (int64_t i = 0; i < L; ++i)
    for (int64_t d = 0; d < D; ++d) x[i * D + d] = emb[ids[i] * D + d];
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const std::string p = "blocks." + std::to_string(layer) + ".";
    const Mat n1 = rms(x, W(p + "norm1.weight"));
    const Mat q = lin(n1, D, W(p + "attn.q.weight"), A), k = lin(n1, D, W(p + "attn.k.weight"), A),
              v = lin(n1, D, W(p + "attn.v.weight"), A);
    const auto table = W(p + "pos_embedding.embedding.weight");
    Mat att(static_cast<size_t>(L * A), 0.0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> s(static_cast<size_t>(length));
        double mx = -1e300;
        for (int64_t j = 0; j < length; ++j) {  // padding keys masked
          double dot = 0;
          for (int64_t e = 0; e < hd; ++e) dot += q[i * A + h * hd + e] * k[j * A + h * hd + e];
          s[j] = dot + table[t5_relative_position_bucket(j - i, c.num_buckets, 128) * H + h];
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j < length; ++j)
          for (int64_t e = 0; e < hd; ++e)
            att[i * A + h * hd + e] += s[j] / sum * v[j * A + h * hd + e];
      }
    const Mat o = lin(att, A, W(p + "attn.o.weight"), D);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    const Mat n2 = rms(x, W(p + "norm2.weight"));
    Mat g = lin(n2, D, W(p + "ffn.gate.0.weight"), F);
    const Mat f1 = lin(n2, D, W(p + "ffn.fc1.weight"), F);
    for (size_t i = 0; i < g.size(); ++i) {
      const double a = g[i];
      g[i] = 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a))) * f1[i];
    }
    const Mat f2 = lin(g, F, W(p + "ffn.fc2.weight"), D);
    for (size_t i = 0; i < x.size(); ++i) x[i] += f2[i];
  }
  const Mat out = rms(x, W("norm.weight"));
  return std::vector<float>(out.begin(), out.begin() + length * D);
}

TEST(T5Encoder, MatchesPlainImplementation) {
  const T5Config c = small_config();
  const auto weights = random_weights(c, 1);
  const core::Context ctx = core::Context::cpu();
  T5Encoder encoder(c, weights, ctx);
  const std::vector<int64_t> ids = {5, 3, 17, 9, 1, 0, 0, 0};
  const Tensor padded = Tensor::from_vector(ids, {8});
  const Tensor context = encoder.encode(ctx, padded, 5);
  ASSERT_EQ(context.shape(), (core::Shape{5, 8}));
  // fp32 against double on a handful of sums of ≤ 12 terms: 1e-5 of the typical magnitude.
  EXPECT_TRUE(
      testing::matches_reference(context.to_floats(), naive_encoder(c, weights, ids, 5), 1e-5));
}

TEST(T5Encoder, LongSequenceUsesLogBuckets) {
  T5Config c = small_config();
  c.num_buckets = 32;
  const auto weights = random_weights(c, 2);
  const core::Context ctx = core::Context::cpu();
  T5Encoder encoder(c, weights, ctx);
  std::vector<int64_t> ids(40);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(3 + i % 17);
  const Tensor context = encoder.encode(ctx, Tensor::from_vector(ids, {40}), 40);
  EXPECT_TRUE(
      testing::matches_reference(context.to_floats(), naive_encoder(c, weights, ids, 40), 1e-5));
}

TEST(T5Encoder, PaddingDoesNotChangeRealRows) {
  const T5Config c = small_config();
  const core::Context ctx = core::Context::cpu();
  T5Encoder encoder(c, random_weights(c, 3), ctx);
  const Tensor unpadded = encoder.encode(ctx, Tensor::from_vector<int64_t>({4, 7, 1}, {3}), 3);
  const Tensor padded =
      encoder.encode(ctx, Tensor::from_vector<int64_t>({4, 7, 1, 0, 0, 0, 0}, {7}), 3);
  // Same sums in the same order except the masked keys: equal to rounding.
  EXPECT_TRUE(testing::matches_reference(padded.to_floats(), unpadded.to_floats(), 1e-6));
  EXPECT_THROW(encoder.encode(ctx, Tensor::from_vector<int64_t>({4, 25}, {2}), 2), Error);
  EXPECT_THROW(encoder.encode(ctx, Tensor::from_vector<int64_t>({4}, {1}), 2), Error);
}

TEST(T5Config, DetectedFromShapes) {
  const T5Config c = small_config();
  std::map<std::string, core::Shape> shapes = t5_weight_shapes(c);
  const T5Config d = detect_t5_config(shapes);
  EXPECT_EQ(d.vocab, 20);
  EXPECT_EQ(d.dim, 8);
  EXPECT_EQ(d.dim_attn, 12);
  EXPECT_EQ(d.ffn_dim, 10);
  EXPECT_EQ(d.num_heads, 3);
  EXPECT_EQ(d.num_layers, 2);
  EXPECT_EQ(d.num_buckets, 8);
}

TEST(T5Config, ListsMissingUnexpectedAndMisshapenTensors) {
  std::map<std::string, core::Shape> shapes = t5_weight_shapes(small_config());
  shapes.erase("blocks.1.attn.k.weight");
  shapes["blocks.1.ffn.fc2.weight"] = {8, 11};
  shapes["decoder.extra.weight"] = {3};
  try {
    detect_t5_config(shapes);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing (1): blocks.1.attn.k.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected (1): decoder.extra.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("blocks.1.ffn.fc2.weight [8, 11] (expected [8, 10])"), std::string::npos) << m;
  }
  EXPECT_THROW(detect_t5_config({}), Error);
}

TEST(T5Loader, MapsHuggingFaceNames) {
  EXPECT_EQ(official_t5_name("encoder.block.3.layer.0.SelfAttention.q.weight"),
            "blocks.3.attn.q.weight");
  EXPECT_EQ(
      official_t5_name("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
      "blocks.0.pos_embedding.embedding.weight");
  EXPECT_EQ(official_t5_name("encoder.block.2.layer.0.layer_norm.weight"), "blocks.2.norm1.weight");
  EXPECT_EQ(official_t5_name("encoder.block.2.layer.1.layer_norm.weight"), "blocks.2.norm2.weight");
  EXPECT_EQ(official_t5_name("encoder.block.1.layer.1.DenseReluDense.wi_0.weight"),
            "blocks.1.ffn.gate.0.weight");
  EXPECT_EQ(official_t5_name("encoder.block.1.layer.1.DenseReluDense.wi_1.weight"),
            "blocks.1.ffn.fc1.weight");
  EXPECT_EQ(official_t5_name("encoder.block.1.layer.1.DenseReluDense.wo.weight"),
            "blocks.1.ffn.fc2.weight");
  EXPECT_EQ(official_t5_name("encoder.final_layer_norm.weight"), "norm.weight");
  EXPECT_EQ(official_t5_name("shared.weight"), "token_embedding.weight");
  EXPECT_EQ(official_t5_name("encoder.embed_tokens.weight"), "token_embedding.weight");
  EXPECT_EQ(official_t5_name("blocks.0.norm1.weight"), "blocks.0.norm1.weight");
}

class T5LoaderFiles : public wanbatch::testing::TempDirTest {};

std::string hf_name(const std::string& official) {
  if (official == "token_embedding.weight") return "shared.weight";
  if (official == "norm.weight") return "encoder.final_layer_norm.weight";
  const size_t dot = official.find('.', 7);
  const std::string n = official.substr(7, dot - 7), rest = official.substr(dot + 1);
  const std::string b = "encoder.block." + n + ".layer.";
  if (rest == "norm1.weight") return b + "0.layer_norm.weight";
  if (rest == "norm2.weight") return b + "1.layer_norm.weight";
  if (rest == "pos_embedding.embedding.weight")
    return b + "0.SelfAttention.relative_attention_bias.weight";
  if (rest == "ffn.gate.0.weight") return b + "1.DenseReluDense.wi_0.weight";
  if (rest == "ffn.fc1.weight") return b + "1.DenseReluDense.wi_1.weight";
  if (rest == "ffn.fc2.weight") return b + "1.DenseReluDense.wo.weight";
  return b + "0.SelfAttention." + rest.substr(5);  // attn.q.weight → q.weight
}

TEST_F(T5LoaderFiles, OfficialAndHuggingFaceFilesGiveTheSameContext) {
  const T5Config c = small_config();
  const auto weights = random_weights(c, 4);
  std::vector<std::pair<std::string, Tensor>> official, hf;
  for (const auto& [name, t] : weights) {
    official.emplace_back(name, t.to(DType::BF16));
    hf.emplace_back(hf_name(name), t.to(DType::BF16));
  }
  hf.emplace_back("encoder.embed_tokens.weight",
                  weights.at("token_embedding.weight").to(DType::BF16));
  io::write_safetensors((dir_ / "official.safetensors").string(), official);
  io::write_safetensors((dir_ / "hf.safetensors").string(), hf);
  const core::Context ctx = core::Context::cpu();
  T5Encoder a = load_t5_encoder((dir_ / "official.safetensors").string(), ctx);
  T5Encoder b = load_t5_encoder((dir_ / "hf.safetensors").string(), ctx);
  EXPECT_EQ(b.config().num_layers, 2);
  const Tensor ids = Tensor::from_vector<int64_t>({2, 9, 11, 1}, {4});
  EXPECT_EQ(a.encode(ctx, ids, 4).to_floats(), b.encode(ctx, ids, 4).to_floats());
  EXPECT_EQ(t5_weights_fingerprint((dir_ / "official.safetensors").string()).size(), 16u);
}

TEST_F(T5LoaderFiles, RefusesFp8ScaledFiles) {
  const T5Config c = small_config();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : random_weights(c, 5)) tensors.emplace_back(hf_name(name), t);
  tensors.emplace_back("encoder.block.0.layer.0.SelfAttention.q.scale_weight",
                       Tensor::from_vector<float>({1.0f}, {1}));
  const std::string path = (dir_ / "umt5_fp8_scaled.safetensors").string();
  io::write_safetensors(path, tensors);
  try {
    load_t5_encoder(path, core::Context::cpu());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("not supported yet"), std::string::npos) << m;
    EXPECT_NE(m.find("umt5_fp8_scaled.safetensors"), std::string::npos) << m;
  }
}

TEST_F(T5LoaderFiles, ErrorsNameTheFile) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : random_weights(small_config(), 6)) {
    if (name != "norm.weight") tensors.emplace_back(name, t);
  }
  const std::string path = (dir_ / "partial.safetensors").string();
  io::write_safetensors(path, tensors);
  try {
    load_t5_encoder(path, core::Context::cpu());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("partial.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("missing (1): norm.weight"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace wanbatch::model::wan
