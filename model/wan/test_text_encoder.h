// A tiny umT5 text encoder with random weights and a tiny SentencePiece tokenizer to go with it,
// for tests and demos (`wanbatch make-test-model --t5 --tokenizer`, and tests that cannot run the
// executable).
#pragma once

#include <cstdint>
#include <string>

namespace wanbatch::model::wan {

// A 2-layer umT5 encoder (vocabulary 128) whose output width is a DiT's `text_dim`, as one
// safetensors file under the official names. The same seed gives the same file everywhere.
void write_test_t5(const std::string& path, int64_t text_dim, uint64_t seed);

// A SentencePiece unigram model of about 64 pieces (pad 0, </s> 1, unk 2, as umT5's), trained on a
// few built-in lines of English (it only has to split text into pieces), written to `path`.
void write_test_tokenizer(const std::string& path);

}  // namespace wanbatch::model::wan
