// GEMM-based CPU ops: linear, linear_gelu_tanh and matmul through OpenBLAS (fp32).
#include <cblas.h>

#include "core/cpu/float_buffers.h"
#include "core/cpu/kernels.h"

namespace wanbatch::core::cpu {

void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out) {
  FloatIn xin(x), win(weight), bin(bias);
  FloatOut o(out);
  const int64_t n = weight.dim(0), k = weight.dim(1);
  const int64_t m = x.numel() / k;
  if (m > 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, xin.get(), static_cast<int>(k), win.get(),
                static_cast<int>(k), 0.0f, o.get(), static_cast<int>(n));
  }
  if (const float* b = bin.get()) {
    for (int64_t i = 0; i < m; ++i) {
      float* row = o.get() + i * n;
      for (int64_t j = 0; j < n; ++j) row[j] += b[j];
    }
  }
  o.commit();
}

// The reference for the fused op is literally its definition: linear into fp32, then the CPU
// gelu_tanh (same formula, one rounding to out's dtype at the end).
void linear_gelu_tanh(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out) {
  Tensor pre = Tensor::empty(out.shape(), DType::F32);
  linear(x, weight, bias, pre);
  gelu_tanh(pre, out);
}

void matmul(const Tensor& a, const Tensor& b, Tensor& out, bool transpose_b) {
  FloatIn ain(a), bin(b);
  FloatOut o(out);
  const int64_t batch = a.ndim() == 3 ? a.dim(0) : 1;
  const int64_t m = a.dim(-2), k = a.dim(-1);
  const int64_t n = transpose_b ? b.dim(-2) : b.dim(-1);
  const int64_t b_stride = b.ndim() == 3 ? k * n : 0;  // a 2-D b is shared by every batch
  for (int64_t i = 0; i < batch; ++i) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f,
                ain.get() + i * m * k, static_cast<int>(k), bin.get() + i * b_stride,
                static_cast<int>(transpose_b ? k : n), 0.0f, o.get() + i * m * n,
                static_cast<int>(n));
  }
  o.commit();
}

}  // namespace wanbatch::core::cpu
