// PyTorch .pth state dicts: fixtures written in torch.save's format by
// tests/reference/pytorch_fixtures.py (no torch needed), each compared bit for bit with the
// tensors it should read as; views versus copies; and one test per kind of malformed file, each a
// wanbatch::Error naming the file, never a crash.
#include "io/pytorch_file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "temp_dir_test.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using core::DType;
using core::Tensor;
using wanbatch::testing::fixture_path;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every tensor of NAME.pth equals the one of NAME.expected.safetensors: same keys, dtype, shape
// and bytes (exact: reading moves bits, and the converted dtypes convert exactly as NumPy does).
void expect_matches_reference(const std::string& name) {
  SCOPED_TRACE(name);
  const auto tensors = read_pytorch_state_dict(fixture_path(name + ".pth"));
  const auto expected = SafetensorsFile::open(fixture_path(name + ".expected.safetensors"));
  ASSERT_EQ(tensors.size(), expected->names().size());
  for (const std::string& key : expected->names()) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(tensors.count(key));
    const Tensor& got = tensors.at(key);
    const Tensor want = expected->tensor(key);
    EXPECT_TRUE(got.device().is_cpu());
    EXPECT_EQ(got.dtype(), want.dtype());
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_EQ(got.nbytes(), want.nbytes());
    if (want.nbytes()) {
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0);
    }
  }
}

TEST(PytorchFile, ReadsEveryDtypeRankAndLayoutOfAStateDict) {
  // OrderedDict with _metadata (BUILD), protocol 2, 64-byte aligned entries, ZIP64 end records.
  expect_matches_reference("pt_basic");
}

TEST(PytorchFile, ReadsAPlainDictAtProtocol4FromAnUnalignedZip64LocalHeaderArchive) {
  expect_matches_reference("pt_dict_proto4");
}

TEST(PytorchFile, UnwrapsStateDictAndModelOfACheckpoint) {
  expect_matches_reference("pt_nested_state_dict");
  expect_matches_reference("pt_nested_model");
}

TEST(PytorchFile, ReadsZip64SizesAndOffsets) { expect_matches_reference("pt_zip64"); }

TEST(PytorchFile, ConvertsDtypesCoreLacks) {
  expect_matches_reference("pt_converted");
  const auto tensors = read_pytorch_state_dict(fixture_path("pt_converted.pth"));
  EXPECT_EQ(tensors.at("double").dtype(), DType::F32);
  EXPECT_EQ(tensors.at("bool").dtype(), DType::I32);
  const int32_t* bytes = tensors.at("byte").data<int32_t>();
  EXPECT_EQ(bytes[2], 200);
  EXPECT_EQ(tensors.at("char").data<int32_t>()[0], -128);
  EXPECT_EQ(tensors.at("u16").data<int32_t>()[0], 65535);  // offset 1 counts uint16 elements
  EXPECT_EQ(tensors.at("u32").dtype(), DType::I64);
  EXPECT_EQ(tensors.at("u32").data<int64_t>()[2], int64_t{4294967295});  // transposed
}

TEST(PytorchFile, ContiguousTensorsViewTheFileAndShareTheirStorage) {
  const auto tensors = read_pytorch_state_dict(fixture_path("pt_basic.pth"));
  const Tensor& a = tensors.at("shared.a");  // elements [0, 8) of a storage of 20 f32
  const Tensor& b = tensors.at("shared.b");  // elements [8, 20)
  EXPECT_EQ(a.storage(), b.storage());
  EXPECT_EQ(a.storage()->bytes(), 20u * 4);
  EXPECT_EQ(a.offset(), 0u);
  EXPECT_EQ(b.offset(), 8u * 4);
  // Zero-copy views are as aligned as the file's 64-byte aligned entries.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % 64, 0u);
  // A size-1 dimension with an odd stride is still contiguous.
  EXPECT_EQ(tensors.at("unit_dims").storage()->bytes(), 3u * 4);
  EXPECT_EQ(tensors.at("unit_dims").shape(), (core::Shape{3, 1}));
  // A transposed view is a contiguous copy of its own.
  const Tensor& t = tensors.at("transposed");
  EXPECT_NE(t.storage(), a.storage());
  EXPECT_EQ(t.storage()->bytes(), t.nbytes());
  EXPECT_EQ(tensors.at("scalar").ndim(), 0);
  EXPECT_EQ(tensors.at("scalar").data<float>()[0], 2.5f);
  EXPECT_EQ(tensors.at("empty").shape(), (core::Shape{0, 4}));
  EXPECT_EQ(tensors.at("count").data<int64_t>()[0], int64_t{1} << 40);
  // fp8 comes through _rebuild_tensor_v3 over an UntypedStorage, still zero-copy.
  EXPECT_EQ(tensors.at("fp8.weight").dtype(), DType::F8E4M3);
  EXPECT_EQ(tensors.at("fp8.weight").storage()->bytes(), 8u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tensors.at("fp8.weight").raw()) % 64, 0u);
}

