// The GEMM ops on CUDA (linear, linear_gelu_tanh, matmul) through cuBLASLt, and the GEMM benchmark
// behind `wanbatch bench`'s ceiling. Inputs are bf16/f16 (fp32 accumulation) or f32 (plain fp32,
// no TF32); bias and GELU run in cuBLASLt's epilogue. Descriptors and the heuristic's algorithm
// are cached per problem, so a steady-state call only sets the bias pointer and enqueues.
// core/ops.cpp has already checked devices, shapes and the dtype combination.
//
// Row-major tensors against column-major cuBLASLt: a row-major [R, C] matrix with leading
// dimension C is, read column-major, its transpose [C, R] with the same leading dimension. So for
// out[M, N] = x[M, K] · W[N, K]ᵀ we ask cuBLASLt for the column-major outᵀ[N, M] = W · xᵀ:
//   A = W's buffer, column-major [K, N] (ld K), op(A) = T → [N, K];
//   B = x's buffer, column-major [K, M] (ld K), op(B) = N → [K, M];
//   D = out's buffer, column-major [N, M] (ld N), cuBLAS m = N, n = M, k = K.
// The bias is then indexed by D's row (cuBLASLt's bias runs along D's rows), i.e. by the output
// feature, as PyTorch's. matmul's out[M, N] = a[M, K] · b[K, N] is likewise outᵀ = bᵀ · aᵀ with
// A = b's buffer (column-major [N, K], ld N, op N; or for transpose_b, b[N, K] is column-major
// [K, N], ld K, op T) and B = a's buffer as x above. This puts the weight in A with op T ("TN"),
// the layout Hopper's bf16 kernels are fastest in.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <compare>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/cuda/runtime.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"

namespace wanbatch::core::cuda {
namespace {

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
    default:
      throw make_error("CUDA GEMM: unsupported dtype ", dtype_name(dtype));
  }
}

// What the GEMM adds after the product. cuBLASLt's GELU is the tanh approximation (the one
// PyTorch's fused addmm + GELU path uses), i.e. gelu_tanh.
enum class Epilogue : uint32_t { kNone, kBias, kGelu, kGeluBias };

bool has_bias(Epilogue e) { return e == Epilogue::kBias || e == Epilogue::kGeluBias; }
bool has_gelu(Epilogue e) { return e == Epilogue::kGelu || e == Epilogue::kGeluBias; }

cublasLtEpilogue_t cublaslt_epilogue(Epilogue e) {
  switch (e) {
    case Epilogue::kBias:
      return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::kGelu:
      return CUBLASLT_EPILOGUE_GELU;
    case Epilogue::kGeluBias:
      return CUBLASLT_EPILOGUE_GELU_BIAS;
    default:
      return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

// The largest power of two (at most 256, cuBLASLt's default assumption) dividing the address, every
// column's offset (the leading dimension in bytes) and, for a batch, every batch member's offset:
// the heuristic must not pick a kernel that needs more alignment than the data has (a row slice of
// a tensor, or rows of an odd width).
uint32_t alignment_of(const void* pointer, int64_t ld_bytes, int64_t batch_stride_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(pointer) | uint64_t{256};
  bits |= static_cast<uint64_t>(ld_bytes);
  if (batch_stride_bytes != 0) bits |= static_cast<uint64_t>(batch_stride_bytes);
  return static_cast<uint32_t>(bits & (~bits + 1));  // lowest set bit
}

// One GEMM in cuBLASLt's (column-major) terms: D[m, n] = op(A)[m, k] · op(B)[k, n] (+ bias[m]),
// `batch` times with the given element strides between batch members.
struct GemmProblem {
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  const void* bias = nullptr;  // only with an epilogue that has a bias
  DType ab_type = DType::F32;
  DType d_type = DType::F32;
  DType bias_type = DType::F32;
  bool transpose_a = false;  // B is never transposed in our row-major mapping
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldd = 0;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
  Epilogue epilogue = Epilogue::kNone;
};

// Everything the descriptors and the heuristic's choice depend on. Pointers enter only through
// their alignment.
struct PlanKey {
  int device = 0;
  int32_t ab_type = 0, d_type = 0, bias_type = -1;
  uint32_t epilogue = 0;
  bool transpose_a = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldd = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_d = 0;
  uint32_t align_a = 0, align_b = 0, align_d = 0, align_bias = 0;
  auto operator<=>(const PlanKey&) const = default;
};

struct MatmulDescDeleter {
  void operator()(cublasLtMatmulDesc_t desc) const noexcept { cublasLtMatmulDescDestroy(desc); }
};
struct LayoutDeleter {
  void operator()(cublasLtMatrixLayout_t layout) const noexcept {
    cublasLtMatrixLayoutDestroy(layout);
  }
};
struct PreferenceDeleter {
  void operator()(cublasLtMatmulPreference_t pref) const noexcept {
    cublasLtMatmulPreferenceDestroy(pref);
  }
};
using MatmulDescPtr = std::unique_ptr<cublasLtMatmulDescOpaque_t, MatmulDescDeleter>;
using LayoutPtr = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
using PreferencePtr = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, PreferenceDeleter>;

// The descriptors and the algorithm for one PlanKey. `fused` is the epilogue cuBLASLt runs; when
// it had no algorithm for the requested one (a bias dtype it does not take, say), the rest runs
// after the GEMM as element-wise kernels. The mutex guards the bias pointer, which is written
// into the shared descriptor right before each enqueue.
struct Plan {
  std::mutex mutex;
  MatmulDescPtr desc;
  LayoutPtr a, b, d;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
  Epilogue fused = Epilogue::kNone;
};

template <typename T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}
template <typename T>
void set_layout(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attribute,
                const T& value) {
  CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, attribute, &value, sizeof(value)));
}
template <typename T>
void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attribute,
              const T& value) {
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attribute, &value, sizeof(value)));
}

