// HDF5 files: round trips of every dtype and shape kind, attributes, the temporary-name discipline,
// errors that name the file and the dataset, files written by the raw C API (independent of our
// writer), chunk layout, and h5dump reading our output.
#include "io/hdf5_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "temp_dir_test.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using core::DType;
using core::Shape;
using core::Tensor;

class Hdf5 : public wanbatch::testing::TempDirTest {
 protected:
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  std::vector<std::string> dir_entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
};

// Runs `body`, expecting an Error whose message contains every one of `needles`.
template <typename Body>
void expect_error(Body body, const std::vector<std::string>& needles) {
  try {
    body();
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& needle : needles) {
      EXPECT_NE(message.find(needle), std::string::npos)
          << "'" << needle << "' not in: " << message;
    }
  }
}

Tensor ramp_f32(const Shape& shape, float scale = 0.25f) {
  std::vector<float> values(static_cast<size_t>(core::shape_numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = scale * static_cast<float>(i) - 3.0f;
  return Tensor::from_vector(values, shape);
}

std::vector<float> floats(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::F32);
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

std::vector<int64_t> ints(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::I64);
  const int64_t* p = t.data<int64_t>();
  return std::vector<int64_t>(p, p + t.numel());
}

TEST_F(Hdf5, RoundTripsF32OfEveryRank) {
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"latents", ramp_f32({2, 3, 4, 5})},
      {"scalar_like", Tensor::from_vector(std::vector<float>{0.875f}, {1})},
      {"context", ramp_f32({7, 16}, -1.5f)},
      {"special", Tensor::from_vector(std::vector<float>{std::numeric_limits<float>::infinity(),
                                                         -0.0f, 1e-42f, 3.4e38f},
                                      {4})}};
  const std::string path = file("f32.h5");
  {
    Hdf5Writer writer(path);
    for (const auto& [name, tensor] : tensors) writer.write(name, tensor);
    writer.commit();
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(reader.has(name));
    EXPECT_EQ(reader.shape(name), tensor.shape());
    const Tensor back = reader.read(name);
    EXPECT_EQ(back.shape(), tensor.shape());
    EXPECT_EQ(floats(back), floats(tensor));  // stored as float32: bit-exact
  }
  EXPECT_FALSE(reader.has("missing"));
  EXPECT_EQ(reader.names(),
            (std::vector<std::string>{"context", "latents", "scalar_like", "special"}));
}

TEST_F(Hdf5, RoundTripsZeroDimensionalAsHdf5Scalar) {
  const std::string path = file("scalar.h5");
  Hdf5Writer writer(path);
  writer.write("timestep", Tensor::from_vector(std::vector<float>{999.0f}, {}));
  writer.commit();
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.shape("timestep"), Shape{});
  EXPECT_EQ(floats(reader.read("timestep")), std::vector<float>{999.0f});
}

TEST_F(Hdf5, RoundTripsIntegersAsInt64) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::vector<int64_t> big = {0, -1, int64_t{1} << 40, kMin, kMax, 42};
  const std::vector<int32_t> small = {7, -7, std::numeric_limits<int32_t>::max()};
  const std::string path = file("ints.h5");
  {
    Hdf5Writer writer(path);
    writer.write("ids", Tensor::from_vector(big, {2, 3}));
    writer.write("ids32", Tensor::from_vector(small, {3}));
    writer.commit();
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.shape("ids"), (Shape{2, 3}));
  EXPECT_EQ(ints(reader.read("ids")), big);
  EXPECT_EQ(ints(reader.read("ids32")), (std::vector<int64_t>{7, -7, 2147483647}));
}

TEST_F(Hdf5, StoresReducedPrecisionFloatsAsF32) {
  // Values exact in bf16 and f16, so the expected f32 is known without rounding questions.
  const std::vector<float> values = {1.0f, -2.5f, 0.125f, 96.0f, 0.0f, -0.0078125f};
  const Tensor f32 = Tensor::from_vector(values, {2, 3});
  const std::string path = file("reduced.h5");
  {
    Hdf5Writer writer(path);
    writer.write("bf16", f32.to(DType::BF16));
    writer.write("f16", f32.to(DType::F16));
    writer.commit();
  }
  {
    const Hdf5Reader reader = Hdf5Reader::open(path);
    EXPECT_EQ(floats(reader.read("bf16")), values);
    EXPECT_EQ(floats(reader.read("f16")), values);
  }
  // Stored as IEEE float32, not as raw 16-bit words. (Opened after the reader is closed: HDF5
  // refuses a second open with other file-locking settings on builds whose default differs.)
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t d = H5Dopen2(f, "bf16", H5P_DEFAULT);
  const hid_t t = H5Dget_type(d);
  EXPECT_GT(H5Tequal(t, H5T_IEEE_F32LE), 0);
  H5Tclose(t);
  H5Dclose(d);
  H5Fclose(f);
}