TEST(PytorchFile, TensorsOutliveTheCall) {
  Tensor w;
  {
    auto tensors = read_pytorch_state_dict(fixture_path("pt_basic.pth"));
    w = tensors.at("encoder.conv1.bias");
  }
  const auto expected = SafetensorsFile::open(fixture_path("pt_basic.expected.safetensors"));
  EXPECT_EQ(std::memcmp(w.raw(), expected->tensor("encoder.conv1.bias").raw(), w.nbytes()), 0);
}

class PytorchFileRejects : public wanbatch::testing::TempDirTest {
 protected:
  // read_pytorch_state_dict(path) throws an Error naming the file and containing `needle`.
  static void expect_rejected(const std::string& path, const std::string& needle) {
    SCOPED_TRACE(path);
    try {
      read_pytorch_state_dict(path);
      FAIL() << "accepted " << path;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(fs::path(path).filename().string()), std::string::npos) << message;
      EXPECT_NE(message.find(needle), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
};

TEST_F(PytorchFileRejects, MalformedFixtures) {
  const std::pair<const char*, const char*> cases[] = {
      {"bad_truncated.pth", "truncated"},
      {"bad_compressed.pth", "'archive/data/0' is compressed"},
      {"bad_opcode.pth", "unknown pickle opcode 0xff at byte 2"},
      {"bad_protocol0.pth", "unsupported pickle opcode 'DICT (protocol 0)'"},
      {"bad_no_stop.pth", "pickle is truncated: it ends without a STOP opcode at byte"},
      {"bad_missing_data.pth", "missing entry 'archive/data/1'"},
      {"bad_offset.pth", "reaches past its storage 'archive/data/0' of 6 float32 elements"},
      {"bad_storage_size.pth", "holds 24 bytes, fewer than its 7 FloatStorage elements"},
      {"bad_global.pth", "unsupported global 'numpy."},
      {"bad_not_tensor.pth", "'step' is not a tensor but int 3"},
      {"bad_dtype.pth", "'w' has dtype float8_e5m2 (UntypedStorage), which wanbatch does not"},
      {"bad_complex.pth", "'w' has dtype complex64 (ComplexFloatStorage), which wanbatch does"},
      {"bad_big_endian.pth", "byte order 'big'"},
      {"bad_no_pickle.pth", "no 'archive/data.pkl'"},
      {"bad_torchscript.pth", "TorchScript"},
      {"bad_legacy.pth", "legacy torch.save format"},
      {"bad_not_zip.pth", "not a PyTorch file"},
  };
  for (const auto& [name, needle] : cases) expect_rejected(fixture_path(name), needle);
}

TEST_F(PytorchFileRejects, MissingAndEmptyFiles) {
  expect_rejected((dir_ / "absent.pth").string(), "cannot open");
  expect_rejected(write("empty.pth", ""), "not a PyTorch file");
}

// Every proper prefix of a valid file is an Error (no end record), never a crash or a hang. One
// copy is cut shorter and shorter in place, which keeps the test off the disk's write path.
TEST_F(PytorchFileRejects, EveryTruncation) {
  const std::string whole = read_bytes(fixture_path("pt_basic.pth"));
  ASSERT_GT(whole.size(), 1000u);
  const std::string path = write("cut.pth", whole);
  for (size_t n = whole.size(); n-- > 0;) {
    fs::resize_file(path, n);
    EXPECT_THROW(read_pytorch_state_dict(path), Error) << n << " bytes";
  }
}

// Damage (one byte set to 0x00, 0x80 or 0xff) anywhere in a protocol-4 archive, and anywhere in
// the central directory and end records of the aligned and the all-ZIP64 archives, either still
// reads or is an Error: never a crash, a hang or a read outside the file (run under a sanitizer to
// see the latter). Each byte is patched in place and restored.
TEST_F(PytorchFileRejects, CorruptedBytesNeverCrash) {
  size_t rejected = 0, read = 0;
  const std::pair<const char*, size_t> files[] = {
      {"pt_dict_proto4.pth", SIZE_MAX}, {"pt_basic.pth", 1800}, {"pt_zip64.pth", 1200}};
  for (const auto& [name, tail] : files) {
    const std::string whole = read_bytes(fixture_path(name));
    const std::string path = write("damaged.pth", whole);
    std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
    auto patch = [&](size_t at, char value) {
      file.seekp(static_cast<std::streamoff>(at));
      file.put(value);
      file.flush();
    };
    for (size_t at = whole.size() - std::min(tail, whole.size()); at < whole.size(); ++at) {
      for (unsigned char value : {0x00, 0x80, 0xff}) {
        if (static_cast<unsigned char>(whole[at]) == value) continue;
        patch(at, static_cast<char>(value));
        try {
          for (const auto& [key, tensor] : read_pytorch_state_dict(path)) {
            if (tensor.nbytes()) (void)static_cast<const volatile char*>(tensor.raw())[0];
          }
          ++read;
        } catch (const Error&) {
          ++rejected;
        }
      }
      patch(at, whole[at]);
    }
    ASSERT_TRUE(file.good()) << name;
  }
  EXPECT_GT(rejected, 0u);
  EXPECT_GT(read, 0u);  // damage to tensor data (and CRCs, which torch.load ignores too) is fine
}

}  // namespace
}  // namespace wanbatch::io
