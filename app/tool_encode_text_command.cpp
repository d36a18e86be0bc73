// wanbatch tool encode-text: a prompt through Wan's tokenizer and umt5 text encoder to an HDF5
// context (DESIGN.md "Command line"), for checking the encoder against the official
// implementation and for feeding `tool dit` / `tool sample`.
#include <chrono>

#include "app/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"
#include "io/t5_tokenizer.h"
#include "model/wan/t5_loader.h"
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
  spec.options.add_options()
      ("t5", po::value<std::string>()->required(),
       "text encoder weights: models_t5_umt5-xxl-enc-bf16.pth, or safetensors (official or HF names)")
      ("tokenizer", po::value<std::string>()->required(), "SentencePiece model (spiece.model)")
      ("text-len", po::value<int64_t>()->default_value(512), "tokens the prompt is cut to (</s> included)")
      ("prompt", po::value<std::string>()->required(), "the text to encode")
      ("output", po::value<std::string>()->required(), "output HDF5 file (written atomically)");
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
  const std::vector<int64_t> real(tokens.ids.begin(), tokens.ids.begin() + tokens.length);
  const Tensor ids = Tensor::from_vector(real, {tokens.length});

  const core::Context ctx = core::Context::cpu();
  const auto load_start = std::chrono::steady_clock::now();
  model::wan::T5Encoder encoder = model::wan::load_t5_encoder(weights, ctx);
  WB_CHECK(tokenizer.vocab_size() <= encoder.config().vocab, tokenizer_path, ": ",
           tokenizer.vocab_size(), " pieces, more than the ", encoder.config().vocab,
           " embeddings of ", weights);
  const auto run_start = std::chrono::steady_clock::now();
  // The real tokens only: the padding is masked as keys, so this is the padded result's rows.
  const Tensor context = encoder.encode(ctx, ids, tokens.length);
  const auto end = std::chrono::steady_clock::now();
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };

  io::Hdf5Writer out(output_path);
  out.write("ids", ids);
  out.write("context", context);
  out.attribute("prompt", prompt);
  out.attribute("cleaned_prompt", tokens.cleaned);
  out.attribute("text_len", text_len);
  out.attribute("length", tokens.length);
  out.attribute("weights", weights);
  out.attribute("tokenizer", tokenizer_path);
  out.attribute("load_seconds", seconds(load_start, run_start));
  out.attribute("forward_seconds", seconds(run_start, end));
  out.attribute("wanbatch_version", std::string(WANBATCH_VERSION));
  out.commit();
  WB_LOG(info) << "context " << core::shape_str(context.shape()) << " (" << tokens.length
               << " tokens) written to " << output_path << " (load "
               << seconds(load_start, run_start) << " s, forward " << seconds(run_start, end)
               << " s)";
  return 0;
}

}  // namespace wanbatch::app
