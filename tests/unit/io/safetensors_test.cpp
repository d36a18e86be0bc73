// safetensors: round trips of every dtype, zero-copy views, byte ranges, and one test per kind of
// malformed file, each a clear wanbatch::Error naming the file (and the tensor where there is one).
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/checkpoint.h"
#include "temp_dir_test.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using core::DType;
using core::Tensor;

class Safetensors : public wanbatch::testing::TempDirTest {
 protected:
  // A file made of a raw header string and `data_bytes` bytes of data.
  std::string raw_file(const std::string& name, const std::string& header, size_t data_bytes,
                       int64_t claimed_header_size = -1) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    const uint64_t size = claimed_header_size < 0 ? header.size() : claimed_header_size;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((size >> (8 * i)) & 0xff));
    out << header << std::string(data_bytes, '\x01');
    return path;
  }

  // Expects open() to throw an Error whose message names the file and contains `needle`.
  void expect_rejected(const std::string& path, const std::string& needle) {
    try {
      SafetensorsFile::open(path);
      FAIL() << "accepted " << path;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(fs::path(path).filename().string()), std::string::npos) << message;
      EXPECT_NE(message.find(needle), std::string::npos) << message;
    }
  }
};

Tensor filled(const core::Shape& shape, DType dtype, int seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* bytes = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i)
    bytes[i] = static_cast<unsigned char>((i * 31 + seed) & 0x7b);
  return t;
}

TEST_F(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  int seed = 0;
  for (DType d : {DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::I32, DType::I64}) {
    tensors.emplace_back(std::string("t_") + std::string(core::dtype_name(d)),
                         filled({3, 5}, d, ++seed));
  }
  tensors.emplace_back("scalar_like", filled({1}, DType::F32, 9));
  tensors.emplace_back("empty", Tensor::empty({0, 4}, DType::BF16));
  const std::string path = (dir_ / "all.safetensors").string();
  write_safetensors(path, tensors, {{"format", "pt"}});

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->names().size(), tensors.size());
  for (const auto& [name, original] : tensors) {
    const Tensor read = file->tensor(name);
    EXPECT_EQ(read.dtype(), original.dtype()) << name;
    EXPECT_EQ(read.shape(), original.shape()) << name;
    ASSERT_EQ(read.nbytes(), original.nbytes());
    if (read.nbytes()) {
      EXPECT_EQ(std::memcmp(read.raw(), original.raw(), read.nbytes()), 0) << name;
    }
  }
  // Data begins 8-byte aligned after the header.
  std::ifstream in(path, std::ios::binary);
  uint64_t header = 0;
  in.read(reinterpret_cast<char*>(&header), 8);
  EXPECT_EQ(header % 8, 0u);
  EXPECT_FALSE(fs::exists(dir_ / (".all.safetensors.tmp." + std::to_string(::getpid()))));
}

TEST_F(Safetensors, ViewsOutliveTheFileHandle) {
  const std::string path = (dir_ / "v.safetensors").string();
  write_safetensors(path, {{"w", Tensor::from_vector<float>({1.5f, 2.5f, 3.5f}, {3})}});
  Tensor view;
  {
    auto file = SafetensorsFile::open(path);
    view = file->tensor("w");
  }
  EXPECT_EQ(view.to_floats(), (std::vector<float>{1.5f, 2.5f, 3.5f}));
}

TEST_F(Safetensors, ReadsAByteRangeAlone) {
  const std::string path = (dir_ / "r.safetensors").string();
  write_safetensors(path, {{"a", Tensor::from_vector<float>({1, 2}, {2})},
                           {"b", Tensor::from_vector<float>({10, 20, 30, 40}, {4})}});
  auto file = SafetensorsFile::open(path);
  float middle[2];
  file->read_range("b", 4, 12, middle);
  EXPECT_EQ(middle[0], 20.0f);
  EXPECT_EQ(middle[1], 30.0f);
  EXPECT_THROW(file->read_range("b", 8, 20, middle), Error);
  EXPECT_THROW(file->tensor("nope"), Error);
}

TEST_F(Safetensors, RejectsEmptyAndTinyFiles) {
  const std::string empty = (dir_ / "empty.safetensors").string();
  std::ofstream(empty).close();
  expect_rejected(empty, "shorter than the 8-byte header");
  const std::string tiny = (dir_ / "tiny.safetensors").string();
  std::ofstream(tiny) << "abc";
  expect_rejected(tiny, "shorter than the 8-byte header");
}

TEST_F(Safetensors, RejectsHeaderLargerThanFile) {
  expect_rejected(raw_file("big.safetensors", "{}", 0, 1000), "truncated");
}

TEST_F(Safetensors, RejectsHeaderThatIsNotJson) {
  expect_rejected(raw_file("nojson.safetensors", "{not json", 0), "not valid JSON");
  expect_rejected(raw_file("array.safetensors", "[1,2]", 0), "not a JSON object");
}

