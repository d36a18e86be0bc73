// conv3d on CUDA through cuDNN's convolution forward (NCDHW, cross-correlation like PyTorch's
// Conv3d). Padding cuDNN can express (the same on both sides of a dimension) is passed to it; the
// asymmetric remainder (causal time padding, ZeroPad2d((0, 1, 0, 1)) before a stride-2 conv) is
// applied by copying x into a zero-padded scratch tensor first. The bias is added by a small
// kernel after the convolution. Descriptors and the chosen algorithm are built once per shape and
// cached.
//
// Precision: f32 runs with CUDNN_FMA_MATH, so no TF32 (results match the CPU to summation order);
// bf16 and f16 accumulate in fp32 and may use tensor cores.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

struct TensorDescDeleter {
  void operator()(cudnnTensorStruct* d) const noexcept { cudnnDestroyTensorDescriptor(d); }
};
struct FilterDescDeleter {
  void operator()(cudnnFilterStruct* d) const noexcept { cudnnDestroyFilterDescriptor(d); }
};
struct ConvDescDeleter {
  void operator()(cudnnConvolutionStruct* d) const noexcept {
    cudnnDestroyConvolutionDescriptor(d);
  }
};

// What a plan depends on: the device (algorithms differ by architecture), the data type, and the
// shapes and geometry cuDNN sees (x after any explicit padding).
struct PlanKey {
  int device = 0;
  DType dtype = DType::F32;
  std::array<int, 5> x{};  // N, C, T, H, W
  std::array<int, 5> w{};  // O, C, kt, kh, kw
  std::array<int, 3> pad{};
  std::array<int, 3> stride{};
  auto operator<=>(const PlanKey&) const = default;
};

struct Plan {
  std::unique_ptr<cudnnTensorStruct, TensorDescDeleter> x, y;
  std::unique_ptr<cudnnFilterStruct, FilterDescDeleter> w;
  std::unique_ptr<cudnnConvolutionStruct, ConvDescDeleter> conv;
  std::array<int, 5> y_dims{};
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t workspace_bytes = 0;
};

cudnnDataType_t cudnn_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return CUDNN_DATA_FLOAT;
    case DType::BF16:
      return CUDNN_DATA_BFLOAT16;
    case DType::F16:
      return CUDNN_DATA_HALF;
    default:
      throw make_error("conv3d: CUDA takes f32, bf16 or f16, got ", dtype_name(dtype));
  }
}

// Packed NCDHW strides of `dims`.
std::array<int, 5> packed_strides(const std::array<int, 5>& dims) {
  std::array<int, 5> strides{};
  int s = 1;
  for (int d = 4; d >= 0; --d) {
    strides[d] = s;
    s *= dims[d];
  }
  return strides;
}