TEST_F(Hdf5, RoundTripsEmptyArrays) {
  const std::string path = file("empty.h5");
  {
    Hdf5Writer writer(path);
    writer.write("empty", Tensor::empty({0, 3}, DType::F32));
    writer.write("empty_ids", Tensor::empty({0}, DType::I64));
    writer.commit();
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.shape("empty"), (Shape{0, 3}));
  const Tensor back = reader.read("empty");
  EXPECT_EQ(back.shape(), (Shape{0, 3}));
  EXPECT_EQ(back.dtype(), DType::F32);
  EXPECT_EQ(reader.read("empty_ids").shape(), Shape{0});
}

TEST_F(Hdf5, WritesNestedNamesIntoGroups) {
  const std::string path = file("nested.h5");
  {
    Hdf5Writer writer(path);
    writer.write("a/b/c", ramp_f32({2}));
    writer.write("a/d", ramp_f32({3}));
    writer.commit();
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_TRUE(reader.has("a/b/c"));
  EXPECT_TRUE(reader.has("/a/d"));
  EXPECT_FALSE(reader.has("a"));  // a group, not a dataset
  EXPECT_FALSE(reader.has("a/x/y"));
  EXPECT_EQ(floats(reader.read("a/b/c")), floats(ramp_f32({2})));
  EXPECT_EQ(reader.names(), std::vector<std::string>{"a"});
}

TEST_F(Hdf5, ChunksTrailingDimensionsWholeLeadingDimensionSplit) {
  const std::string path = file("chunks.h5");
  {
    Hdf5Writer writer(path);
    // One row [21, 60, 104] f32 is 524,160 bytes: two rows fit in 1 MiB.
    writer.write("latents", Tensor::zeros({16, 21, 60, 104}, DType::F32));
    writer.write("small", Tensor::zeros({3, 4}, DType::F32));
    writer.write("ids", Tensor::zeros({5}, DType::I64));
    writer.commit();
  }
  auto chunk_of = [&](const char* name) {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    const hid_t plist = H5Dget_create_plist(d);
    std::vector<hsize_t> dims;
    if (H5Pget_layout(plist) == H5D_CHUNKED) {
      dims.resize(8);
      dims.resize(static_cast<size_t>(H5Pget_chunk(plist, 8, dims.data())));
    }
    H5Pclose(plist);
    H5Dclose(d);
    H5Fclose(f);
    return dims;
  };
  EXPECT_EQ(chunk_of("latents"), (std::vector<hsize_t>{2, 21, 60, 104}));
  EXPECT_EQ(chunk_of("small"), (std::vector<hsize_t>{3, 4}));
  EXPECT_EQ(chunk_of("ids"), std::vector<hsize_t>{5});
}

TEST_F(Hdf5, RoundTripsAttributes) {
  const std::string path = file("attrs.h5");
  const std::string prompt = "Ein Kätzchen spielt im Schnee — 雪の中の子猫 🐱";
  {
    Hdf5Writer writer(path);
    writer.write("latents", ramp_f32({1, 2}));
    writer.attribute("prompt", prompt);
    writer.attribute("negative_prompt", "");
    writer.attribute("solver", "unipc");  // a string literal is a string, not a bool or number
    writer.attribute("shift", 5.0);
    writer.attribute("guide_scale", 0.1);
    writer.attribute("seed", int64_t{1} << 60 | 1);  // beyond double's 2^53
    writer.attribute("steps", 50);                   // int, through the integral overload
    writer.attribute("frames", size_t{81});
    writer.attribute("replaced", "first");
    writer.attribute("replaced", 2.0);  // a later value of another kind replaces it
    writer.commit();
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.attribute_string("prompt"), prompt);
  EXPECT_EQ(reader.attribute_string("negative_prompt"), "");
  EXPECT_EQ(reader.attribute_string("solver"), "unipc");
  EXPECT_EQ(reader.attribute_number("shift"), 5.0);
  EXPECT_EQ(reader.attribute_number("guide_scale"), 0.1);
  EXPECT_EQ(reader.attribute_integer("seed"), (int64_t{1} << 60) | 1);
  EXPECT_EQ(reader.attribute_number("steps"), 50.0);
  EXPECT_EQ(reader.attribute_integer("steps"), 50);
  EXPECT_EQ(reader.attribute_integer("frames"), 81);
  EXPECT_EQ(reader.attribute_integer("shift"), 5);  // a whole float is an integer
  EXPECT_EQ(reader.attribute_number("replaced"), 2.0);
  EXPECT_EQ(reader.attribute_string("absent"), std::nullopt);
  EXPECT_EQ(reader.attribute_number("absent"), std::nullopt);
  EXPECT_EQ(reader.attribute_integer("absent"), std::nullopt);

  expect_error([&] { reader.attribute_number("prompt"); }, {"attrs.h5", "prompt", "not a number"});
  expect_error([&] { reader.attribute_string("seed"); }, {"attrs.h5", "seed", "not a string"});
  expect_error([&] { reader.attribute_integer("guide_scale"); },
               {"attrs.h5", "guide_scale", "not an integer"});
}

TEST_F(Hdf5, StringAttributesAreScalarVariableLengthUtf8) {
  // What h5py needs to return str (not bytes, not an array) and h5dump to show one string.
  const std::string path = file("str.h5");
  {
    Hdf5Writer writer(path);
    writer.attribute("prompt", "a cat");
    writer.commit();
  }
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t a = H5Aopen(f, "prompt", H5P_DEFAULT);
  const hid_t t = H5Aget_type(a);
  const hid_t s = H5Aget_space(a);
  EXPECT_EQ(H5Tget_class(t), H5T_STRING);
  EXPECT_GT(H5Tis_variable_str(t), 0);
  EXPECT_EQ(H5Tget_cset(t), H5T_CSET_UTF8);
  EXPECT_EQ(H5Sget_simple_extent_type(s), H5S_SCALAR);
  H5Sclose(s);
  H5Tclose(t);
  H5Aclose(a);
  H5Fclose(f);
}

TEST_F(Hdf5, CommitLeavesOnlyTheFinalFile) {
  const std::string path = file("item.h5");
  Hdf5Writer writer(path);
  writer.write("latents", ramp_f32({2, 2}));
  // Until commit only the temporary exists, under the hidden name AtomicFile gives it.
  EXPECT_EQ(dir_entries(), std::vector<std::string>{".item.h5.tmp." + std::to_string(::getpid())});
  writer.commit();
  EXPECT_EQ(dir_entries(), std::vector<std::string>{"item.h5"});
  expect_error([&] { writer.write("more", ramp_f32({1})); }, {"item.h5", "more", "committed"});
  expect_error([&] { writer.attribute("late", 1.0); }, {"item.h5", "late", "committed"});
  expect_error([&] { writer.commit(); }, {"item.h5", "committed"});
}

TEST_F(Hdf5, UncommittedWriterLeavesNothing) {
  {
    Hdf5Writer writer(file("item.h5"));
    writer.write("latents", ramp_f32({4, 4}));
    writer.attribute("prompt", "never finished");
  }
  EXPECT_TRUE(dir_entries().empty());
}

TEST_F(Hdf5, MovedWriterOwnsTheFile) {
  const std::string path = file("moved.h5");
  Hdf5Writer first(path);
  first.write("x", ramp_f32({2}));
  Hdf5Writer second = std::move(first);
  second.write("y", ramp_f32({3}));
  second.commit();
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"x", "y"}));
}

