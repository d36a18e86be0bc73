// Attention through cuDNN's fused flash attention (scaled dot-product attention forward), built
// with the cuDNN backend graph API: the same operation graph cudnn-frontend's SDPA forward builds,
//   S = Q·Kᵀ → S·scale → [padding mask: S where row < seq_q and col < seq_kv, else −inf]
//     → softmax (max, sub, exp, sum, div; plus the log-sum-exp statistics as a virtual output)
//     → P·V = O,
// which cuDNN's fusion engines recognise and run as one flash-attention kernel. Q, K, V and O are
// [B, L, H, D] in memory and described to cuDNN as (b, h, s, d) through strides (BSHD layout);
// Kᵀ is K's descriptor with the last two dimensions swapped. Intermediates are fp32 virtual
// tensors except P, which the backend requires in the I/O dtype. Execution plans are built once per
// (device, shape, dtype, masking) and cached for the life of the process; a shape cuDNN refuses is
// remembered too, logged once, and left to the fallback kernel.
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/attention.h"
#include "core/cuda/check.h"
#include "core/cuda/resources.h"
#include "core/error.h"
#include "core/log.h"

namespace wanbatch::core::cuda {
namespace {

// The per-batch sequence lengths the mask reads live in a small device buffer of each plan (per
// stream), rewritten only when they change. cuDNN's scratch starts kSeqLenBytes into the
// context's workspace (the front once held the lengths; the offset keeps the plans' limit).
constexpr int64_t kMaxBatch = 256;
constexpr size_t kSeqLenBytes = 4096;  // seq_q then seq_kv, int32 each, kMaxBatch entries
static_assert(2 * kMaxBatch * sizeof(int32_t) <= kSeqLenBytes);

// Ids of the tensors the variant pack binds; virtual tensors are numbered from kFirstVirtual.
enum : int64_t {
  kUidQ = 1,
  kUidK,
  kUidV,
  kUidO,
  kUidScale,
  kUidSeqQ,
  kUidSeqKv,
  kUidMaskValue,
  kFirstVirtual = 100
};

struct DescriptorDeleter {
  void operator()(void* descriptor) const noexcept { cudnnBackendDestroyDescriptor(descriptor); }
};
using Descriptor = std::unique_ptr<void, DescriptorDeleter>;

using Dims = std::vector<int64_t>;

struct PlanKey {
  int device;
  int64_t batch, heads, lq, lk, head_dim;
  DType dtype;
  bool masked;
  auto operator<=>(const PlanKey&) const = default;
};

// The sequence lengths a masked plan last read on one stream: `host` mirrors what the copies
// queued on that stream leave in `device` (2·kMaxBatch int32, allocated once, never freed).
struct SeqLens {
  int32_t* device = nullptr;
  std::vector<int32_t> host;
};

// A finalized execution plan with every descriptor it was built from, or a refusal.
struct CachedPlan {
  std::vector<Descriptor> descriptors;
  cudnnBackendDescriptor_t plan = nullptr;
  int64_t workspace_bytes = 0;
  bool available = false;
  // Per stream, so a copy is ordered after that stream's earlier executions reading the buffer.
  std::map<cudaStream_t, SeqLens> seq_lens;
};

std::string last_cudnn_error() {
  char message[1024] = {};
  cudnnGetLastErrorString(message, sizeof(message));
  return message;
}

// Builds the SDPA forward operation graph of one shape and finds an engine for it. Descriptor
// errors throw wanbatch::Error (through CUDNN_CHECK); the caller turns them into a refusal.
class GraphBuilder {
 public:
  explicit GraphBuilder(cudnnHandle_t handle) : handle_(handle) {}

  std::vector<Descriptor>& descriptors() { return owned_; }

  cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t descriptor = nullptr;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &descriptor));
    owned_.emplace_back(descriptor);
    return descriptor;
  }

  static void set(cudnnBackendDescriptor_t descriptor, cudnnBackendAttributeName_t name,
                  cudnnBackendAttributeType_t type, int64_t count, const void* values) {
    CUDNN_CHECK(cudnnBackendSetAttribute(descriptor, name, type, count, values));
  }
  static void set_desc(cudnnBackendDescriptor_t descriptor, cudnnBackendAttributeName_t name,
                       cudnnBackendDescriptor_t value) {
    set(descriptor, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value);
  }
  static void finalize(cudnnBackendDescriptor_t descriptor) {
    CUDNN_CHECK(cudnnBackendFinalize(descriptor));
  }

  cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, const Dims& dims,
                                  const Dims& strides, bool is_virtual, bool by_value = false) {
    cudnnBackendDescriptor_t t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, static_cast<int64_t>(dims.size()),
        dims.data());
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, static_cast<int64_t>(strides.size()),
        strides.data());
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    const int64_t alignment = 16;
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    const bool yes = true;
    if (is_virtual) set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes);
    if (by_value) set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    finalize(t);
    return t;
  }
  cudnnBackendDescriptor_t virtual_tensor(cudnnDataType_t type, const Dims& dims,
                                          const Dims& strides) {
    return tensor(next_virtual_uid_++, type, dims, strides, true);
  }

  // y = op(x[, b][, t]); `axis` only for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t math, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                 int64_t axis = -1) {
    cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math);
    if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    finalize(pw);
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b != nullptr) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
    if (t != nullptr) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    const float one = 1.0f;
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one);
    finalize(op);
    ops_.push_back(op);
  }

  // c = a·b over the last two dimensions; the overrides (actual per-batch M, N or K) may be null.
  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
              cudnnBackendDescriptor_t m_override, cudnnBackendDescriptor_t n_override,
              cudnnBackendDescriptor_t k_override) {
    cudnnBackendDescriptor_t mm = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
    finalize(mm);
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm);
    if (m_override != nullptr)
      set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, m_override);
    if (n_override != nullptr)
      set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, n_override);
    if (k_override != nullptr)
      set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, k_override);
    finalize(op);
    ops_.push_back(op);
  }

  void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t red = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    set(red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
    set(red, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    finalize(red);
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, red);
    finalize(op);
    ops_.push_back(op);
  }

  // Finalizes the operation graph of every op added so far.
  cudnnBackendDescriptor_t operation_graph() {
    cudnnBackendDescriptor_t graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
        static_cast<int64_t>(ops_.size()), ops_.data());
    finalize(graph);
    return graph;
  }

  // The first engine configuration, in heuristic order (mode A, then the fallback list), whose
  // plan finalizes and fits in `workspace_limit` bytes. Engines that refuse are expected here, so
  // their statuses are collected into `why` instead of thrown.
  cudnnBackendDescriptor_t find_plan(cudnnBackendDescriptor_t graph, size_t workspace_limit,
                                     int64_t& workspace_bytes, std::string& why) {
    for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      const char* mode_name = mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "fallback heuristics";
      cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
      set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
      set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
      cudnnStatus_t status = cudnnBackendFinalize(heur);
      if (status != CUDNN_STATUS_SUCCESS) {
        why += std::string(mode_name) + ": " + cudnnGetErrorString(status) + " " +
               last_cudnn_error() + "; ";
        continue;
      }
      int64_t count = 0;
      status = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
      if (status != CUDNN_STATUS_SUCCESS || count <= 0) {
        why += std::string(mode_name) + ": no engine configurations (" +
               cudnnGetErrorString(status) + "); ";
        continue;
      }
      std::vector<cudnnBackendDescriptor_t> configs;
      for (int64_t i = 0; i < count; ++i)
        configs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      int64_t returned = 0;
      status =
          cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, configs.data());
      if (status != CUDNN_STATUS_SUCCESS) {
        why += std::string(mode_name) + ": reading configurations failed (" +
               cudnnGetErrorString(status) + "); ";
        continue;
      }
      for (int64_t i = 0; i < std::min(returned, count); ++i) {
        cudnnBackendDescriptor_t plan = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        set(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
        set_desc(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[static_cast<size_t>(i)]);
        status = cudnnBackendFinalize(plan);
        if (status != CUDNN_STATUS_SUCCESS) {
          why += std::string(mode_name) + " config " + std::to_string(i) + ": " +
                 cudnnGetErrorString(status) + " " + last_cudnn_error() + "; ";
          continue;
        }
        int64_t bytes = 0, got = 0;
        status = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                          CUDNN_TYPE_INT64, 1, &got, &bytes);
        if (status != CUDNN_STATUS_SUCCESS || bytes < 0 ||
            static_cast<size_t>(bytes) > workspace_limit) {
          why += std::string(mode_name) + " config " + std::to_string(i) + ": workspace " +
                 std::to_string(bytes) + " bytes over the " + std::to_string(workspace_limit) +
                 " available; ";
          continue;
        }
        workspace_bytes = bytes;
        return plan;
      }
    }
    return nullptr;
  }

 private:
  cudnnHandle_t handle_;
  std::vector<Descriptor> owned_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_virtual_uid_ = kFirstVirtual;
};