TEST_F(Safetensors, RejectsEntriesMissingFields) {
  expect_rejected(raw_file("nodtype.safetensors", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
                  "'w' has no dtype");
  expect_rejected(
      raw_file("noshape.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4),
      "'w' has no shape");
  expect_rejected(raw_file("nooff.safetensors", R"({"w":{"dtype":"F32","shape":[1]}})", 4),
                  "'w' has no data_offsets");
}

TEST_F(Safetensors, RejectsUnknownDtype) {
  expect_rejected(
      raw_file("f64.safetensors", R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8),
      "'w' has unsupported dtype 'F64'");
}

TEST_F(Safetensors, RejectsBadShapes) {
  expect_rejected(
      raw_file("neg.safetensors", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
      "'w' has an invalid shape");
  expect_rejected(raw_file("frac.safetensors",
                           R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
                  "'w' has an invalid shape");
}

TEST_F(Safetensors, RejectsBadOffsets) {
  expect_rejected(
      raw_file("rev.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
      "begin > end");
  expect_rejected(
      raw_file("past.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
      "past the end");
  expect_rejected(
      raw_file("size.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8),
      "do not hold shape");
  expect_rejected(raw_file("overlap.safetensors",
                           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           12),
                  "overlap");
}

TEST_F(Safetensors, RejectsTruncatedFile) {
  const std::string path = (dir_ / "cut.safetensors").string();
  write_safetensors(path, {{"w", filled({64}, DType::F32, 3)}});
  fs::resize_file(path, fs::file_size(path) - 10);
  expect_rejected(path, "'w'");
}

class CheckpointTest : public Safetensors {};

TEST_F(CheckpointTest, OpensShardedIndexAndFolder) {
  const fs::path model = dir_ / "model";
  fs::create_directories(model);
  write_safetensors((model / "m-1.safetensors").string(), {{"a", filled({2}, DType::F32, 1)}});
  write_safetensors((model / "m-2.safetensors").string(), {{"b", filled({3}, DType::BF16, 2)}});
  std::ofstream(model / "m.safetensors.index.json")
      << R"({"metadata":{"total_size":14},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors"}})";
  for (const fs::path& p : {model / "m.safetensors.index.json", model}) {
    const Checkpoint c = Checkpoint::open(p.string());
    EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(c.files().size(), 2u);
    EXPECT_EQ(c.total_bytes(), 14u);
    EXPECT_EQ(c.info("b").dtype, DType::BF16);
    EXPECT_EQ(c.tensor("a").numel(), 2);
  }
  fs::remove(model / "m.safetensors.index.json");
  EXPECT_EQ(Checkpoint::open(model.string()).names().size(), 2u);  // a folder of files
}

TEST_F(CheckpointTest, FingerprintFollowsTheWeightsNotTheLayout) {
  const std::string one = (dir_ / "one.safetensors").string();
  write_safetensors(one,
                    {{"a", filled({3000}, DType::F32, 1)}, {"b", filled({3}, DType::BF16, 2)}});
  const fs::path model = dir_ / "sharded";
  fs::create_directories(model);
  write_safetensors((model / "m-1.safetensors").string(), {{"a", filled({3000}, DType::F32, 1)}});
  write_safetensors((model / "m-2.safetensors").string(), {{"b", filled({3}, DType::BF16, 2)}});
  const std::string fingerprint = Checkpoint::open(one).fingerprint();
  EXPECT_EQ(fingerprint.size(), 16u);
  EXPECT_EQ(Checkpoint::open(model.string()).fingerprint(), fingerprint);
  // One changed value in the last bytes of a tensor, or another dtype, changes it.
  Tensor changed = filled({3000}, DType::F32, 1);
  changed.data<float>()[2999] += 1.0f;
  const std::string other = (dir_ / "other.safetensors").string();
  write_safetensors(other, {{"a", changed}, {"b", filled({3}, DType::BF16, 2)}});
  EXPECT_NE(Checkpoint::open(other).fingerprint(), fingerprint);
  write_safetensors(other,
                    {{"a", filled({3000}, DType::F32, 1)}, {"b", filled({3}, DType::F16, 2)}});
  EXPECT_NE(Checkpoint::open(other).fingerprint(), fingerprint);
}

TEST_F(CheckpointTest, RejectsBrokenShardedCheckpoints) {
  const fs::path model = dir_ / "model";
  fs::create_directories(model);
  write_safetensors((model / "m-1.safetensors").string(), {{"a", filled({2}, DType::F32, 1)}});
  const fs::path index = model / "m.safetensors.index.json";
  auto expect_error = [&](const std::string& json, const std::string& needle) {
    std::ofstream(index) << json;
    try {
      Checkpoint::open(index.string());
      FAIL() << "accepted " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"weight_map":{"a":"m-9.safetensors"}})", "m-9.safetensors is missing");
  expect_error(R"({"weight_map":{"zz":"m-1.safetensors"}})", "'zz' is not in its shard");
  expect_error(R"({"weight_map":)", "not a valid index JSON");
  expect_error(R"({"metadata":{}})", "no weight_map");
  fs::remove(index);
  write_safetensors((model / "m-2.safetensors").string(), {{"a", filled({2}, DType::F32, 1)}});
  try {
    Checkpoint::open(model.string());
    FAIL() << "accepted a name in two files";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'a' is in both"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Checkpoint::open((dir_ / "nothing").string()), Error);
}

}  // namespace
}  // namespace wanbatch::io