TEST_F(Hdf5, ClosesEveryHandle) {
  const std::string path = file("handles.h5");
  {
    Hdf5Writer writer(path);
    writer.write("a/b", ramp_f32({3, 2}));
    writer.attribute("prompt", "x");
    EXPECT_THROW(writer.write("a/b", ramp_f32({1})), Error);
    writer.commit();
    const Hdf5Reader reader = Hdf5Reader::open(path);
    reader.read("a/b");
    reader.attribute_string("prompt");
    EXPECT_THROW(reader.read("missing"), Error);
    EXPECT_THROW(reader.attribute_number("prompt"), Error);
  }
  { Hdf5Writer uncommitted(file("dropped.h5")); }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST_F(Hdf5, RejectsWritingANameTwice) {
  Hdf5Writer writer(file("twice.h5"));
  writer.write("latents", ramp_f32({2}));
  expect_error([&] { writer.write("latents", ramp_f32({2})); },
               {"twice.h5", "latents", "already written"});
}

TEST_F(Hdf5, WriterErrorsNameTheFile) {
  expect_error([&] { Hdf5Writer writer(file("no_such_dir/item.h5")); }, {"no_such_dir", "item.h5"});
  Hdf5Writer writer(file("undefined.h5"));
  expect_error([&] { writer.write("latents", Tensor()); }, {"undefined.h5", "latents"});
}

TEST_F(Hdf5, OpenErrorsNameTheFile) {
  expect_error([&] { Hdf5Reader::open(file("missing.h5")); }, {"missing.h5", "no such file"});
  const std::string text = file("text.h5");
  std::ofstream(text) << "this is not HDF5\n";
  expect_error([&] { Hdf5Reader::open(text); }, {"text.h5", "signature"});
  expect_error([&] { Hdf5Reader::open(dir_.string()); }, {dir_.string(), "directory"});
}

TEST_F(Hdf5, ReadErrorsNameTheFileAndTheDataset) {
  const std::string path = file("typed.h5");
  {
    // Types we do not read, made with the raw C API.
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[1] = {4};
    const hid_t space = H5Screate_simple(1, dims, nullptr);
    const uint8_t bytes[4] = {1, 2, 3, 4};
    const hid_t d =
        H5Dcreate2(f, "mask", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes);
    H5Dclose(d);
    const int16_t shorts[4] = {1, 2, 3, 4};
    const hid_t d16 =
        H5Dcreate2(f, "shorts", H5T_STD_I16LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d16, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, shorts);
    H5Dclose(d16);
    const hsize_t two[1] = {2};
    const hid_t space2 = H5Screate_simple(1, two, nullptr);
    const hid_t a = H5Acreate2(f, "pair", H5T_IEEE_F64LE, space2, H5P_DEFAULT, H5P_DEFAULT);
    const double pair[2] = {1, 2};
    H5Awrite(a, H5T_NATIVE_DOUBLE, pair);
    H5Aclose(a);
    H5Sclose(space2);
    H5Sclose(space);
    H5Fclose(f);
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.shape("mask"), Shape{4});  // the shape is readable whatever the type
  expect_error([&] { reader.read("mask"); }, {"typed.h5", "'mask'", "uint8"});
  expect_error([&] { reader.read("shorts"); }, {"typed.h5", "'shorts'", "int16"});
  expect_error([&] { reader.read("latent"); }, {"typed.h5", "'latent'", "mask, shorts"});
  expect_error([&] { reader.shape("latent"); }, {"typed.h5", "'latent'"});
  expect_error([&] { reader.attribute_number("pair"); }, {"typed.h5", "'pair'", "[2]"});
}

TEST_F(Hdf5, HdfPrintsNothingItselfOnErrors) {
  const std::string path = file("quiet.h5");
  std::ofstream(path) << "garbage";
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  EXPECT_THROW(Hdf5Reader::open(path), Error);
  {
    Hdf5Writer writer(file("w.h5"));
    EXPECT_THROW(writer.write("x", ramp_f32({1})); writer.write("x", ramp_f32({1})), Error);
  }
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "");
}