cudnnDataType_t cudnn_dtype(DType dtype) {
  return dtype == DType::BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
}

// Builds the graph and plan for `key`; throws wanbatch::Error when cuDNN rejects a descriptor.
// The by-value scalars (scale, mask value) are rank 1 as the current frontend makes them when
// `scalar_rank` is 1, or [1, 1, 1, 1] as older cuDNN samples did when it is 4.
std::unique_ptr<CachedPlan> build_plan(cudnnHandle_t handle, const PlanKey& key, int scalar_rank,
                                       size_t workspace_limit, std::string& why) {
  const int64_t b = key.batch, h = key.heads, sq = key.lq, skv = key.lk, d = key.head_dim;
  const cudnnDataType_t io = cudnn_dtype(key.dtype);
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  GraphBuilder g(handle);

  // [B, L, H, D] memory as (b, h, s, d): strides (L·H·D, D, H·D, 1). Kᵀ swaps s and d.
  const cudnnBackendDescriptor_t q =
      g.tensor(kUidQ, io, {b, h, sq, d}, {sq * h * d, d, h * d, 1}, false);
  const cudnnBackendDescriptor_t k_t =
      g.tensor(kUidK, io, {b, h, d, skv}, {skv * h * d, d, 1, h * d}, false);
  const cudnnBackendDescriptor_t v =
      g.tensor(kUidV, io, {b, h, skv, d}, {skv * h * d, d, h * d, 1}, false);
  const cudnnBackendDescriptor_t o =
      g.tensor(kUidO, io, {b, h, sq, d}, {sq * h * d, d, h * d, 1}, false);
  const Dims one{1, 1, 1, 1};
  const Dims scalar(static_cast<size_t>(scalar_rank), 1);
  const cudnnBackendDescriptor_t scale = g.tensor(kUidScale, f32, scalar, scalar, false, true);
  cudnnBackendDescriptor_t seq_q = nullptr, seq_kv = nullptr, mask_value = nullptr;
  if (key.masked) {
    seq_q = g.tensor(kUidSeqQ, CUDNN_DATA_INT32, {b, 1, 1, 1}, one, false);
    seq_kv = g.tensor(kUidSeqKv, CUDNN_DATA_INT32, {b, 1, 1, 1}, one, false);
    mask_value = g.tensor(kUidMaskValue, f32, scalar, scalar, false, true);
  }

  const Dims s_dims{b, h, sq, skv}, s_strides{h * sq * skv, sq * skv, skv, 1};
  const Dims r_dims{b, h, sq, 1}, r_strides{h * sq, sq, 1, 1};

  const cudnnBackendDescriptor_t s = g.virtual_tensor(f32, s_dims, s_strides);
  g.matmul(q, k_t, s, seq_q, seq_kv, nullptr);
  cudnnBackendDescriptor_t scores = g.virtual_tensor(f32, s_dims, s_strides);
  g.pointwise(CUDNN_POINTWISE_MUL, f32, s, scale, nullptr, scores);

  if (key.masked) {
    const cudnnBackendDescriptor_t row = g.virtual_tensor(CUDNN_DATA_INT32, s_dims, s_strides);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scores, nullptr, nullptr, row, 2);
    const cudnnBackendDescriptor_t col = g.virtual_tensor(CUDNN_DATA_INT32, s_dims, s_strides);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scores, nullptr, nullptr, col, 3);
    const cudnnBackendDescriptor_t row_ok = g.virtual_tensor(CUDNN_DATA_BOOLEAN, s_dims, s_strides);
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, row, seq_q, nullptr, row_ok);
    const cudnnBackendDescriptor_t col_ok = g.virtual_tensor(CUDNN_DATA_BOOLEAN, s_dims, s_strides);
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, col, seq_kv, nullptr, col_ok);
    const cudnnBackendDescriptor_t keep = g.virtual_tensor(CUDNN_DATA_BOOLEAN, s_dims, s_strides);
    g.pointwise(CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, row_ok, col_ok, nullptr, keep);
    // BINARY_SELECT: y = t ? x : b, so kept scores pass and the rest become the mask value.
    const cudnnBackendDescriptor_t selected = g.virtual_tensor(f32, s_dims, s_strides);
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, scores, mask_value, keep, selected);
    scores = selected;
  }

  // Softmax over the keys, as the frontend decomposes it.
  const cudnnBackendDescriptor_t row_max = g.virtual_tensor(f32, r_dims, r_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, scores, row_max);
  const cudnnBackendDescriptor_t shifted = g.virtual_tensor(f32, s_dims, s_strides);
  g.pointwise(CUDNN_POINTWISE_SUB, f32, scores, row_max, nullptr, shifted);
  const cudnnBackendDescriptor_t exps = g.virtual_tensor(f32, s_dims, s_strides);
  g.pointwise(CUDNN_POINTWISE_EXP, f32, shifted, nullptr, nullptr, exps);
  const cudnnBackendDescriptor_t row_sum = g.virtual_tensor(f32, r_dims, r_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, exps, row_sum);
  // The log-sum-exp statistics (max + log sum) as a virtual output: the frontend emits them for
  // inference too, so this is the graph shape the fused engines are known to match.
  const cudnnBackendDescriptor_t log_sum = g.virtual_tensor(f32, r_dims, r_strides);
  g.pointwise(CUDNN_POINTWISE_LOG, f32, row_sum, nullptr, nullptr, log_sum);
  const cudnnBackendDescriptor_t stats = g.virtual_tensor(f32, r_dims, r_strides);
  g.pointwise(CUDNN_POINTWISE_ADD, f32, row_max, log_sum, nullptr, stats);
  // P in the I/O dtype: the backend's second matmul takes its A operand in that type.
  const cudnnBackendDescriptor_t p = g.virtual_tensor(io, s_dims, s_strides);
  g.pointwise(CUDNN_POINTWISE_DIV, f32, exps, row_sum, nullptr, p);

  g.matmul(p, v, o, seq_q, nullptr, seq_kv);

  const cudnnBackendDescriptor_t graph = g.operation_graph();
  auto cached = std::make_unique<CachedPlan>();
  cached->plan = g.find_plan(graph, workspace_limit, cached->workspace_bytes, why);
  cached->available = cached->plan != nullptr;
  cached->descriptors = std::move(g.descriptors());
  return cached;
}

