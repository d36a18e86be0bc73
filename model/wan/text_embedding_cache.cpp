#include "model/wan/text_embedding_cache.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"

namespace wanbatch::model::wan {
namespace {

// FNV-1a 64 over the pieces, each followed by a zero byte so that ("ab","c") ≠ ("a","bc").
std::string hash_hex(std::initializer_list<std::string> pieces) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const std::string& piece : pieces) {
    for (size_t i = 0; i <= piece.size(); ++i) {
      const auto byte = i < piece.size() ? static_cast<unsigned char>(piece[i]) : 0;
      hash = (hash ^ byte) * 0x100000001b3ull;
    }
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace

std::string TextEmbeddingCache::model_key(const std::string& tokenizer_path,
                                          const std::string& weights_fingerprint,
                                          int64_t text_len) {
  std::ifstream in(tokenizer_path, std::ios::binary);
  WB_CHECK(in, tokenizer_path, ": cannot read the tokenizer file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return hash_hex({hash_hex({bytes}), weights_fingerprint, std::to_string(text_len)});
}

TextEmbeddingCache::TextEmbeddingCache(std::string model_key, std::string dir)
    : model_key_(std::move(model_key)), dir_(std::move(dir)) {}

std::string TextEmbeddingCache::key(const std::string& text) const {
  return hash_hex({model_key_, text});
}

std::string TextEmbeddingCache::file_path(const std::string& text) const {
  return (std::filesystem::path(dir_) / (key(text) + ".h5")).string();
}

std::optional<TextEmbedding> TextEmbeddingCache::find(const std::string& text) {
  if (auto it = memory_.find(text); it != memory_.end()) {
    ++hits_;
    return it->second;
  }
  if (!dir_.empty()) {
    const std::string path = file_path(text);
    if (std::filesystem::exists(path)) {
      try {
        const io::Hdf5Reader in = io::Hdf5Reader::open(path);
        if (in.attribute_string("prompt") == text &&
            in.attribute_string("model_key") == model_key_) {
          TextEmbedding e{in.read("ids"), in.read("context")};
          memory_[text] = e;
          ++hits_;
          return e;
        }
        WB_LOG(warning) << path << ": written for another prompt or model; recomputing";
      } catch (const Error& e) {
        WB_LOG(warning) << "text embedding cache: " << e.what() << "; recomputing";
      }
    }
  }
  ++misses_;
  return std::nullopt;
}

void TextEmbeddingCache::insert(const std::string& text, const TextEmbedding& embedding) {
  TextEmbedding host{embedding.ids.to(core::Device::cpu()),
                     embedding.context.to(core::Device::cpu())};
  memory_[text] = host;
  if (dir_.empty()) return;
  std::filesystem::create_directories(dir_);
  io::Hdf5Writer out(file_path(text));
  out.write("ids", host.ids);
  out.write("context", host.context);
  out.attribute("prompt", text);
  out.attribute("model_key", model_key_);
  out.commit();
}

TextEmbedding TextEmbeddingCache::get(const std::string& text,
                                      const std::function<TextEmbedding()>& compute) {
  if (auto found = find(text)) return *found;
  TextEmbedding e = compute();
  insert(text, e);
  return e;
}

}  // namespace wanbatch::model::wan
