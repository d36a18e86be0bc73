// `wanbatch bench --cpu` on a tiny variant: the benchmark's machinery (random weights, timed
// forwards, the profiled breakdown, the ceilings) runs and its last line is the key=value summary
// with every field; likewise with --guided (one guided evaluation: the prompt and the negative
// prompt as one batch of two). The figures themselves are measured on the GPU machine, not
// asserted here.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "bench_line.h"
#include "run_wanbatch.h"

namespace wanbatch {
namespace {

// The Boost-free wanbatch-bench with ARGS: its exit status and output (stdout and stderr).
testing::RunResult run_bench_binary(const std::string& args) {
  const std::string command = std::string(WANBATCH_BENCH_BINARY) + " " + args + " 2>&1";
  testing::RunResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) r.output.append(buffer, n);
  r.status = pclose(pipe);
  return r;
}

TEST(Bench, CpuRunOfATinyVariantPrintsTheSummaryLine) {
  const auto r = testing::run_wanbatch(
      "bench --cpu --variant tiny-t2v --size 64x48 --frames 9 --iterations 2 --warmup 1");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto f = testing::bench_fields(r.output);
  ASSERT_FALSE(f.empty()) << r.output;
  EXPECT_EQ(f.at("variant"), "tiny-t2v");
  EXPECT_EQ(f.at("size"), "64x48");
  EXPECT_EQ(f.at("frames"), "9");
  EXPECT_EQ(f.at("gpus"), "1");
  EXPECT_EQ(f.at("sp"), "1");
  EXPECT_EQ(f.at("tokens"), "36");  // 3 latent frames of 4x3 patches
  for (const char* key : {"forward_ms", "tflops", "gemm_ms", "attention_ms", "cross_attention_ms",
                          "other_ms", "gemm_ceiling_tflops", "attention_ceiling_tflops",
                          "gemm_sustained_tflops", "attention_sustained_tflops"}) {
    EXPECT_GT(std::stod(f.at(key)), 0.0) << key;
  }
  // The text cross-attention is part of the attention's time.
  EXPECT_LT(std::stod(f.at("cross_attention_ms")), std::stod(f.at("attention_ms")));
  // The host's queueing time is part of the forward's (all of it on the CPU).
  EXPECT_GT(std::stod(f.at("enqueue_ms")), 0.0);
  EXPECT_LE(std::stod(f.at("enqueue_ms")), std::stod(f.at("forward_ms")));
  EXPECT_EQ(std::stod(f.at("communication_ms")), 0.0);
  // Every op's time, for choosing fusions.
  EXPECT_NE(r.output.find("profiled ops, ms: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layernorm_modulate "), std::string::npos) << r.output;
  // The guided mode's keys only in the guided mode: this line is as it always was.
  EXPECT_EQ(f.count("guided_ms") + f.count("cfg") + f.count("tflop"), 0u);
}

TEST(Bench, GuidedCpuRunTimesBothForwardsAsOneBatch) {
  const auto r = testing::run_wanbatch(
      "bench --cpu --guided --variant tiny-t2v --size 64x48 --frames 9 --iterations 2 --warmup 1");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto f = testing::bench_fields(r.output);
  ASSERT_FALSE(f.empty()) << r.output;
  EXPECT_EQ(f.at("gpus"), "1");
  EXPECT_EQ(f.at("sp"), "1");
  EXPECT_EQ(f.at("cfg"), "0");
  EXPECT_EQ(f.at("tokens"), "36");
  for (const char* key : {"guided_ms", "forward_ms", "tflop", "tflops", "gemm_ms", "attention_ms",
                          "gemm_ceiling_tflops", "attention_ceiling_tflops"}) {
    EXPECT_GT(std::stod(f.at(key)), 0.0) << key;
  }
  // One rank: nothing to exchange.
  EXPECT_EQ(std::stod(f.at("communication_ms")), 0.0);
  EXPECT_NE(r.output.find("TFLOP per guided evaluation (two forwards)"), std::string::npos)
      << r.output;
}

TEST(Bench, CfgParallelOnOneRankSaysWhatItNeeds) {
  const auto r = testing::run_wanbatch(
      "bench --cpu --cfg-parallel --variant tiny-t2v --size 64x48 --frames 9 --iterations 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--cfg-parallel"), std::string::npos) << r.output;
}

TEST(Bench, TheBoostFreeExecutableGivesTheSameLine) {
  const auto r =
      run_bench_binary("--cpu --variant tiny-t2v --size 64x48 --frames 9 --iterations 1");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto f = testing::bench_fields(r.output);
  ASSERT_FALSE(f.empty()) << r.output;
  EXPECT_EQ(f.at("tokens"), "36");
  EXPECT_GT(std::stod(f.at("forward_ms")), 0.0);
}

TEST(Bench, TheBoostFreeExecutableTakesGuided) {
  const auto r = run_bench_binary(
      "--cpu --guided --variant tiny-t2v --size 64x48 --frames 9 --iterations 1 --warmup 0");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto f = testing::bench_fields(r.output);
  ASSERT_FALSE(f.empty()) << r.output;
  EXPECT_EQ(f.at("cfg"), "0");
  EXPECT_GT(std::stod(f.at("guided_ms")), 0.0);
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
