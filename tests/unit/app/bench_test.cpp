// `wanbatch bench --cpu` on a tiny variant: the benchmark's machinery (random weights, timed
// forwards, the profiled breakdown, the ceilings) runs and its last line is the key=value summary
// with every field. The figures themselves are measured on the GPU machine, not asserted here.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "run_wanbatch.h"

namespace wanbatch {
namespace {

std::map<std::string, std::string> fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::istringstream in(line);
  std::string word;
  in >> word;  // "bench"
  while (in >> word) {
    const size_t eq = word.find('=');
    if (eq != std::string::npos) f[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return f;
}

TEST(Bench, CpuRunOfATinyVariantPrintsTheSummaryLine) {
  const auto r = testing::run_wanbatch(
      "bench --cpu --variant tiny-t2v --size 64x48 --frames 9 --iterations 2 --warmup 1");
  ASSERT_EQ(r.status, 0) << r.output;
  const size_t start = r.output.rfind("bench variant=");
  ASSERT_NE(start, std::string::npos) << r.output;
  const auto f = fields(r.output.substr(start, r.output.find('\n', start) - start));
  EXPECT_EQ(f.at("variant"), "tiny-t2v");
  EXPECT_EQ(f.at("size"), "64x48");
  EXPECT_EQ(f.at("frames"), "9");
  EXPECT_EQ(f.at("gpus"), "1");
  EXPECT_EQ(f.at("sp"), "1");
  EXPECT_EQ(f.at("tokens"), "36");  // 3 latent frames of 4x3 patches
  for (const char* key : {"forward_ms", "tflops", "gemm_ms", "attention_ms", "cross_attention_ms",
                          "other_ms", "gemm_ceiling_tflops", "attention_ceiling_tflops"}) {
    EXPECT_GT(std::stod(f.at(key)), 0.0) << key;
  }
  // The text cross-attention is part of the attention's time.
  EXPECT_LT(std::stod(f.at("cross_attention_ms")), std::stod(f.at("attention_ms")));
  EXPECT_EQ(std::stod(f.at("communication_ms")), 0.0);
  // Every op's time, for choosing fusions.
  EXPECT_NE(r.output.find("profiled ops, ms: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layernorm_modulate "), std::string::npos) << r.output;
}

TEST(Bench, TheBoostFreeExecutableGivesTheSameLine) {
  const std::string command = std::string(WANBATCH_BENCH_BINARY) +
                              " --cpu --variant tiny-t2v --size 64x48 --frames 9 --iterations 1 "
                              "2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  ASSERT_EQ(pclose(pipe), 0) << output;
  const size_t start = output.rfind("bench variant=");
  ASSERT_NE(start, std::string::npos) << output;
  const auto f = fields(output.substr(start, output.find('\n', start) - start));
  EXPECT_EQ(f.at("tokens"), "36");
  EXPECT_GT(std::stod(f.at("forward_ms")), 0.0);
}

TEST(Bench, WithoutAGpuItSaysToUseCpu) {
  const auto r = testing::run_wanbatch("bench --variant tiny-t2v");
  if (r.status == 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_NE(r.output.find("give --cpu"), std::string::npos) << r.output;
}

TEST(Bench, UnknownVariantIsNamed) {
  const auto r = testing::run_wanbatch("bench --cpu --variant wan9-huge");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("wan9-huge"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace wanbatch
