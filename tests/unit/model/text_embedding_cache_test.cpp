// The text-embedding cache: memory hits, files written and read back by a new cache, keys that
// change with the model key and text, and files of another prompt ignored.
#include "model/wan/text_embedding_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_dir_test.h"

namespace wanbatch::model::wan {
namespace {

using core::Tensor;

TextEmbedding embedding(float base) {
  return {Tensor::from_vector<int64_t>({7, 1}, {2}),
          Tensor::from_vector<float>({base, base + 1, base + 2, base + 3}, {2, 2})};
}

class TextEmbeddingCacheTest : public wanbatch::testing::TempDirTest {};

TEST_F(TextEmbeddingCacheTest, ComputesOncePerTextInMemory) {
  TextEmbeddingCache cache("model");
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return embedding(1.0f);
  };
  cache.get("a cat", compute);
  const TextEmbedding again = cache.get("a cat", compute);
  cache.get("a dog", compute);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(again.context.to_floats(), (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(TextEmbeddingCacheTest, FilesAreReadBackByALaterCache) {
  const std::string dir = (dir_ / "cache").string();
  {
    TextEmbeddingCache cache("model", dir);
    cache.insert("a cat", embedding(5.0f));
    EXPECT_TRUE(std::filesystem::exists(cache.file_path("a cat")));
  }
  TextEmbeddingCache later("model", dir);
  const auto found = later.find("a cat");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->context.shape(), (core::Shape{2, 2}));
  EXPECT_EQ(found->context.to_floats(), (std::vector<float>{5, 6, 7, 8}));
  EXPECT_EQ(found->ids.to_floats(), (std::vector<float>{7, 1}));
  EXPECT_FALSE(later.find("a dog").has_value());
  // Another model never sees these files.
  TextEmbeddingCache other("other model", dir);
  EXPECT_NE(other.key("a cat"), later.key("a cat"));
  EXPECT_FALSE(other.find("a cat").has_value());
}

TEST_F(TextEmbeddingCacheTest, IgnoresAFileOfAnotherPrompt) {
  const std::string dir = (dir_ / "cache").string();
  TextEmbeddingCache writer("model", dir);
  writer.insert("a cat", embedding(1.0f));
  // The file a colliding key would name, holding another prompt.
  TextEmbeddingCache reader("model", dir);
  std::filesystem::copy_file(writer.file_path("a cat"), reader.file_path("a dog"));
  EXPECT_FALSE(reader.find("a dog").has_value());
}

TEST_F(TextEmbeddingCacheTest, ModelKeyDependsOnTokenizerWeightsAndLength) {
  const auto spm = dir_ / "spiece.model";
  std::ofstream(spm) << "pieces";
  const std::string a = TextEmbeddingCache::model_key(spm.string(), "0123", 512);
  EXPECT_EQ(a, TextEmbeddingCache::model_key(spm.string(), "0123", 512));
  EXPECT_NE(a, TextEmbeddingCache::model_key(spm.string(), "0124", 512));
  EXPECT_NE(a, TextEmbeddingCache::model_key(spm.string(), "0123", 256));
  std::ofstream(spm) << "other pieces";
  EXPECT_NE(a, TextEmbeddingCache::model_key(spm.string(), "0123", 512));
}

}  // namespace
}  // namespace wanbatch::model::wan