LayoutPtr make_layout(DType dtype, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                      int64_t stride) {
  cublasLtMatrixLayout_t raw = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&raw, cuda_type(dtype), static_cast<uint64_t>(rows),
                                          static_cast<uint64_t>(cols), ld));
  LayoutPtr layout(raw);
  if (batch > 1) {
    set_layout(raw, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, static_cast<int32_t>(batch));
    set_layout(raw, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride);
  }
  return layout;
}

// Builds the descriptors for `epilogue` and asks the heuristic for its best algorithm within the
// workspace. Returns false when cuBLASLt has none for this combination.
bool try_plan(const Resources& r, const GemmProblem& p, const PlanKey& key, Epilogue epilogue,
              Plan& plan) {
  cublasLtMatmulDesc_t raw_desc = nullptr;
  // fp32 compute for every input type; CUBLAS_COMPUTE_32F (not ..._FAST_TF32) keeps f32 GEMMs
  // in full fp32 precision.
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  MatmulDescPtr desc(raw_desc);
  const cublasOperation_t op_a = p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = CUBLAS_OP_N;
  set_desc(raw_desc, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set_desc(raw_desc, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  set_desc(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE, cublaslt_epilogue(epilogue));
  if (has_bias(epilogue)) {
    set_desc(raw_desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
             static_cast<int32_t>(cuda_type(p.bias_type)));
    // The heuristic reads the pointer's alignment (it never dereferences it).
    set_desc(raw_desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias);
  }

  // Stored (pre-op) shapes: op(A) is [m, k], so A is [k, m] when transposed.
  LayoutPtr a = p.transpose_a ? make_layout(p.ab_type, p.k, p.m, p.lda, p.batch, p.stride_a)
                              : make_layout(p.ab_type, p.m, p.k, p.lda, p.batch, p.stride_a);
  LayoutPtr b = make_layout(p.ab_type, p.k, p.n, p.ldb, p.batch, p.stride_b);
  LayoutPtr d = make_layout(p.d_type, p.m, p.n, p.ldd, p.batch, p.stride_d);

  cublasLtMatmulPreference_t raw_pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw_pref));
  PreferencePtr pref(raw_pref);
  set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
           static_cast<uint64_t>(r.workspace_bytes()));
  set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a);
  set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b);
  set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d);
  set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d);
  // Split-K partial sums only in fp32: a reduction in the output type (bf16) would round every
  // partial sum (measured: 17× the single-rounding bound at K = 33).
  set_pref(raw_pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
           static_cast<uint32_t>(CUBLASLT_REDUCTION_SCHEME_NONE |
                                 CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE));

  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  // C is D (beta = 0, never read), so both use D's layout.
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      r.cublaslt(), raw_desc, a.get(), b.get(), d.get(), d.get(), raw_pref, 1, &result, &returned);
  // cuBLASLt answers INVALID_VALUE (not NOT_SUPPORTED) for some epilogue/type combinations, such
  // as a bias dtype other than the output's: the next candidate epilogue handles those.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE ||
      (status == CUBLAS_STATUS_SUCCESS && returned == 0)) {
    return false;
  }
  CUBLAS_CHECK(status);
  if (result.state != CUBLAS_STATUS_SUCCESS) return false;

  plan.desc = std::move(desc);
  plan.a = std::move(a);
  plan.b = std::move(b);
  plan.d = std::move(d);
  plan.algo = result.algo;
  plan.workspace_bytes = result.workspaceSize;
  plan.fused = epilogue;
  return true;
}