int checked_int(int64_t v, const char* what) {
  WB_CHECK(v >= 0 && v <= INT32_MAX, "conv3d: ", what, " ", v, " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

bool uses_tensor_cores(cudnnMathType_t math) {
  return math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// FFT and Winograd transform the inputs and lose precision beyond a plain sum of products; f32 is
// the precision path (the VAE runs in f32 as the reference does), so it keeps to direct sums.
bool sums_products_directly(cudnnConvolutionFwdAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || algo == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}

// Element count of packed dims; cuDNN's legacy descriptors take int strides.
int64_t element_count(const std::array<int, 5>& dims) {
  int64_t n = 1;
  for (int d : dims) n *= d;
  return n;
}

// Builds the descriptors and picks the first algorithm in cuDNN's heuristic order that supports
// the problem, fits the context's workspace and, for f32, sums products directly without tensor
// cores (no TF32). The heuristic (not a timed search) keeps the choice the same from run to run.
std::unique_ptr<Plan> make_plan(const Resources& r, const PlanKey& key) {
  auto plan = std::make_unique<Plan>();
  const cudnnDataType_t type = cudnn_type(key.dtype);

  WB_CHECK(element_count(key.x) <= INT32_MAX, "conv3d: input of ", element_count(key.x),
           " elements exceeds what cuDNN's tensor descriptors address (2^31 − 1); split it");
  cudnnTensorDescriptor_t x_desc = nullptr;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc));
  plan->x.reset(x_desc);
  const std::array<int, 5> x_strides = packed_strides(key.x);
  CUDNN_CHECK(cudnnSetTensorNdDescriptor(x_desc, type, 5, key.x.data(), x_strides.data()));

  cudnnFilterDescriptor_t w_desc = nullptr;
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc));
  plan->w.reset(w_desc);
  CUDNN_CHECK(cudnnSetFilterNdDescriptor(w_desc, type, CUDNN_TENSOR_NCHW, 5, key.w.data()));

  cudnnConvolutionDescriptor_t conv_desc = nullptr;
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc));
  plan->conv.reset(conv_desc);
  const std::array<int, 3> dilation{1, 1, 1};
  CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(conv_desc, 3, key.pad.data(), key.stride.data(),
                                              dilation.data(), CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT));
  // FMA_MATH, not DEFAULT_MATH: on Ampere and later the default permits TF32 for f32 data.
  const cudnnMathType_t requested = key.dtype == DType::F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc, requested));

  CUDNN_CHECK(
      cudnnGetConvolutionNdForwardOutputDim(conv_desc, x_desc, w_desc, 5, plan->y_dims.data()));
  WB_CHECK(element_count(plan->y_dims) <= INT32_MAX, "conv3d: output of ",
           element_count(plan->y_dims),
           " elements exceeds what cuDNN's tensor descriptors address (2^31 − 1); split it");
  cudnnTensorDescriptor_t y_desc = nullptr;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc));
  plan->y.reset(y_desc);
  const std::array<int, 5> y_strides = packed_strides(plan->y_dims);
  CUDNN_CHECK(cudnnSetTensorNdDescriptor(y_desc, type, 5, plan->y_dims.data(), y_strides.data()));

  int max_count = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(r.cudnn(), &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int returned = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(r.cudnn(), x_desc, w_desc, conv_desc, y_desc,
                                                     static_cast<int>(perf.size()), &returned,
                                                     perf.data()));
  // Takes `algo` under `math` if cuDNN accepts the pair and its workspace fits.
  auto try_algo = [&](cudnnConvolutionFwdAlgo_t algo, cudnnMathType_t math) {
    size_t bytes = 0;
    if (cudnnSetConvolutionMathType(conv_desc, math) != CUDNN_STATUS_SUCCESS ||
        cudnnGetConvolutionForwardWorkspaceSize(r.cudnn(), x_desc, w_desc, conv_desc, y_desc, algo,
                                                &bytes) != CUDNN_STATUS_SUCCESS ||
        bytes > r.workspace_bytes()) {
      return false;
    }
    plan->algo = algo;
    plan->workspace_bytes = bytes;
    return true;
  };
  for (int i = 0; i < returned; ++i) {
    const cudnnConvolutionFwdAlgoPerf_t& p = perf[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (key.dtype == DType::F32 &&
        (uses_tensor_cores(p.mathType) || !sums_products_directly(p.algo))) {
      continue;
    }
    // The math type the heuristic chose the algorithm under; f32 stays on FMA whatever it says.
    if (try_algo(p.algo, key.dtype == DType::F32 ? CUDNN_FMA_MATH : p.mathType)) return plan;
  }
  // The heuristic offered nothing usable: implicit GEMM supports every configuration and needs
  // no workspace.
  if (try_algo(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, requested)) return plan;
  throw make_error("conv3d: cuDNN has no forward algorithm for x [", key.x[0], ", ", key.x[1], ", ",
                   key.x[2], ", ", key.x[3], ", ", key.x[4], "] ", dtype_name(key.dtype),
                   ", weight [", key.w[0], ", ", key.w[1], ", ", key.w[2], ", ", key.w[3], ", ",
                   key.w[4], "] within a ", r.workspace_bytes(), "-byte workspace",
                   key.dtype == DType::F32 ? " without TF32" : "");
}