TEST_F(Hdf5, ReadsFilesWrittenByTheCApi) {
  // Written without our writer: big-endian float64, int32, a group, fixed-length and
  // variable-length (ASCII) strings and numeric attributes of other widths.
  const std::string path = file("external.h5");
  {
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[2] = {2, 3};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const double noise[6] = {0.5, -1.25, 3.0, 1e-3, -0.0, 1e30};
    const hid_t d =
        H5Dcreate2(f, "noise", H5T_IEEE_F64BE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, noise);
    H5Dclose(d);
    const int32_t ids[6] = {0, 1, 2, -3, 4, 2147483647};
    const hid_t g = H5Gcreate2(f, "text", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t di =
        H5Dcreate2(g, "ids", H5T_STD_I32BE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(di, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
    H5Dclose(di);
    H5Gclose(g);
    H5Sclose(space);

    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t fixed = H5Tcopy(H5T_C_S1);
    H5Tset_size(fixed, 16);
    H5Tset_strpad(fixed, H5T_STR_NULLPAD);
    char solver[16] = "dpm++";
    hid_t a = H5Acreate2(f, "solver", fixed, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, fixed, solver);
    H5Aclose(a);
    const hid_t padded = H5Tcopy(H5T_FORTRAN_S1);
    H5Tset_size(padded, 8);
    a = H5Acreate2(f, "variant", padded, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, padded, "t2v     ");
    H5Aclose(a);
    const hid_t vlen = H5Tcopy(H5T_C_S1);
    H5Tset_size(vlen, H5T_VARIABLE);
    const char* note = "ascii vlen";
    a = H5Acreate2(f, "note", vlen, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vlen, &note);
    H5Aclose(a);
    const float shift = 3.0f;
    a = H5Acreate2(f, "shift", H5T_IEEE_F32BE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_FLOAT, &shift);
    H5Aclose(a);
    const uint64_t seed = 18446744073709551615ull;
    a = H5Acreate2(f, "seed", H5T_STD_U64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT64, &seed);
    H5Aclose(a);
    const int16_t steps = 40;
    a = H5Acreate2(f, "steps", H5T_STD_I16LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT16, &steps);
    H5Aclose(a);
    H5Tclose(vlen);
    H5Tclose(padded);
    H5Tclose(fixed);
    H5Sclose(scalar);
    H5Fclose(f);
  }
  const Hdf5Reader reader = Hdf5Reader::open(path);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"noise", "text"}));
  EXPECT_EQ(reader.shape("noise"), (Shape{2, 3}));
  // float64 → float32 rounds to nearest, as a C cast does.
  EXPECT_EQ(floats(reader.read("noise")),
            (std::vector<float>{0.5f, -1.25f, 3.0f, static_cast<float>(1e-3), -0.0f,
                                static_cast<float>(1e30)}));
  EXPECT_EQ(ints(reader.read("text/ids")), (std::vector<int64_t>{0, 1, 2, -3, 4, 2147483647}));
  EXPECT_EQ(reader.attribute_string("solver"), "dpm++");
  EXPECT_EQ(reader.attribute_string("variant"), "t2v");
  EXPECT_EQ(reader.attribute_string("note"), "ascii vlen");
  EXPECT_EQ(reader.attribute_number("shift"), 3.0);
  EXPECT_EQ(reader.attribute_number("steps"), 40.0);
  EXPECT_EQ(reader.attribute_integer("steps"), 40);
  EXPECT_EQ(reader.attribute_number("seed"), 18446744073709551615.0);
  expect_error([&] { reader.attribute_integer("seed"); },
               {"external.h5", "'seed'", "does not fit in int64"});
}

