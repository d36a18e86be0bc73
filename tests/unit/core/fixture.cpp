// Test-only safetensors reader and comparison helpers (see fixture.h).
#include "tests/unit/core/fixture.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace wanbatch::test {

using core::DType;
using core::Shape;
using core::Tensor;

Fixture Fixture::load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  WB_CHECK(file, "fixture ", path, ": cannot open (is the ops_reference_fixture target built?)");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
  WB_CHECK(bytes.size() >= 8, "fixture ", path, ": shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) {  // little-endian u64
    header_len = (header_len << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  }
  WB_CHECK(header_len <= bytes.size() - 8, "fixture ", path, ": header runs past the end");
  const size_t data_start = 8 + static_cast<size_t>(header_len);
  const size_t data_size = bytes.size() - data_start;
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + data_start);

  Fixture fixture;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    WB_CHECK(entry.at("dtype") == "F32", "fixture ", path, ": tensor ", name, " is not F32");
    const Shape shape = entry.at("shape").get<Shape>();
    const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
    WB_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size, "fixture ",
             path, ": tensor ", name, " has bad data_offsets");
    Tensor t = Tensor::empty(shape, DType::F32);
    WB_CHECK(offsets[1] - offsets[0] == t.nbytes(), "fixture ", path, ": tensor ", name, " holds ",
             offsets[1] - offsets[0], " bytes for shape ", core::shape_str(shape));
    std::memcpy(t.data<float>(), bytes.data() + data_start + offsets[0], t.nbytes());
    fixture.tensors_.emplace(name, std::move(t));
  }
  return fixture;
}

const Tensor& Fixture::get(const std::string& name) const {
  auto it = tensors_.find(name);
  WB_CHECK(it != tensors_.end(), "fixture has no tensor ", name);
  return it->second;
}

float Fixture::scalar(const std::string& name) const {
  const Tensor& t = get(name);
  WB_CHECK(t.numel() == 1, "fixture tensor ", name, " is not a single value");
  return t.data<float>()[0];
}

std::vector<int64_t> Fixture::ints(const std::string& name) const {
  std::vector<int64_t> values;
  for (float v : get(name).to_floats()) {
    WB_CHECK(v == std::floor(v), "fixture tensor ", name, " holds a non-integer ", v);
    values.push_back(static_cast<int64_t>(v));
  }
  return values;
}

const Fixture& ops_fixture() {
  static const Fixture fixture =
      Fixture::load(std::string(WANBATCH_FIXTURE_DIR) + "/ops_reference.safetensors");
  return fixture;
}

Tensor empty_like(const Tensor& like, DType dtype) { return Tensor::empty(like.shape(), dtype); }

::testing::AssertionResult all_close(const Tensor& got, const Tensor& want, double atol,
                                     double rtol) {
  if (got.shape() != want.shape()) {
    return ::testing::AssertionFailure() << "shape " << core::shape_str(got.shape())
                                         << ", expected " << core::shape_str(want.shape());
  }
  const std::vector<float> g = got.to_floats();
  const std::vector<float> w = want.to_floats();
  int64_t failures = 0;
  size_t worst = 0;
  double worst_excess = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(g[i]) - static_cast<double>(w[i]));
    const double allowed = atol + rtol * std::fabs(static_cast<double>(w[i]));
    // NaN compares false: count it as a failure, and as the worst.
    const bool ok = diff <= allowed;
    const double excess =
        std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff - allowed;
    if (!ok) ++failures;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  // Multi-index of the worst element, for a message one can act on.
  std::ostringstream index;
  size_t rest = worst;
  std::vector<int64_t> idx(want.shape().size());
  for (size_t d = idx.size(); d-- > 0;) {
    idx[d] = static_cast<int64_t>(rest % static_cast<size_t>(want.shape()[d]));
    rest /= static_cast<size_t>(want.shape()[d]);
  }
  index << core::shape_str(idx);
  return ::testing::AssertionFailure()
         << failures << " of " << g.size() << " elements differ (atol " << atol << ", rtol " << rtol
         << "); worst at flat " << worst << " index " << index.str() << ": got " << g[worst]
         << ", expected " << w[worst] << ", diff "
         << std::fabs(static_cast<double>(g[worst]) - static_cast<double>(w[worst]));
}

::testing::AssertionResult reduced_precision_matches(const OpRun& op,
                                                     const std::vector<Tensor>& inputs,
                                                     const Shape& out_shape, DType dtype) {
  std::vector<Tensor> low, rounded;
  for (const Tensor& t : inputs) {
    low.push_back(t.to(dtype));
    rounded.push_back(low.back().to(DType::F32));
  }
  // One rounding to nearest gives a relative error up to half an ulp; allow a whole ulp, since the
  // fp32 value being rounded may itself sit a little off the reference. bf16 has 8 significant
  // bits (ulp 2^-7 relative at worst), f16 11 (2^-10).
  const double rtol = dtype == DType::BF16 ? std::ldexp(1.0, -7) : std::ldexp(1.0, -10);
  const double atol = 1e-5;  // fp32 noise between code paths, for results near zero

  Tensor want = Tensor::empty(out_shape, DType::F32);
  op(rounded, want);

  Tensor f32_out = Tensor::empty(out_shape, DType::F32);
  op(low, f32_out);
  auto r = all_close(f32_out, want, 1e-5, 1e-5);
  if (!r)
    return ::testing::AssertionFailure()
           << "inputs " << core::dtype_name(dtype) << ", output f32: " << r.message();

  Tensor low_out = Tensor::empty(out_shape, dtype);
  op(rounded, low_out);
  if (low_out.dtype() != dtype) return ::testing::AssertionFailure() << "output dtype changed";
  r = all_close(low_out, want, atol, rtol);
  if (!r)
    return ::testing::AssertionFailure()
           << "inputs f32, output " << core::dtype_name(dtype) << ": " << r.message();

  Tensor all_low = Tensor::empty(out_shape, dtype);
  op(low, all_low);
  r = all_close(all_low, want, atol, rtol);
  if (!r)
    return ::testing::AssertionFailure()
           << "inputs and output " << core::dtype_name(dtype) << ": " << r.message();
  return ::testing::AssertionSuccess();
}

}  // namespace wanbatch::test