// Plans live as long as the process: they hold only descriptors (host memory), a few per layer
// shape of a model. Shared by every context; cuDNN reads descriptors concurrently without harm.
const Plan& plan_for(const Resources& r, const PlanKey& key) {
  static std::mutex mutex;
  static std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, make_plan(r, key)).first;
  return *it->second;
}

// Stream-ordered scratch for the explicitly padded input, returned to the pool when the
// convolution queued before the free has run; freed on the error path too.
class StreamScratch {
 public:
  StreamScratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
    CUDA_CHECK(cudaMallocAsync(&data_, bytes, stream));
  }
  ~StreamScratch() {
    if (data_) cudaFreeAsync(data_, stream_);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  void* get() const { return data_; }

 private:
  void* data_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace

void conv3d(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            const ops::Conv3dParams& params, Tensor& out) {
  WB_CHECK(x.dtype() == weight.dtype() && x.dtype() == out.dtype(),
           "conv3d: CUDA needs x, weight and out of one dtype, got ", x.describe(), ", ",
           weight.describe(), " and ", out.describe());
  if (out.numel() == 0) return;
  const Resources& r = resources_of(ctx, "conv3d");
  DeviceGuard guard(r.device());

  const bool batched = x.ndim() == 5;
  const int64_t batch = batched ? x.dim(0) : 1;
  const std::array<int64_t, 3> dims{x.dim(-3), x.dim(-2), x.dim(-1)};
  const auto& p = params.padding;

  // cuDNN takes the symmetric part of each dimension's padding; the rest is copied in explicitly.
  PlanKey key;
  key.device = r.device();
  key.dtype = x.dtype();
  std::array<int64_t, 3> front{}, padded_dims{};
  bool explicit_pad = false;
  for (int d = 0; d < 3; ++d) {
    const int64_t common = std::min(p[2 * d], p[2 * d + 1]);
    front[d] = p[2 * d] - common;
    padded_dims[d] = dims[d] + p[2 * d] + p[2 * d + 1] - 2 * common;
    explicit_pad = explicit_pad || padded_dims[d] != dims[d];
    key.pad[d] = checked_int(common, "padding");
    key.stride[d] = checked_int(params.stride[d], "stride");
  }
  key.x = {checked_int(batch, "batch"), checked_int(x.dim(-4), "channels"),
           checked_int(padded_dims[0], "frames"), checked_int(padded_dims[1], "height"),
           checked_int(padded_dims[2], "width")};
  for (int d = 0; d < 5; ++d) key.w[d] = checked_int(weight.dim(d), "weight dimension");

  const Plan& plan = plan_for(r, key);
  const std::array<int, 5> expected{key.x[0], checked_int(out.dim(-4), "output channels"),
                                    checked_int(out.dim(-3), "output frames"),
                                    checked_int(out.dim(-2), "output height"),
                                    checked_int(out.dim(-1), "output width")};
  WB_CHECK(plan.y_dims == expected, "conv3d: cuDNN's output shape differs from ", out.describe());

  std::unique_ptr<StreamScratch> scratch;
  const void* input = x.raw();
  if (explicit_pad) {
    const int64_t planes = batch * x.dim(-4);
    const size_t bytes =
        static_cast<size_t>(planes * padded_dims[0] * padded_dims[1] * padded_dims[2]) *
        dtype_size(x.dtype());
    scratch = std::make_unique<StreamScratch>(bytes, r.stream());
    conv3d_pad_input(ctx, x.raw(), x.dtype(), planes, dims, front, padded_dims, scratch->get());
    input = scratch->get();
  }

  // alpha and beta are floats for every data type here (the compute type is float).
  const float alpha = 1.0f, beta = 0.0f;
  CUDNN_CHECK(cudnnConvolutionForward(r.cudnn(), &alpha, plan.x.get(), input, plan.w.get(),
                                      weight.raw(), plan.conv.get(), plan.algo, r.workspace(),
                                      plan.workspace_bytes, &beta, plan.y.get(), out.raw()));
  if (bias.defined()) conv3d_add_bias(ctx, out, bias);
}

}  // namespace wanbatch::core::cuda
