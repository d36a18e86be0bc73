// `wanbatch tool encode-text` end to end on a tokenizer trained here and small random weights:
// the file it writes (ids, context cut to the real tokens) against the library run in process,
// and its errors.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "io/hdf5_file.h"
#include "io/safetensors.h"
#include "io/t5_tokenizer.h"
#include "model/wan/defaults.h"
#include "model/wan/t5_loader.h"
#include "reference_match.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

using core::Tensor;
using testing::run_wanbatch;

class ToolEncodeText : public wanbatch::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    const auto corpus = dir_ / "corpus.txt";
    std::ofstream out(corpus);
    for (int r = 0; r < 20; ++r) {
      out << "a cat sits on a mat\nthe dog runs in the park\nwaves on the beach at dawn\n";
    }
    out.close();
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + corpus.string() + " --model_prefix=" + (dir_ / "spiece").string() +
        " --vocab_size=40 --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"
        " --minloglevel=2 --hard_vocab_limit=false");
    ASSERT_TRUE(status.ok()) << status.ToString();
    tokenizer_ = (dir_ / "spiece.model").string();

    model::wan::T5Config c;
    c.vocab = 40;
    c.dim = 8;
    c.dim_attn = 8;
    c.ffn_dim = 12;
    c.num_heads = 2;
    c.num_layers = 2;
    c.num_buckets = 32;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.5f);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& [name, shape] : model::wan::t5_weight_shapes(c)) {
      std::vector<float> v(static_cast<size_t>(core::shape_numel(shape)));
      for (float& x : v) x = (name.find("norm") != std::string::npos ? 1.0f : 0.0f) + normal(rng);
      tensors.emplace_back(name, Tensor::from_vector(v, shape));
    }
    weights_ = (dir_ / "t5.safetensors").string();
    io::write_safetensors(weights_, tensors);
  }

  std::string tokenizer_, weights_;
};

TEST_F(ToolEncodeText, WritesIdsAndContextOfTheRealTokens) {
  const std::string out = (dir_ / "out.h5").string();
  const auto r = run_wanbatch("tool encode-text --t5 " + weights_ + " --tokenizer " + tokenizer_ +
                              " --text-len 12 --prompt '  a cat &amp; a dog  ' --output " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  const io::Hdf5Reader in = io::Hdf5Reader::open(out);
  const Tensor ids = in.read("ids");
  const Tensor context = in.read("context");
  const io::T5Tokenizer tokenizer(tokenizer_);
  const io::T5Tokens tokens = tokenizer.tokenize("  a cat &amp; a dog  ", 12);
  ASSERT_EQ(ids.shape(), (core::Shape{tokens.length}));
  EXPECT_EQ(ids.data<int64_t>()[tokens.length - 1], 1);
  for (int64_t i = 0; i < tokens.length; ++i) EXPECT_EQ(ids.data<int64_t>()[i], tokens.ids[i]);
  EXPECT_EQ(context.shape(), (core::Shape{tokens.length, 8}));
  EXPECT_EQ(in.attribute_string("cleaned_prompt"), "a cat & a dog");
  EXPECT_EQ(in.attribute_integer("length"), tokens.length);
  const core::Context ctx = core::Context::cpu();
  model::wan::T5Encoder encoder = model::wan::load_t5_encoder(weights_, ctx);
  const Tensor padded = Tensor::from_vector(tokens.ids, {12});
  // The tool encodes the unpadded ids: the same values up to the GEMMs' summation order.
  EXPECT_TRUE(wanbatch::testing::matches_reference(
      context.to_floats(), encoder.encode(ctx, padded, tokens.length).to_floats(), 1e-5));
}

TEST_F(ToolEncodeText, TruncatesToTextLen) {
  const std::string out = (dir_ / "out.h5").string();
  const auto r = run_wanbatch("tool encode-text --t5 " + weights_ + " --tokenizer " + tokenizer_ +
                              " --text-len 3 --prompt 'the dog runs in the park' --output " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  const io::Hdf5Reader in = io::Hdf5Reader::open(out);
  EXPECT_EQ(in.shape("ids"), (core::Shape{3}));
  EXPECT_EQ(in.read("ids").data<int64_t>()[2], 1);
  EXPECT_EQ(in.shape("context"), (core::Shape{3, 8}));
}

// With a negative prompt the file is a `tool sample` input; the cache serves texts seen before.
TEST_F(ToolEncodeText, NegativePromptAndEmbeddingCache) {
  const std::string cache = (dir_ / "cache").string();
  const std::string command = "tool encode-text --t5 " + weights_ + " --tokenizer " + tokenizer_ +
                              " --text-len 12 --prompt 'a cat sits' --negative-prompt 'the dog'" +
                              " --embedding-cache " + cache + " --output ";
  const std::string first = (dir_ / "first.h5").string(), second = (dir_ / "second.h5").string();
  auto r = run_wanbatch(command + first);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_wanbatch(command + second);
  ASSERT_EQ(r.status, 0) << r.output;
  const io::Hdf5Reader a = io::Hdf5Reader::open(first), b = io::Hdf5Reader::open(second);
  EXPECT_EQ(a.attribute_integer("cache_hits"), 0);
  EXPECT_EQ(b.attribute_integer("cache_hits"), 2);
  EXPECT_EQ(a.attribute_string("negative_prompt"), "the dog");
  for (const char* name : {"context", "context_null", "ids", "ids_null"}) {
    EXPECT_EQ(a.read(name).shape(), b.read(name).shape()) << name;
    EXPECT_EQ(a.read(name).to_floats(), b.read(name).to_floats()) << name;
  }
  EXPECT_NE(a.read("context").to_floats(), a.read("context_null").to_floats());
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(cache))
    files += entry.is_regular_file();
  EXPECT_EQ(files, 2u);
  // The official default negative prompt.
  r = run_wanbatch("tool encode-text --t5 " + weights_ + " --tokenizer " + tokenizer_ +
                   " --prompt 'a cat' --default-negative-prompt --output " + first);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(io::Hdf5Reader::open(first).attribute_string("negative_prompt"),
            std::string(model::wan::kDefaultNegativePrompt));
}

TEST_F(ToolEncodeText, ErrorsNameTheFile) {
  const std::string out = (dir_ / "out.h5").string();
  auto r = run_wanbatch("tool encode-text --t5 " + weights_ + " --tokenizer " +
                        (dir_ / "none.model").string() + " --prompt x --output " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("none.model"), std::string::npos) << r.output;
  r = run_wanbatch("tool encode-text --t5 " + (dir_ / "none.safetensors").string() +
                   " --tokenizer " + tokenizer_ + " --prompt x --output " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("none.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace wanbatch