std::string describe_key(const PlanKey& key) {
  return "B " + std::to_string(key.batch) + ", H " + std::to_string(key.heads) + ", Lq " +
         std::to_string(key.lq) + ", Lk " + std::to_string(key.lk) + ", D " +
         std::to_string(key.head_dim) + ", " + std::string(dtype_name(key.dtype)) +
         (key.masked ? ", masked" : "");
}

// Plans and cuDNN handles of the whole process. The handle is this cache's own, one per device, so
// that a plan is always executed with the handle it was built with; the stream is set per call.
// Never destroyed: cuDNN must not be torn down after the CUDA runtime at exit.
struct PlanCache {
  std::mutex mutex;
  std::map<int, cudnnHandle_t> handles;
  std::map<PlanKey, std::unique_ptr<CachedPlan>> plans;

  cudnnHandle_t handle(int device) {  // with `device` current and the mutex held
    auto it = handles.find(device);
    if (it != handles.end()) return it->second;
    cudnnHandle_t created = nullptr;
    CUDNN_CHECK(cudnnCreate(&created));
    handles.emplace(device, created);
    return created;
  }

  // The plan for `key`, built on first use (with `device` current and the mutex held).
  CachedPlan& get(const PlanKey& key) {
    auto it = plans.find(key);
    if (it != plans.end()) return *it->second;
    const size_t limit = Resources::kWorkspaceBytes - kSeqLenBytes;
    std::string why;
    std::unique_ptr<CachedPlan> built;
    // The frontend's graph first; the same graph with 4-d scalars if cuDNN refuses that one.
    for (const int scalar_rank : {1, 4}) {
      why += "[scalars of rank " + std::to_string(scalar_rank) + "] ";
      try {
        built = build_plan(handle(key.device), key, scalar_rank, limit, why);
      } catch (const Error& error) {
        why += std::string(error.what()) + " " + last_cudnn_error() + "; ";
        built = std::make_unique<CachedPlan>();
      }
      if (built->available) break;
    }
    if (built->available) {
      WB_LOG(debug) << "attention: cuDNN flash attention plan for " << describe_key(key)
                    << ", workspace " << built->workspace_bytes << " bytes";
    } else {
      WB_LOG(warning) << "attention: cuDNN refused " << describe_key(key)
                      << "; using the fallback kernel for this shape (" << why << ")";
      built->descriptors.clear();
    }
    return *plans.emplace(key, std::move(built)).first->second;
  }
};