// The epilogues to try, best first: the full one, then without the GELU, then without the bias
// too (what the GEMM leaves out runs as element-wise kernels after it).
std::vector<Epilogue> epilogue_candidates(Epilogue wanted) {
  switch (wanted) {
    case Epilogue::kGeluBias:
      return {Epilogue::kGeluBias, Epilogue::kBias, Epilogue::kNone};
    case Epilogue::kGelu:
      return {Epilogue::kGelu, Epilogue::kNone};
    case Epilogue::kBias:
      return {Epilogue::kBias, Epilogue::kNone};
    default:
      return {Epilogue::kNone};
  }
}

PlanKey key_of(int device, const GemmProblem& p) {
  PlanKey key;
  key.device = device;
  key.ab_type = static_cast<int32_t>(p.ab_type);
  key.d_type = static_cast<int32_t>(p.d_type);
  key.bias_type = has_bias(p.epilogue) ? static_cast<int32_t>(p.bias_type) : -1;
  key.epilogue = static_cast<uint32_t>(p.epilogue);
  key.transpose_a = p.transpose_a;
  key.m = p.m;
  key.n = p.n;
  key.k = p.k;
  key.lda = p.lda;
  key.ldb = p.ldb;
  key.ldd = p.ldd;
  key.batch = p.batch;
  const bool batched = p.batch > 1;
  key.stride_a = batched ? p.stride_a : 0;
  key.stride_b = batched ? p.stride_b : 0;
  key.stride_d = batched ? p.stride_d : 0;
  const auto ab_size = static_cast<int64_t>(dtype_size(p.ab_type));
  const auto d_size = static_cast<int64_t>(dtype_size(p.d_type));
  key.align_a = alignment_of(p.a, p.lda * ab_size, key.stride_a * ab_size);
  key.align_b = alignment_of(p.b, p.ldb * ab_size, key.stride_b * ab_size);
  key.align_d = alignment_of(p.d, p.ldd * d_size, key.stride_d * d_size);
  key.align_bias = has_bias(p.epilogue) ? alignment_of(p.bias, 0, 0) : 0;
  return key;
}

// The plan for `p`, from the cache or made now (once per distinct problem: the heuristic query
// and descriptor creation never run in the steady state). Plans live as long as the process.
Plan& plan_for(const Resources& r, const GemmProblem& p) {
  static std::mutex cache_mutex;
  static std::map<PlanKey, std::unique_ptr<Plan>> cache;
  const PlanKey key = key_of(r.device(), p);
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto found = cache.find(key);
  if (found != cache.end()) return *found->second;

  auto plan = std::make_unique<Plan>();
  bool planned = false;
  for (Epilogue epilogue : epilogue_candidates(p.epilogue)) {
    if (try_plan(r, p, key, epilogue, *plan)) {
      planned = true;
      break;
    }
  }
  WB_CHECK(planned, "CUDA GEMM: cuBLASLt has no algorithm for m ", p.m, ", n ", p.n, ", k ", p.k,
           ", batch ", p.batch, ", ", dtype_name(p.ab_type), " inputs, ", dtype_name(p.d_type),
           " output (column-major, A ", p.transpose_a ? "transposed" : "not transposed", ")");
  if (plan->fused != p.epilogue) {
    WB_LOG(warning) << "CUDA GEMM: cuBLASLt has no fused " << (has_gelu(p.epilogue) ? "GELU+" : "")
                    << "bias epilogue for " << dtype_name(p.ab_type) << " inputs, "
                    << dtype_name(p.d_type) << " output, "
                    << (has_bias(p.epilogue) ? dtype_name(p.bias_type) : "no") << " bias (m " << p.m
                    << ", n " << p.n << ", k " << p.k
                    << "); running the epilogue as separate kernels";
  }
  Plan& result = *plan;
  cache.emplace(key, std::move(plan));
  return result;
}

