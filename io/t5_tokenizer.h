// The umt5-xxl tokenizer as Wan uses it (wan-spec "Text encoder", official
// `wan/modules/tokenizers.py`, HuggingfaceTokenizer with clean='whitespace'): the prompt is
// cleaned, encoded by the SentencePiece model (`spiece.model` of google/umt5-xxl), `</s>` appended,
// truncated and padded to text_len the way the HF tokenizer does with
// padding='max_length', truncation=True, add_special_tokens=True.
//
// Cleaning (wan_clean_text) reproduces basic_clean + whitespace_clean except ftfy.fix_text, which
// is not reproduced: of it only `uncurl_quotes` is done (‘ ’ ‚ ‛ ʼ → ', “ ” „ ‟ → "), the one fix
// that changes ordinary, correctly encoded prompts and that SentencePiece's own NFKC
// normalisation does not already cover. Mojibake repair, ligature and width fixes beyond NFKC,
// control-character removal and NFC are not done: prompts that need them tokenize differently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wanbatch::io {

// Python's html.unescape: every HTML5 named reference (the WHATWG table, io/html5_entities.inc,
// generated from Python's html.entities.html5), with and without the semicolon where HTML5 allows
// it and as a prefix ("&amplifier" → "&lifier"); every numeric reference &#NN; &#xHH; (semicolon
// optional) with Python's replacements (0, surrogates and beyond U+10FFFF → U+FFFD, 0x80–0x9F →
// their cp1252 characters, non-characters and control codes → removed).
std::string html_unescape(std::string_view text);

// Wan's whitespace cleaning without ftfy (see above): uncurl quotes, html_unescape twice, strip,
// collapse every run of Unicode whitespace to one space, strip. Input and output are UTF-8
// (invalid bytes are kept as they are).
std::string wan_clean_text(std::string_view text);

struct T5Tokens {
  std::vector<int64_t> ids;  // [text_len]: the tokens, </s>, then pad ids
  int64_t length = 0;        // real tokens including </s> (the attention mask's count)
  std::string cleaned;       // the text that was encoded
};

class T5Tokenizer {
 public:
  // Loads a SentencePiece model; throws naming the path. The model must define an eos id (`</s>`,
  // id 1 in umt5) and a pad id (0 in umt5).
  explicit T5Tokenizer(const std::string& model_path);
  ~T5Tokenizer();
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;

  const std::string& path() const { return path_; }
  int64_t vocab_size() const;
  int64_t eos_id() const;
  int64_t pad_id() const;

  // The pieces' ids of already-cleaned text, without </s>.
  std::vector<int64_t> encode_ids(const std::string& cleaned) const;
  // Wan's tokenization: clean, encode, keep at most text_len − 1 pieces, append </s>, pad to
  // text_len (HF truncates before adding the special token, so </s> is always the last real id).
  T5Tokens tokenize(std::string_view text, int64_t text_len) const;

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanbatch::io