PlanCache& plan_cache() {
  static PlanCache* cache = new PlanCache;  // intentionally leaked, see PlanCache
  return *cache;
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

}  // namespace

bool cudnn_attention_plan_available(const Context& ctx, int64_t batch, int64_t heads, int64_t lq,
                                    int64_t lk, int64_t head_dim, DType dtype, bool masked) {
  const Resources& r = resources_of(ctx, "attention");
  DeviceGuard guard(r.device());
  // Lk not a multiple of 128 needs the padding mask on cuDNN ≤ 9.15 (the frontend adds it too).
  const PlanKey key{r.device(), batch, heads, lq, lk, head_dim, dtype, masked || lk % 128 != 0};
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.get(key).available;
}

bool attention_cudnn(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                     Tensor& out, const ops::AttentionOptions& options) {
  const DType dtype = q.dtype();
  if (dtype != DType::BF16 && dtype != DType::F16) return false;
  if (k.dtype() != dtype || v.dtype() != dtype || out.dtype() != dtype) return false;
  if (options.bias.defined()) return false;
  const int64_t batch = q.dim(0), lq = q.dim(1), heads = q.dim(2), d = q.dim(3), lk = k.dim(1);
  // cuDNN's flash attention takes head dims up to 128 in multiples of 8 (and Dv = D here).
  if (v.dim(3) != d || d % 8 != 0 || d > 128) return false;
  if (batch > kMaxBatch || lq == 0 || lk == 0) return false;
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out)) return false;
  // cuDNN 9.10.0 and 9.10.1 have known bugs in bf16/f16 SDPA forward (the frontend refuses them).
  const size_t version = cudnnGetVersion();
  if (version == 91000 || version == 91001) return false;

  const Resources& r = resources_of(ctx, "attention");
  DeviceGuard guard(r.device());
  const bool has_lens = !options.k_lens.empty();
  const PlanKey key{r.device(), batch, heads, lq, lk, d, dtype, has_lens || lk % 128 != 0};
  const cudaStream_t stream = r.stream();

  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  CachedPlan& plan = cache.get(key);
  if (!plan.available) return false;

  auto* workspace = static_cast<char*>(r.workspace());
  std::vector<int64_t> uids{kUidQ, kUidK, kUidV, kUidO, kUidScale};
  std::vector<void*> pointers{q.raw(), k.raw(), v.raw(), out.raw(), nullptr};
  float scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));
  pointers[4] = &scale;  // by-value tensors are passed as host pointers
  // cuDNN before 9.10 wants the lowest float rather than −inf as the mask value.
  float mask_value = version < 91000 ? std::numeric_limits<float>::lowest()
                                     : -std::numeric_limits<float>::infinity();
  if (key.masked) {
    // seq_q = Lq for all; seq_kv = the key lengths. A length of 0 is run as 1 (cuDNN gets no
    // empty rows to divide by zero) and its output zeroed below.
    std::vector<int32_t> lens(2 * static_cast<size_t>(kMaxBatch), 0);
    for (int64_t b = 0; b < batch; ++b) {
      lens[b] = static_cast<int32_t>(lq);
      const int64_t keys = has_lens ? std::max<int64_t>(options.k_lens[b], 1) : lk;
      lens[kMaxBatch + b] = static_cast<int32_t>(keys);
    }
    SeqLens& seq = plan.seq_lens[stream];
    if (seq.device == nullptr) {
      void* buffer = nullptr;
      CUDA_CHECK(cudaMalloc(&buffer, lens.size() * sizeof(int32_t)));
      seq.device = static_cast<int32_t*>(buffer);
    }
    if (seq.host != lens) {  // rare: a new batch's key lengths
      seq.host = std::move(lens);
      // On the stream, after the executions still reading the old lengths; from pageable memory
      // the copy is staged before cudaMemcpyAsync returns.
      CUDA_CHECK(cudaMemcpyAsync(seq.device, seq.host.data(), seq.host.size() * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream));
    }
    uids.insert(uids.end(), {kUidSeqQ, kUidSeqKv, kUidMaskValue});
    pointers.insert(pointers.end(), {seq.device, seq.device + kMaxBatch, &mask_value});
  }

  cudnnBackendDescriptor_t raw_pack = nullptr;
  CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &raw_pack));
  const Descriptor pack(raw_pack);
  void* cudnn_workspace = workspace + kSeqLenBytes;
  CUDNN_CHECK(cudnnBackendSetAttribute(raw_pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                                       CUDNN_TYPE_INT64, static_cast<int64_t>(uids.size()),
                                       uids.data()));
  CUDNN_CHECK(cudnnBackendSetAttribute(raw_pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                       CUDNN_TYPE_VOID_PTR, static_cast<int64_t>(pointers.size()),
                                       pointers.data()));
  CUDNN_CHECK(cudnnBackendSetAttribute(raw_pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                       CUDNN_TYPE_VOID_PTR, 1, &cudnn_workspace));
  CUDNN_CHECK(cudnnBackendFinalize(raw_pack));

  const cudnnHandle_t handle = cache.handle(r.device());
  CUDNN_CHECK(cudnnSetStream(handle, stream));
  CUDNN_CHECK(cudnnBackendExecute(handle, plan.plan, raw_pack));

  if (has_lens) {  // batch entries whose keys are all masked get zeros
    const size_t entry_bytes = static_cast<size_t>(lq * heads * d) * dtype_size(dtype);
    for (int64_t b = 0; b < batch; ++b) {
      if (options.k_lens[b] != 0) continue;
      CUDA_CHECK(
          cudaMemsetAsync(static_cast<char*>(out.raw()) + b * entry_bytes, 0, entry_bytes, stream));
    }
  }
  return true;
}

}  // namespace wanbatch::core::cuda