// Enqueues `p` on r's stream; returns the epilogue the GEMM ran (the caller does the rest).
Epilogue run_gemm(const Resources& r, const GemmProblem& p) {
  Plan& plan = plan_for(r, p);
  const float alpha = 1.0f, beta = 0.0f;
  std::lock_guard<std::mutex> lock(plan.mutex);
  if (has_bias(plan.fused)) set_desc(plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias);
  CUBLAS_CHECK(cublasLtMatmul(r.cublaslt(), plan.desc.get(), &alpha, p.a, plan.a.get(), p.b,
                              plan.b.get(), &beta, p.d, plan.d.get(), p.d, plan.d.get(), &plan.algo,
                              r.workspace(), plan.workspace_bytes, r.stream()));
  return plan.fused;
}

// out[M, N] = x[M, K] · weight[N, K]ᵀ (+ bias) (then GELU), for x of any leading shape.
void linear_impl(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                 Tensor& out, bool gelu) {
  const Resources& r = resources_of(ctx, gelu ? "linear_gelu_tanh" : "linear");
  DeviceGuard guard(r.device());
  const int64_t n = weight.dim(0), k = weight.dim(1);
  const int64_t m = k > 0 ? x.numel() / k : out.numel() / std::max<int64_t>(n, 1);
  if (m == 0 || n == 0) return;
  const bool with_bias = bias.defined();
  Epilogue fused = Epilogue::kNone;
  if (k == 0) {
    fill(ctx, out, 0.0f);  // an empty sum; cuBLASLt does not take k = 0
  } else {
    GemmProblem p;
    p.a = weight.raw();
    p.b = x.raw();
    p.d = out.raw();
    p.bias = with_bias ? bias.raw() : nullptr;
    p.ab_type = x.dtype();
    p.d_type = out.dtype();
    p.bias_type = with_bias ? bias.dtype() : out.dtype();
    p.transpose_a = true;
    p.m = n;
    p.n = m;
    p.k = k;
    p.lda = k;
    p.ldb = k;
    p.ldd = n;
    p.epilogue = gelu ? (with_bias ? Epilogue::kGeluBias : Epilogue::kGelu)
                      : (with_bias ? Epilogue::kBias : Epilogue::kNone);
    // A bf16/f16 output with an epilogue that cuBLASLt cannot fuse, or rows not 16-byte aligned
    // (K = 33 in bf16 gave 7-ulp errors from the fused bias epilogue on an H200, as if the bias
    // were added after rounding): adding the bias after the rounding loses the small results of
    // cancelling sums, so these rare shapes compute in fp32 and round once. The model's GEMMs
    // (K a multiple of 64) never come here.
    const bool aligned_rows = (k * static_cast<int64_t>(dtype_size(x.dtype()))) % 16 == 0;
    if (out.dtype() != DType::F32 && p.epilogue != Epilogue::kNone &&
        (!aligned_rows || plan_for(r, p).fused != p.epilogue)) {
      Tensor wide = Tensor::empty(out.shape(), DType::F32, out.device());
      linear_impl(ctx, x, weight, bias, wide, gelu);
      cast(ctx, wide, out);
      return;
    }
    fused = run_gemm(r, p);
  }
  // Whatever cuBLASLt could not fuse (out may alias the element-wise ops' input).
  if (with_bias && !has_bias(fused)) add(ctx, out, bias, out);
  if (gelu && !has_gelu(fused)) gelu_tanh(ctx, out, out);
}

}  // namespace

void linear(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            Tensor& out) {
  linear_impl(ctx, x, weight, bias, out, /*gelu=*/false);
}

void linear_gelu_tanh(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      Tensor& out) {
  linear_impl(ctx, x, weight, bias, out, /*gelu=*/true);
}

void matmul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool transpose_b) {
  const Resources& r = resources_of(ctx, "matmul");
  DeviceGuard guard(r.device());
  const int64_t batch = a.ndim() == 3 ? a.dim(0) : 1;
  int64_t rows = a.dim(-2);  // M
  const int64_t k = a.dim(-1);
  const int64_t n = transpose_b ? b.dim(-2) : b.dim(-1);
  if (out.numel() == 0) return;
  if (k == 0) {
    fill(ctx, out, 0.0f);
    return;
  }
  // A b shared by the whole batch (2-D, or 3-D with one member): the contiguous a[B, M, K] is one
  // [B·M, K] matrix, so the batch folds into M and no zero batch stride is needed.
  const bool shared_b = b.ndim() == 2 || b.dim(0) == 1;
  int64_t gemm_batch = batch;
  if (shared_b) {
    rows *= batch;
    gemm_batch = 1;
  }
  WB_CHECK(gemm_batch <= std::numeric_limits<int32_t>::max(), "matmul: batch ", gemm_batch,
           " is too large for cuBLASLt");
  GemmProblem p;
  p.a = b.raw();
  p.b = a.raw();
  p.d = out.raw();
  p.ab_type = a.dtype();
  p.d_type = out.dtype();
  p.transpose_a = transpose_b;
  p.m = n;
  p.n = rows;
  p.k = k;
  p.lda = transpose_b ? k : n;
  p.ldb = k;
  p.ldd = n;
  p.batch = gemm_batch;
  p.stride_a = n * k;
  p.stride_b = rows * k;
  p.stride_d = rows * n;
  run_gemm(r, p);
}

