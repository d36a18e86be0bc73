// The tokenizer and the umt5 encoder against the independent NumPy reference
// (tests/reference/t5_reference.py): cleaned text and ids exactly, the relative-position buckets
// exactly, and the context from both weight layouts, padded and unpadded.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "fixture_path.h"
#include "io/safetensors.h"
#include "io/t5_tokenizer.h"
#include "model/wan/t5_encoder.h"
#include "model/wan/t5_loader.h"
#include "reference_match.h"

namespace wanbatch {
namespace {

using core::Tensor;
using testing::fixture_path;

nlohmann::json read_cases() {
  std::ifstream in(fixture_path("t5_tokens.json"));
  return nlohmann::json::parse(in);
}

TEST(T5Reference, CleaningAndIdsMatchExactly) {
  const auto json = read_cases();
  const io::T5Tokenizer tokenizer(fixture_path("t5_spiece.model"));
  const int64_t text_len = json["text_len"];
  EXPECT_EQ(tokenizer.eos_id(), json["eos_id"].get<int64_t>());
  EXPECT_EQ(tokenizer.pad_id(), json["pad_id"].get<int64_t>());
  for (const auto& c : json["cases"]) {
    const std::string name = c["name"];
    const io::T5Tokens tokens = tokenizer.tokenize(c["text"].get<std::string>(), text_len);
    EXPECT_EQ(tokens.cleaned, c["cleaned"].get<std::string>()) << name;
    EXPECT_EQ(tokens.ids, c["ids"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(tokens.length, c["length"].get<int64_t>()) << name;
  }
}

TEST(T5Reference, BucketsMatchExactly) {
  const auto io = io::SafetensorsFile::open(fixture_path("t5.io.safetensors"));
  const Tensor buckets = io->tensor("buckets");
  const auto meta = io->metadata();
  const int64_t n = std::stoll(meta.at("num_buckets")), dist = std::stoll(meta.at("max_distance"));
  for (int64_t i = 0; i < buckets.numel(); ++i) {
    EXPECT_EQ(model::wan::t5_relative_position_bucket(i - 511, n, dist), buckets.data<int32_t>()[i])
        << "rel " << i - 511;
  }
}

class T5ReferenceContext : public ::testing::TestWithParam<std::string> {};

TEST_P(T5ReferenceContext, MatchesFloat64Reference) {
  const auto io = io::SafetensorsFile::open(fixture_path("t5.io.safetensors"));
  const auto meta = io->metadata();
  const core::Context ctx = core::Context::cpu();
  model::wan::T5Encoder encoder = model::wan::load_t5_encoder(fixture_path(GetParam()), ctx);
  EXPECT_EQ(encoder.config().dim, std::stoll(meta.at("dim")));
  EXPECT_EQ(encoder.config().num_heads, std::stoll(meta.at("num_heads")));
  EXPECT_EQ(encoder.config().num_layers, std::stoll(meta.at("num_layers")));
  EXPECT_EQ(encoder.config().num_buckets, std::stoll(meta.at("num_buckets")));
  const int cases = std::stoi(meta.at("cases"));
  ASSERT_GT(cases, 0);
  for (int k = 0; k < cases; ++k) {
    const std::string key = std::to_string(k);
    const Tensor ids = io->tensor("ids_" + key);
    const int64_t length = std::stoll(meta.at("length_" + key));
    const std::vector<float> want = io->tensor("context_" + key).to_floats();
    // fp32 against float64, 3 layers of dim 32: 1e-5 of each value (plus the RMS floor).
    EXPECT_TRUE(
        testing::matches_reference(encoder.encode(ctx, ids, length).to_floats(), want, 1e-5))
        << "case " << k << " padded";
    EXPECT_TRUE(testing::matches_reference(
        encoder.encode(ctx, ids.slice(0, length), length).to_floats(), want, 1e-5))
        << "case " << k << " unpadded";
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, T5ReferenceContext,
                         ::testing::Values("t5.weights.safetensors", "t5_hf.weights.safetensors"));

}  // namespace
}  // namespace wanbatch
