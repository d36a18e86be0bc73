// The CUDA attention op (core/cuda/attention.cu, attention_cudnn.cpp) against its CPU twin
// (core/cpu/attention.cpp), on fresh random inputs with NaN-poisoned outputs: the fallback kernel
// in f32 (plain and with the T5 bias), both paths in bf16 (and cuDNN in f16) on the same rounded
// inputs as the CPU, cuDNN against the fallback, whether cuDNN builds plans for the shapes Wan
// runs, and cuDNN's throughput at Wan 1.3B's sequence length. Every test skips without a GPU.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/cuda/attention.h"
#include "core/cuda/resources.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "cuda_test_support.h"

namespace wanbatch::core {
namespace {

using cuda_test::random_tensor;

// Sets WANBATCH_ATTENTION=fallback for a scope (the CUDA op then skips cuDNN).
class ForceFallback {
 public:
  ForceFallback() { setenv("WANBATCH_ATTENTION", "fallback", 1); }
  ~ForceFallback() { unsetenv("WANBATCH_ATTENTION"); }
  ForceFallback(const ForceFallback&) = delete;
  ForceFallback& operator=(const ForceFallback&) = delete;
};

struct Inputs {
  Tensor q, k, v;  // host
  ops::AttentionOptions options;
};

// q, k ∈ [-3, 3) make the softmax peaked (score std ≈ 3 at D = 64 or 128), so that every output is
// dominated by a few keys and is of order 0.1–1 rather than a near-zero average: a wrong mask or
// score then shows far above the tolerances below. v ∈ [-1, 1).
Inputs make_inputs(int64_t batch, int64_t lq, int64_t lk, int64_t heads, int64_t d, int64_t dv,
                   DType dtype, std::vector<int64_t> k_lens, uint32_t seed) {
  Inputs in;
  in.q = random_tensor({batch, lq, heads, d}, dtype, -3.0f, 3.0f, seed);
  in.k = random_tensor({batch, lk, heads, d}, dtype, -3.0f, 3.0f, seed + 1);
  in.v = random_tensor({batch, lk, heads, dv}, dtype, -1.0f, 1.0f, seed + 2);
  in.options.k_lens = std::move(k_lens);
  return in;
}

Tensor run_cpu(const Inputs& in) {
  Tensor out = Tensor::empty({in.q.dim(0), in.q.dim(1), in.q.dim(2), in.v.dim(3)}, DType::F32);
  ops::attention(Context::cpu(), in.q, in.k, in.v, out, in.options);
  return out;
}

// Runs on the GPU into a NaN-filled output of `out_dtype` and returns it on the host.
Tensor run_gpu(const Context& gpu, const Inputs& in, DType out_dtype, bool fallback) {
  const Device device = Device::cuda(0);
  ops::AttentionOptions options = in.options;
  if (options.bias.defined()) options.bias = options.bias.to(device);
  Tensor out =
      Tensor::empty({in.q.dim(0), in.q.dim(1), in.q.dim(2), in.v.dim(3)}, out_dtype, device);
  ops::fill(gpu, out, std::nanf(""));
  const Tensor q = in.q.to(device), k = in.k.to(device), v = in.v.to(device);
  if (fallback) {
    ForceFallback force;
    ops::attention(gpu, q, k, v, out, options);
  } else {
    ops::attention(gpu, q, k, v, out, options);
  }
  gpu.synchronize();
  return out.to(Device::cpu());
}

// |got − expected| ≤ atol + rtol·|expected| everywhere (NaN fails), with the worst offenders named.
void expect_close(const Tensor& expected, const Tensor& got, double atol, double rtol,
                  const std::string& what) {
  ASSERT_EQ(expected.shape(), got.shape()) << what;
  const std::vector<float> e = expected.to_floats(), g = got.to_floats();
  int64_t failures = 0;
  double worst = 0.0;
  std::string examples;
  for (size_t i = 0; i < e.size(); ++i) {
    const double bound = atol + rtol * std::fabs(e[i]);
    const double error = std::fabs(static_cast<double>(g[i]) - e[i]);
    worst = std::isnan(error) ? INFINITY : std::max(worst, error / bound);
    if (!(error <= bound) && ++failures <= 5) {
      examples += "\n  [" + std::to_string(i) + "] expected " + std::to_string(e[i]) + ", got " +
                  std::to_string(g[i]);
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << e.size() << " outside atol "
                         << atol << " + rtol " << rtol << " (worst at " << worst << " of the bound)"
                         << examples;
}

// Batch entries with key length 0 must be exactly zero.
void expect_zero_entries(const Tensor& got, const std::vector<int64_t>& k_lens,
                         const std::string& what) {
  const std::vector<float> g = got.to_floats();
  const size_t entry = static_cast<size_t>(got.numel() / got.dim(0));
  for (size_t b = 0; b < k_lens.size(); ++b) {
    if (k_lens[b] != 0) continue;
    int64_t nonzero = 0;
    for (size_t i = b * entry; i < (b + 1) * entry; ++i) nonzero += g[i] != 0.0f;
    EXPECT_EQ(nonzero, 0) << what << ": batch entry " << b << " has no keys but " << nonzero
                          << " non-zero outputs";
  }
}

std::string label(const std::string& path, DType dtype, int64_t batch, int64_t lq, int64_t lk,
                  int64_t heads, int64_t d, const std::vector<int64_t>& k_lens) {
  std::ostringstream s;
  s << path << " " << dtype_name(dtype) << " B " << batch << ", Lq " << lq << ", Lk " << lk
    << ", H " << heads << ", D " << d;
  if (!k_lens.empty()) {
    s << ", k_lens";
    for (int64_t len : k_lens) s << " " << len;
  }
  return s.str();
}

// f32, fallback kernel vs CPU. Both compute the scores and P·V in fp32; they differ in summation
// order (OpenBLAS sgemm vs one FMA chain per lane) and in exp (expf ≤ 2 ulp vs glibc): with scores
// of order 1–10 those differences are ~1e-6 absolute in the scores and relative in the weights, so
// ~1e-6 in outputs of magnitude ≤ 1. atol = rtol = 1e-5 leaves a margin of about 10.
constexpr double kF32Tolerance = 1e-5;

TEST(CudaAttention, FallbackF32MatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  struct Case {
    int64_t batch, lq, lk, heads, d, dv;
    std::vector<int64_t> k_lens;
  };
  const std::vector<Case> cases = {
      {2, 1000, 1000, 12, 128, 128, {}},    {2, 1000, 1000, 12, 128, 128, {1000, 515}},
      {2, 300, 1000, 4, 64, 64, {0, 777}},   // Lq ≠ Lk, one entry with no keys
      {1, 77, 130, 3, 40, 72, {}},           // head dims not multiples of 32, D ≠ Dv
      {2, 33, 200, 2, 256, 256, {200, 63}},  // the largest head dim
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const Inputs in =
        make_inputs(c.batch, c.lq, c.lk, c.heads, c.d, c.dv, DType::F32, c.k_lens, seed += 3);
    const Tensor expected = run_cpu(in);
    const Tensor got = run_gpu(gpu, in, DType::F32, /*fallback=*/false);  // f32 never goes to cuDNN
    const std::string what =
        label("fallback", DType::F32, c.batch, c.lq, c.lk, c.heads, c.d, c.k_lens);
    expect_close(expected, got, kF32Tolerance, kF32Tolerance, what);
    expect_zero_entries(got, c.k_lens, what);
  }
}

// Head dims over the kernel's 256 (the Wan VAEs' middle attention: one head over 384 or 640
// channels) go through GEMMs (attention_by_gemm): f32 against the CPU, with the kernel's tolerance
// (cuBLASLt sums in other orders), key lengths and several heads included; a bf16 output is
// rounded once to bf16 (half an ulp of the fp32 result).
TEST(CudaAttention, WideHeadsMatchCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  struct Case {
    int64_t batch, lq, lk, heads, d, dv;
    std::vector<int64_t> k_lens;
  };
  uint32_t seed = 200;
  for (const Case& c : {Case{1, 600, 600, 1, 384, 384, {}}, Case{1, 160, 160, 1, 640, 640, {}},
                        Case{2, 70, 90, 3, 300, 264, {90, 0}}}) {
    const Inputs in =
        make_inputs(c.batch, c.lq, c.lk, c.heads, c.d, c.dv, DType::F32, c.k_lens, seed += 3);
    const Tensor expected = run_cpu(in);
    const std::string what = label("gemm", DType::F32, c.batch, c.lq, c.lk, c.heads, c.d, c.k_lens);
    expect_close(expected, run_gpu(gpu, in, DType::F32, false), kF32Tolerance, kF32Tolerance, what);
    const Tensor rounded = run_gpu(gpu, in, DType::BF16, false);
    expect_close(expected, rounded, 1e-5, 1.0 / 256, what + " → bf16");
    expect_zero_entries(rounded, c.k_lens, what);
  }
}

// The T5 encoder's case: f32, D = 64, an additive relative-position bias [H, Lq, Lk] and padded
// prompts (key lengths). Same tolerance as above: the bias is added exactly on both sides.
TEST(CudaAttention, FallbackWithT5BiasMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  struct Case {
    int64_t batch, lq, lk, heads;
    std::vector<int64_t> k_lens;
  };
  for (const Case& c : {Case{2, 512, 512, 8, {512, 300}}, Case{2, 200, 333, 4, {333, 0}}}) {
    Inputs in = make_inputs(c.batch, c.lq, c.lk, c.heads, 64, 64, DType::F32, c.k_lens, 101);
    in.options.bias = random_tensor({c.heads, c.lq, c.lk}, DType::F32, -5.0f, 5.0f, 104);
    const Tensor expected = run_cpu(in);
    const std::string what =
        label("fallback + bias", DType::F32, c.batch, c.lq, c.lk, c.heads, 64, c.k_lens);
    // f32 out, and bf16 out (the fp32 result rounded once: within bf16's half-ulp, 2^-9 relative)
    expect_close(expected, run_gpu(gpu, in, DType::F32, false), kF32Tolerance, kF32Tolerance, what);
    const Tensor rounded = run_gpu(gpu, in, DType::BF16, false);
    expect_close(expected, rounded, 1e-5, 1.0 / 256, what + " → bf16");
    expect_zero_entries(rounded, c.k_lens, what);
  }
}

// bf16/f16 inputs, both paths vs the CPU on the same rounded inputs (computed in fp32). The
// fallback accumulates in fp32 and rounds the output once (≤ 2^-9 relative in bf16). cuDNN also
// rounds the softmax weights P to bf16 before P·V (each ≤ 2^-9 relative, so ≤ 2^-9·max|v| on the
// sum) and the output once: at most ~4e-3 against outputs of order 0.1–1. atol 1e-2 (v ∈ [-1, 1))
// plus rtol 1e-2 leaves a margin of 2–5 while still catching any masking or scaling error, which
// moves outputs by tenths.
constexpr double kBf16Atol = 1e-2;
constexpr double kBf16Rtol = 1e-2;

struct HalfCase {
  int64_t batch, lq, lk, heads, d;
  std::vector<int64_t> k_lens;
};
const std::vector<HalfCase> kHalfCases = {
    {2, 1000, 1000, 12, 128, {}},            // Lk not a multiple of 128: masked graph
    {2, 1000, 1000, 12, 128, {1000, 515}},   // key length not a multiple of 64
    {2, 4096, 4096, 12, 128, {}},            // the unmasked graph (Wan's self-attention)
    {2, 4096, 4096, 12, 128, {0, 1000}},     // an entry with no keys: zeros
    {2, 1000, 4096, 12, 128, {4096, 2049}},  // Lq ≠ Lk
    {2, 1000, 1000, 12, 64, {777, 1000}},    // head dim 64
};

TEST(CudaAttention, Bf16BothPathsMatchCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  uint32_t seed = 200;
  for (const HalfCase& c : kHalfCases) {
    const Inputs in =
        make_inputs(c.batch, c.lq, c.lk, c.heads, c.d, c.d, DType::BF16, c.k_lens, seed += 3);
    const Tensor expected = run_cpu(in);
    EXPECT_TRUE(cuda::cudnn_attention_plan_available(gpu, c.batch, c.heads, c.lq, c.lk, c.d,
                                                     DType::BF16, !c.k_lens.empty()))
        << label("cuDNN refused", DType::BF16, c.batch, c.lq, c.lk, c.heads, c.d, c.k_lens)
        << " (see the warning logged above)";
    for (const bool fallback : {true, false}) {
      const std::string what = label(fallback ? "fallback" : "cuDNN", DType::BF16, c.batch, c.lq,
                                     c.lk, c.heads, c.d, c.k_lens);
      const Tensor got = run_gpu(gpu, in, DType::BF16, fallback);
      expect_close(expected, got, kBf16Atol, kBf16Rtol, what);
      expect_zero_entries(got, c.k_lens, what);
    }
    // bf16 in, f32 out: always the fallback kernel (cuDNN writes the input dtype), unrounded.
    const Tensor wide = run_gpu(gpu, in, DType::F32, false);
    expect_close(expected, wide, 1e-5, 1e-5,
                 label("fallback → f32", DType::BF16, c.batch, c.lq, c.lk, c.heads, c.d, c.k_lens));
  }
}

TEST(CudaAttention, F16BothPathsMatchCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const HalfCase& c = kHalfCases[1];
  const Inputs in = make_inputs(c.batch, c.lq, c.lk, c.heads, c.d, c.d, DType::F16, c.k_lens, 301);
  const Tensor expected = run_cpu(in);
  EXPECT_TRUE(cuda::cudnn_attention_plan_available(gpu, c.batch, c.heads, c.lq, c.lk, c.d,
                                                   DType::F16, true));
  for (const bool fallback : {true, false}) {
    // f16 has 3 more mantissa bits than bf16: the bf16 bounds hold with room to spare.
    expect_close(expected, run_gpu(gpu, in, DType::F16, fallback), kBf16Atol, kBf16Rtol,
                 label(fallback ? "fallback" : "cuDNN", DType::F16, c.batch, c.lq, c.lk, c.heads,
                       c.d, c.k_lens));
  }
}

// cuDNN against the fallback directly, without the CPU: the two bf16 error budgets above add up.
TEST(CudaAttention, CudnnMatchesFallback) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const std::vector<int64_t> k_lens = {4000, 1};
  const Inputs in = make_inputs(2, 4096, 4096, 12, 128, 128, DType::BF16, k_lens, 401);
  const Tensor fallback = run_gpu(gpu, in, DType::BF16, true);
  const Tensor cudnn = run_gpu(gpu, in, DType::BF16, false);
  expect_close(fallback, cudnn, 2 * kBf16Atol, 2 * kBf16Rtol,
               label("cuDNN vs fallback", DType::BF16, 2, 4096, 4096, 12, 128, k_lens));
}

// One plan, key lengths changing between calls queued back to back on one stream: each call must
// read its own lengths (the plan's length buffer is rewritten, in stream order, only on change).
TEST(CudaAttention, CudnnKeyLengthsChangeBetweenQueuedCalls) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const Device device = Device::cuda(0);
  const std::vector<std::vector<int64_t>> lens = {
      {1000, 515}, {300, 1000}, {1000, 515}, {1000, 1000}};
  Inputs in = make_inputs(2, 1000, 1000, 12, 128, 128, DType::BF16, {}, 501);
  const Tensor q = in.q.to(device), k = in.k.to(device), v = in.v.to(device);
  std::vector<Tensor> outs;
  for (const std::vector<int64_t>& l : lens) {  // no synchronisation between the calls
    ops::AttentionOptions options;
    options.k_lens = l;
    Tensor out = Tensor::empty({2, 1000, 12, 128}, DType::BF16, device);
    ops::fill(gpu, out, std::nanf(""));
    ops::attention(gpu, q, k, v, out, options);
    outs.push_back(out);
  }
  gpu.synchronize();
  for (size_t i = 0; i < lens.size(); ++i) {
    in.options.k_lens = lens[i];
    expect_close(run_cpu(in), outs[i].to(Device::cpu()), kBf16Atol, kBf16Rtol,
                 label("cuDNN queued", DType::BF16, 2, 1000, 1000, 12, 128, lens[i]));
  }
}

// The shapes Wan runs must get a cuDNN plan (a refusal would silently cost ~20× in speed).
TEST(CudaAttention, CudnnBuildsPlansForWanShapes) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  // Self-attention of Wan2.1 1.3B at 832×480 (12 heads) and A14B at 1280×720 (40 heads), and
  // cross-attention to the 512 text tokens with their lengths.
  EXPECT_TRUE(
      cuda::cudnn_attention_plan_available(gpu, 1, 12, 32760, 32760, 128, DType::BF16, false));
  EXPECT_TRUE(
      cuda::cudnn_attention_plan_available(gpu, 1, 40, 75600, 75600, 128, DType::BF16, false));
  EXPECT_TRUE(cuda::cudnn_attention_plan_available(gpu, 2, 12, 32760, 512, 128, DType::BF16, true));
}

// cuDNN's throughput at Wan 1.3B's self-attention (B 1, L 32 760, H 12, D 128, bf16).
// docs/device.md measured 556–602 TFLOP/s for cuDNN on an H200 and 345–356 for FlashAttention-2;
// the fallback kernel manages a few tens. 300 TFLOP/s tells "cuDNN's fused kernel ran" from
// anything else with room for an H100 and for clocks; the figure is printed for bench/RESULTS.md.
TEST(CudaAttention, CudnnThroughputAtWanScale) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  const int64_t batch = 1, len = 32760, heads = 12, d = 128;
  ASSERT_TRUE(
      cuda::cudnn_attention_plan_available(gpu, batch, heads, len, len, d, DType::BF16, false));
  const Device device = Device::cuda(0);
  const Tensor q = random_tensor({batch, len, heads, d}, DType::BF16, -3.0f, 3.0f, 501).to(device);
  const Tensor k = random_tensor({batch, len, heads, d}, DType::BF16, -3.0f, 3.0f, 502).to(device);
  const Tensor v = random_tensor({batch, len, heads, d}, DType::BF16, -1.0f, 1.0f, 503).to(device);
  Tensor out = Tensor::empty({batch, len, heads, d}, DType::BF16, device);
  for (int i = 0; i < 3; ++i) ops::attention(gpu, q, k, v, out);  // warm-up
  const cudaStream_t stream = gpu.cuda_resources()->stream();
  cudaEvent_t start = nullptr, stop = nullptr;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  std::vector<float> times;
  for (int i = 0; i < 10; ++i) {
    cudaEventRecord(start, stream);
    ops::attention(gpu, q, k, v, out);
    cudaEventRecord(stop, stream);
    ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  const double median_ms = times[times.size() / 2];
  const double flops = 4.0 * batch * heads * static_cast<double>(len) * len * d;
  const double tflops = flops / (median_ms * 1e-3) / 1e12;
  std::printf("cuDNN attention B %lld, L %lld, H %lld, D %lld bf16: %.3f ms median, %.0f TFLOP/s\n",
              static_cast<long long>(batch), static_cast<long long>(len),
              static_cast<long long>(heads), static_cast<long long>(d), median_ms, tflops);
  EXPECT_GT(tflops, 300.0);
  const std::vector<float> host = out.to_floats();
  EXPECT_TRUE(std::all_of(host.begin(), host.end(), [](float x) { return std::isfinite(x); }));
}

}  // namespace
}  // namespace wanbatch::core
