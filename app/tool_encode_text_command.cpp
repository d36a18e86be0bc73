// wanbatch tool encode-text: a prompt through Wan's tokenizer and umt5 text encoder to an HDF5
// context (DESIGN.md "Command line"), for checking the encoder against the official
// implementation and for feeding `tool dit` / `tool sample`.
#include <chrono>
#include <optional>

#include "app/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"
#include "io/t5_tokenizer.h"
#include "model/wan/defaults.h"
#include "model/wan/t5_loader.h"
#include "model/wan/text_embedding_cache.h"
#include "version.h"

namespace wanbatch::app {

using core::Tensor;

int tool_encode_text_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = call.command;
  spec.usage =
      "wanbatch tool encode-text --t5 W --tokenizer spiece.model [--text-len N] --prompt TEXT "
      "--output OUT.h5";
  spec.summary =
      "Encodes a prompt with the umt5 text encoder as Wan does (cleaning, </s>, truncation to "
      "text_len). OUT.h5 gets ids int64 [n] (the real tokens, </s> included) and context [n,dim] "
      "f32, cut to the real token count.";
  // clang-format off
  spec.options.add_options()
      ("t5", po::value<std::string>()->required(),
       "text encoder weights: models_t5_umt5-xxl-enc-bf16.pth, or safetensors (official or HF "
       "names)")
      ("tokenizer", po::value<std::string>()->required(), "SentencePiece model (spiece.model)")
      ("text-len", po::value<int64_t>()->default_value(512),
       "tokens the prompt is cut to (</s> included)")
      ("prompt", po::value<std::string>()->required(), "the text to encode")
      ("negative-prompt", po::value<std::string>(),
       "also encode this negative prompt into 'context_null' (the file is then a tool sample "
       "input)")
      ("default-negative-prompt", po::bool_switch(),
       "encode the official default negative prompt into 'context_null'")
      ("embedding-cache", po::value<std::string>(),
       "folder of cached encodings (one HDF5 file per text, keyed by a hash of tokenizer, weights, "
       "text length and text): texts found there are not encoded again")
      ("output", po::value<std::string>()->required(), "output HDF5 file (written atomically)");
  // clang-format on
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  const std::string weights = (*vm)["t5"].as<std::string>();
  const std::string tokenizer_path = (*vm)["tokenizer"].as<std::string>();
  const int64_t text_len = (*vm)["text-len"].as<int64_t>();
  const std::string prompt = (*vm)["prompt"].as<std::string>();
  const std::string output_path = (*vm)["output"].as<std::string>();
  WB_CHECK(text_len >= 1, "--text-len must be at least 1, got ", text_len);

  // The tokenizer first: a bad model file fails before the (long) weight load.
  const io::T5Tokenizer tokenizer(tokenizer_path);
  const io::T5Tokens tokens = tokenizer.tokenize(prompt, text_len);

  std::optional<std::string> negative;
  if (vm->count("negative-prompt")) negative = (*vm)["negative-prompt"].as<std::string>();
  if ((*vm)["default-negative-prompt"].as<bool>()) {
    WB_CHECK(!negative, "give --negative-prompt or --default-negative-prompt, not both");
    negative = model::wan::kDefaultNegativePrompt;
  }

  // The encoder loads only when a text is not in the cache.
  const core::Context ctx = core::Context::cpu();
  std::optional<model::wan::T5Encoder> encoder;
  double load_seconds = 0, forward_seconds = 0;
  model::wan::TextEmbeddingCache cache(
      model::wan::TextEmbeddingCache::model_key(
          tokenizer_path, model::wan::t5_weights_fingerprint(weights), text_len),
      vm->count("embedding-cache") ? (*vm)["embedding-cache"].as<std::string>() : "");
  auto encode = [&](const std::string& text) {
    return cache.get(text, [&] {
      if (!encoder) {
        const auto start = std::chrono::steady_clock::now();
        encoder.emplace(model::wan::load_t5_encoder(weights, ctx));
        WB_CHECK(tokenizer.vocab_size() <= encoder->config().vocab, tokenizer_path, ": ",
                 tokenizer.vocab_size(), " pieces, more than the ", encoder->config().vocab,
                 " embeddings of ", weights);
        load_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
      const auto start = std::chrono::steady_clock::now();
      const io::T5Tokens t = tokenizer.tokenize(text, text_len);
      const std::vector<int64_t> real_ids(t.ids.begin(), t.ids.begin() + t.length);
      model::wan::TextEmbedding e;
      e.ids = Tensor::from_vector(real_ids, {t.length});
      // The real tokens only: the padding is masked as keys, so these are the padded result's rows.
      e.context = encoder->encode(ctx, e.ids, t.length);
      forward_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return e;
    });
  };
  const model::wan::TextEmbedding embedding = encode(prompt);
  std::optional<model::wan::TextEmbedding> negative_embedding;
  if (negative) negative_embedding = encode(*negative);
  const Tensor& context = embedding.context;

  io::Hdf5Writer out(output_path);
  out.write("ids", embedding.ids);
  out.write("context", context);
  if (negative_embedding) {
    out.write("ids_null", negative_embedding->ids);
    out.write("context_null", negative_embedding->context);
    out.attribute("negative_prompt", *negative);
  }
  out.attribute("prompt", prompt);
  out.attribute("cleaned_prompt", tokens.cleaned);
  out.attribute("text_len", text_len);
  out.attribute("length", tokens.length);
  out.attribute("weights", weights);
  out.attribute("tokenizer", tokenizer_path);
  out.attribute("load_seconds", load_seconds);
  out.attribute("forward_seconds", forward_seconds);
  out.attribute("cache_hits", cache.hits());
  out.attribute("wanbatch_version", std::string(WANBATCH_VERSION));
  out.commit();
  WB_LOG(info) << "context " << core::shape_str(context.shape()) << " (" << tokens.length
               << " tokens) written to " << output_path << " (load " << load_seconds
               << " s, forward " << forward_seconds << " s, " << cache.hits() << " from the cache)";
  return 0;
}

}  // namespace wanbatch::app