// Runs a shell command, returning its exit status and everything it printed.
std::pair<int, std::string> run_command(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, ""};
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST_F(Hdf5, H5dumpReadsOurOutput) {
  if (run_command("command -v h5dump").first != 0) {
    GTEST_SKIP() << "h5dump not on PATH (apt-get install hdf5-tools)";
  }
  const std::string path = file("item.h5");
  {
    Hdf5Writer writer(path);
    writer.write("latents", ramp_f32({16, 3, 4, 5}));
    writer.write("ids", Tensor::from_vector(std::vector<int64_t>{1, 2}, {2}));
    writer.attribute("prompt", "a red fox in the snow");
    writer.attribute("shift", 5.0);
    writer.attribute("seed", int64_t{42});
    writer.commit();
  }
  const auto [status, header] = run_command("h5dump -H '" + path + "'");
  ASSERT_EQ(status, 0) << header;
  for (const char* needle :
       {"DATASET \"latents\"", "H5T_IEEE_F32LE", "SIMPLE { ( 16, 3, 4, 5 ) / ( 16, 3, 4, 5 ) }",
        "DATASET \"ids\"", "H5T_STD_I64LE", "ATTRIBUTE \"prompt\"", "STRSIZE H5T_VARIABLE",
        "CSET H5T_CSET_UTF8", "ATTRIBUTE \"shift\"", "H5T_IEEE_F64LE", "ATTRIBUTE \"seed\""}) {
    EXPECT_NE(header.find(needle), std::string::npos) << needle << " not in:\n" << header;
  }
  // The values print plainly: the string as one quoted string, the numbers as numbers.
  const auto [attr_status, attrs] =
      run_command("h5dump -a /prompt -a /shift -a /seed '" + path + "'");
  ASSERT_EQ(attr_status, 0) << attrs;
  for (const char* needle : {"(0): \"a red fox in the snow\"", "(0): 5", "(0): 42"}) {
    EXPECT_NE(attrs.find(needle), std::string::npos) << needle << " not in:\n" << attrs;
  }
  const auto [data_status, data] = run_command("h5dump -d /ids '" + path + "'");
  ASSERT_EQ(data_status, 0) << data;
  EXPECT_NE(data.find("(0): 1, 2"), std::string::npos) << data;
}

}  // namespace
}  // namespace wanbatch::io
