// Text-encoder outputs kept for reuse: a run encodes each distinct prompt (and the negative
// prompt, shared by every item) once. In memory for the life of the cache, and optionally on disk
// as DIR/<key>.h5 (`context` [n, dim] f32, `ids` int64 [n], the prompt and model key as
// attributes), written atomically and read back by later runs. The key hashes the model key
// (tokenizer file, weights fingerprint, text_len) and the text; a file whose stored prompt or
// model key differs (a hash collision, a stale file) is ignored and rewritten.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "core/tensor.h"

namespace wanbatch::model::wan {

struct TextEmbedding {
  core::Tensor ids;      // int64 [n]
  core::Tensor context;  // f32 [n, dim], host
};

class TextEmbeddingCache {
 public:
  // What the embeddings depend on besides the text: a hash of the tokenizer file's bytes, the
  // weights fingerprint (t5_weights_fingerprint) and text_len.
  static std::string model_key(const std::string& tokenizer_path,
                               const std::string& weights_fingerprint, int64_t text_len);

  // dir empty: memory only. The folder is created when the first entry is written.
  explicit TextEmbeddingCache(std::string model_key, std::string dir = "");

  // 16 hex digits naming the text's file under dir.
  std::string key(const std::string& text) const;
  std::string file_path(const std::string& text) const;

  // The entry from memory, else from disk (then also kept in memory), else nullopt.
  std::optional<TextEmbedding> find(const std::string& text);
  // Keeps the entry (host copies) and writes its file when there is a folder.
  void insert(const std::string& text, const TextEmbedding& embedding);
  // find, else compute and insert.
  TextEmbedding get(const std::string& text, const std::function<TextEmbedding()>& compute);

  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  std::string model_key_;
  std::string dir_;
  std::map<std::string, TextEmbedding> memory_;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace wanbatch::model::wan
