// `wanbatch tool encode-text` on the NumPy reference's tokenizer and weights
// (tests/reference/t5_reference.py): the ids and the context it writes for the reference cases.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "fixture_path.h"
#include "io/hdf5_file.h"
#include "io/safetensors.h"
#include "reference_match.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

using testing::fixture_path;

// The text in single quotes for the shell.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class ToolEncodeTextReference : public wanbatch::testing::TempDirTest {};

TEST_F(ToolEncodeTextReference, MatchesTheReferenceCases) {
  std::ifstream json_in(fixture_path("t5_tokens.json"));
  const auto json = nlohmann::json::parse(json_in);
  const auto io = io::SafetensorsFile::open(fixture_path("t5.io.safetensors"));
  const auto meta = io->metadata();
  for (int k = 0; k < std::stoi(meta.at("cases")); ++k) {
    const std::string key = std::to_string(k);
    const auto& c = json["cases"][std::stoi(meta.at("case_" + key))];
    const std::string out = (dir_ / ("case" + key + ".h5")).string();
    const auto r = testing::run_wanbatch(
        "tool encode-text --t5 " + fixture_path("t5_hf.weights.safetensors") + " --tokenizer " +
        fixture_path("t5_spiece.model") + " --text-len " + meta.at("text_len") + " --prompt " +
        shell_quote(c["text"].get<std::string>()) + " --output " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    const io::Hdf5Reader in = io::Hdf5Reader::open(out);
    const int64_t length = std::stoll(meta.at("length_" + key));
    const auto ids = in.read("ids");
    ASSERT_EQ(ids.shape(), (core::Shape{length}));
    const auto want_ids = c["ids"].get<std::vector<int64_t>>();
    for (int64_t i = 0; i < length; ++i) EXPECT_EQ(ids.data<int64_t>()[i], want_ids[i]) << i;
    // fp32 against float64 (see t5_reference_test.cpp).
    EXPECT_TRUE(testing::matches_reference(in.read("context").to_floats(),
                                           io->tensor("context_" + key).to_floats(), 1e-5))
        << "case " << k;
  }
}

}  // namespace
}  // namespace wanbatch