namespace {

struct EventDeleter {
  void operator()(cudaEvent_t event) const noexcept { cudaEventDestroy(event); }
};
using EventPtr = std::unique_ptr<CUevent_st, EventDeleter>;

// Fills a bf16 device tensor with uniform values in [-1, 1) (never time on zeros: the tensor
// cores draw less power on them) by copying one host tile of pseudo-random values over it.
void fill_random_bf16(Tensor& t, uint64_t seed) {
  const size_t count = static_cast<size_t>(t.numel());
  const size_t tile = std::min<size_t>(count, size_t{1} << 22);
  std::vector<uint16_t> host(tile);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint16_t& v : host) {
    state ^= state << 13;  // xorshift64
    state ^= state >> 7;
    state ^= state << 17;
    const float unit = static_cast<float>(state >> 40) / static_cast<float>(1u << 24);
    v = float_to_bf16(2.0f * unit - 1.0f);
  }
  auto* dst = static_cast<unsigned char*>(t.raw());
  for (size_t done = 0; done < count; done += tile) {
    const size_t now = std::min(tile, count - done);
    copy(dst + done * sizeof(uint16_t), t.device(), host.data(), Device::cpu(),
         now * sizeof(uint16_t));
  }
}

}  // namespace

double benchmark_gemm_tflops(const Context& ctx, int64_t m, int64_t n, int64_t k, int iterations) {
  WB_CHECK(ctx.device().is_cuda(), "benchmark_gemm_tflops: needs a CUDA context, got ",
           ctx.device().str());
  WB_CHECK(m > 0 && n > 0 && k > 0 && iterations > 0, "benchmark_gemm_tflops: bad arguments m ", m,
           ", n ", n, ", k ", k, ", iterations ", iterations);
  const Resources& r = resources_of(ctx, "benchmark_gemm_tflops");
  Tensor x = Tensor::empty({m, k}, DType::BF16, ctx.device());
  Tensor w = Tensor::empty({n, k}, DType::BF16, ctx.device());
  Tensor out = Tensor::empty({m, n}, DType::BF16, ctx.device());
  fill_random_bf16(x, 1);
  fill_random_bf16(w, 2);
  DeviceGuard guard(r.device());
  // Warm-up: the first call plans (heuristic query), the next ones bring clocks up.
  for (int i = 0; i < 3; ++i) linear(ctx, x, w, Tensor(), out);
  // Events recorded back to back between the GEMMs: the stream never idles, so each interval is
  // one GEMM's device time, free of host launch latency.
  std::vector<EventPtr> events;
  for (int i = 0; i <= iterations; ++i) {
    cudaEvent_t raw = nullptr;
    CUDA_CHECK(cudaEventCreate(&raw));
    events.emplace_back(raw);
  }
  CUDA_CHECK(cudaEventRecord(events[0].get(), r.stream()));
  for (int i = 0; i < iterations; ++i) {
    linear(ctx, x, w, Tensor(), out);
    CUDA_CHECK(cudaEventRecord(events[i + 1].get(), r.stream()));
  }
  CUDA_CHECK(cudaEventSynchronize(events[iterations].get()));
  std::vector<float> ms(iterations);
  for (int i = 0; i < iterations; ++i) {
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], events[i].get(), events[i + 1].get()));
  }
  std::sort(ms.begin(), ms.end());
  const double median_ms =
      iterations % 2 ? ms[iterations / 2] : 0.5 * (ms[iterations / 2 - 1] + ms[iterations / 2]);
  WB_CHECK(median_ms > 0.0, "benchmark_gemm_tflops: no time measured");
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  return flops / (median_ms * 1e-3) / 1e12;
}

}  // namespace wanbatch::core::cuda
