#include "model/wan/test_text_encoder.h"

#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/wan/t5_encoder.h"

namespace wanbatch::model::wan {
namespace {

// What the tokenizer is trained on.
constexpr const char* kTokenizerCorpus =
    "a red fox trotting through fresh snow in a pine forest\n"
    "a lighthouse on a rocky coast during a storm with waves crashing\n"
    "a paper boat drifting down a rain filled street gutter close up\n"
    "a cat sits on a mat while the dog runs in the park\n"
    "waves on the beach at dawn soft morning light cinematic\n"
    "blurry low quality static frame overexposed\n";

}  // namespace

void write_test_t5(const std::string& path, int64_t text_dim, uint64_t seed) {
  T5Config c;
  c.vocab = 128;
  c.dim = text_dim;
  c.dim_attn = text_dim;
  c.ffn_dim = text_dim * 3 / 2;
  c.num_heads = 2;
  c.num_layers = 2;
  c.num_buckets = 32;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& [name, shape] : t5_weight_shapes(c)) {
    std::vector<float> v(static_cast<size_t>(core::shape_numel(shape)));
    for (float& x : v) x = (name.find("norm") != std::string::npos ? 1.0f : 0.0f) + normal(rng);
    tensors.emplace_back(name, core::Tensor::from_vector(v, shape));
  }
  io::write_safetensors(path, tensors);
}

void write_test_tokenizer(const std::string& path) {
  const std::filesystem::path target(path);
  const std::filesystem::path corpus =
      std::filesystem::temp_directory_path() /
      ("wanbatch-corpus-" + std::to_string(std::random_device{}()) + ".txt");
  {
    std::ofstream out(corpus);
    for (int r = 0; r < 20; ++r) out << kTokenizerCorpus;
  }
  // The trainer writes PREFIX.model and PREFIX.vocab.
  std::string prefix = path;
  if (target.extension() == ".model") prefix = (target.parent_path() / target.stem()).string();
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + corpus.string() + " --model_prefix=" + prefix +
      " --vocab_size=64 --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"
      " --minloglevel=2 --hard_vocab_limit=false");
  std::filesystem::remove(corpus);
  WB_CHECK(status.ok(), "test tokenizer ", path, ": ", status.ToString());
  std::filesystem::remove(prefix + ".vocab");
  if (prefix + ".model" != path) std::filesystem::rename(prefix + ".model", path);
}

}  // namespace wanbatch::model::wan
