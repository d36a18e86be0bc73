// The CUDA row ops, fusions, RoPE, embeddings and layout ops (core/cuda/norm.cu, rope.cu,
// layout.cu) against their CPU twins, both called through core::ops on fresh random inputs, with
// every GPU output poisoned (all bits set: NaN in every float format) before the run, so an element
// the kernel never writes fails. Sizes are odd on purpose: rows 1, 37 and 1000; widths 1536 and
// 5120 (Wan), 40 and 3 (scalar paths), 9000 and 12288 (rows too wide to cache in shared memory).
// Data movement (permute, copy_slice, clamp) and the fp64 linear_combination must be bit-exact;
// the rest is held to the tolerances stated beside each test. Every test skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "cuda_test_support.h"

namespace wanbatch::core {
namespace {

using cuda_test::expect_identical;
using cuda_test::on_gpu;
using cuda_test::random_tensor;
using cuda_test::ulp_position;

const Device kGpu = Device::cuda(0);

#define SKIP_WITHOUT_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

// Random 64-bit integers (for the byte-moving ops).
Tensor random_i64(const Shape& shape, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> values(static_cast<size_t>(shape_numel(shape)));
  for (int64_t& v : values) v = static_cast<int64_t>(rng());
  return Tensor::from_vector(values, shape);
}

// A host tensor with every bit set: NaN in f32, bf16 and f16 (and -1 in the integer types).
Tensor poisoned_host(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  std::memset(t.raw(), 0xff, t.nbytes());
  return t;
}
Tensor poisoned_gpu(const Shape& shape, DType dtype) {
  return poisoned_host(shape, dtype).to(kGpu);
}

std::string name(DType d) { return std::string(dtype_name(d)); }

// f32 outputs: |gpu − cpu| ≤ atol + rtol·|cpu|. bf16/f16 outputs: the fp32 results differ by far
// less than the 16-bit spacing (2^-8 relative for bf16), so after rounding they are equal or, when
// they straddle a rounding boundary, one unit in the last place apart; tiny values near zero may
// instead differ by more units but then lie within the fp32 bound. A NaN (unwritten poison) fails.
void expect_close(const Tensor& cpu, const Tensor& gpu, double atol, double rtol,
                  const std::string& what) {
  const Tensor host = gpu.to(Device::cpu());
  ASSERT_EQ(cpu.dtype(), host.dtype()) << what;
  ASSERT_EQ(cpu.shape(), host.shape()) << what;
  const std::vector<float> c = cpu.to_floats(), g = host.to_floats();
  const bool wide = cpu.dtype() == DType::F32;
  const uint16_t* cb = wide ? nullptr : cpu.data<uint16_t>();
  const uint16_t* gb = wide ? nullptr : host.data<uint16_t>();
  int64_t failures = 0;
  double worst = 0.0;
  std::string examples;
  for (size_t i = 0; i < c.size(); ++i) {
    const double bound = atol + rtol * std::fabs(c[i]);
    const double error = std::fabs(static_cast<double>(g[i]) - c[i]);
    bool ok = error <= bound;
    if (!wide && !std::isnan(g[i]) && !std::isnan(c[i])) {
      ok = ok || std::abs(ulp_position(cb[i]) - ulp_position(gb[i])) <= 1;
    }
    if (wide) worst = std::max(worst, error / bound);
    if (!ok && ++failures <= 5) {
      examples += "\n  [" + std::to_string(i) + "] cpu " + std::to_string(c[i]) + ", gpu " +
                  std::to_string(g[i]);
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << c.size() << " outside atol "
                         << atol << " + rtol " << rtol << (wide ? "" : " and one ulp")
                         << " (f32 worst at " << worst << " of the bound)" << examples;
}

struct DtypePair {
  DType in, out;
};
// Same-dtype paths and the mixed ones the model uses (fp32 residual stream into a bf16 GEMM
// input, bf16 activations read back into fp32).
const std::vector<DtypePair> kPairs = {{DType::F32, DType::F32},
                                       {DType::BF16, DType::BF16},
                                       {DType::F32, DType::BF16},
                                       {DType::BF16, DType::F32},
                                       {DType::F16, DType::F16}};

const std::vector<int64_t> kRows = {1, 37, 1000};
const std::vector<int64_t> kWidths = {1536, 5120, 40, 3};

// Calls f(pair, rows, width) for every pair, every row count of kRows and every width of kWidths
// and then of `extra` (rows too wide to cache in shared memory: 9000 takes the scalar path, 12288
// the 4-wide one), leaving out the widths above 5120 at 1000 rows to keep the CPU side quick.
template <typename F>
void for_each_row_case(const std::vector<DtypePair>& pairs, std::initializer_list<int64_t> extra,
                       F&& f) {
  std::vector<int64_t> widths = kWidths;
  widths.insert(widths.end(), extra);
  for (const DtypePair p : pairs) {
    for (int64_t rows : kRows) {
      for (int64_t width : widths) {
        if (width > 5120 && rows == 1000) continue;
        f(p, rows, width);
      }
    }
  }
}

std::string row_label(const std::string& op, DtypePair p, int64_t rows, int64_t width) {
  return op + " " + name(p.in) + " → " + name(p.out) + " [" + std::to_string(rows) + ", " +
         std::to_string(width) + "]";
}

// The norms compute their statistics in fp32 on the GPU (per-thread partial sums, then a tree;
// the layer norms with a corrected two-pass mean) and in double on the CPU: ~1e-7 relative in
// mean and 1/std from the summation order, scaled by |normalised · (1 + scale)| ≤ ~4 and a few
// fp32 roundings in the epilogue. An emulation of these kernels (same reduction order) stayed
// below 3e-7 on every case here; 2e-6 absolute and relative leaves a margin of ~7, while a wrong
// eps, mean, weight index or modulation row is off by 1e-3 or far more.
constexpr double kNormTol = 2e-6;

TEST(CudaNorm, LayerNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  uint32_t seed = 100;
  for_each_row_case(kPairs, {9000, 12288}, [&](DtypePair p, int64_t rows, int64_t width) {
    const Tensor x = random_tensor({rows, width}, p.in, -2.5f, 3.5f, seed++);
    // Cycle through no affine, fp32 weight and bias, and a bf16 weight alone.
    const int variant = static_cast<int>(seed % 3);
    Tensor weight, bias;
    if (variant == 1) {
      weight = random_tensor({width}, DType::F32, 0.5f, 1.5f, seed++);
      bias = random_tensor({width}, DType::F32, -1.0f, 1.0f, seed++);
    } else if (variant == 2) {
      weight = random_tensor({width}, DType::BF16, 0.5f, 1.5f, seed++);
    }
    Tensor out_cpu = Tensor::empty(x.shape(), p.out);
    Tensor out_gpu = poisoned_gpu(x.shape(), p.out);
    ops::layer_norm(cpu, x, weight, bias, 1e-6f, out_cpu);
    ops::layer_norm(gpu, on_gpu(x), on_gpu(weight), on_gpu(bias), 1e-6f, out_gpu);
    gpu.synchronize();
    expect_close(out_cpu, out_gpu, kNormTol, kNormTol,
                 row_label("layer_norm/" + std::to_string(variant), p, rows, width));
  });
}

TEST(CudaNorm, RmsNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  uint32_t seed = 200;
  for_each_row_case(kPairs, {9000, 12288}, [&](DtypePair p, int64_t rows, int64_t width) {
    const Tensor x = random_tensor({rows, width}, p.in, -3.0f, 3.0f, seed++);
    const int variant = static_cast<int>(seed % 3);
    Tensor weight;
    if (variant != 0) {
      weight = random_tensor({width}, variant == 1 ? DType::F32 : DType::BF16, 0.5f, 1.5f, seed++);
    }
    Tensor out_cpu = Tensor::empty(x.shape(), p.out);
    Tensor out_gpu = poisoned_gpu(x.shape(), p.out);
    ops::rms_norm(cpu, x, weight, 1e-6f, out_cpu);
    ops::rms_norm(gpu, on_gpu(x), on_gpu(weight), 1e-6f, out_gpu);
    gpu.synchronize();
    expect_close(out_cpu, out_gpu, kNormTol, kNormTol,
                 row_label("rms_norm/" + std::to_string(variant), p, rows, width));
  });
  // T5's use: x [L, H, D]-like 3-D input normalised over the last dimension only.
  const Tensor x = random_tensor({7, 5, 64}, DType::BF16, -3.0f, 3.0f, 299);
  const Tensor w = random_tensor({64}, DType::F32, 0.5f, 1.5f, 298);
  Tensor out_cpu = Tensor::empty(x.shape(), DType::BF16);
  Tensor out_gpu = poisoned_gpu(x.shape(), DType::BF16);
  ops::rms_norm(cpu, x, w, 1e-6f, out_cpu);
  ops::rms_norm(gpu, on_gpu(x), on_gpu(w), 1e-6f, out_gpu);
  gpu.synchronize();
  expect_close(out_cpu, out_gpu, kNormTol, kNormTol, "rms_norm bf16 [7, 5, 64]");
}

// shift/scale (and gate) as [D], [1, D] and [L, D].
std::vector<Shape> modulation_shapes(int64_t rows, int64_t width) {
  return {{width}, {1, width}, {rows, width}};
}

TEST(CudaNorm, LayernormModulateMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  struct Mix {
    DType x, mod, out;
  };
  // fp32 stream and modulation into a bf16 GEMM input (the model's path), all fp32, all bf16.
  const std::vector<Mix> mixes = {{DType::F32, DType::F32, DType::BF16},
                                  {DType::F32, DType::F32, DType::F32},
                                  {DType::BF16, DType::BF16, DType::BF16},
                                  {DType::F32, DType::BF16, DType::F32}};
  uint32_t seed = 300;
  for (const Mix& m : mixes) {
    for (int64_t rows : kRows) {
      for (int64_t width : kWidths) {
        const Tensor x = random_tensor({rows, width}, m.x, -2.0f, 4.0f, seed++);
        for (const Shape& ms : modulation_shapes(rows, width)) {
          const Tensor shift = random_tensor(ms, m.mod, -1.0f, 1.0f, seed++);
          const Tensor scale = random_tensor(ms, m.mod, -0.5f, 1.0f, seed++);
          Tensor out_cpu = Tensor::empty(x.shape(), m.out);
          Tensor out_gpu = poisoned_gpu(x.shape(), m.out);
          ops::layernorm_modulate(cpu, x, shift, scale, 1e-6f, out_cpu);
          ops::layernorm_modulate(gpu, on_gpu(x), on_gpu(shift), on_gpu(scale), 1e-6f, out_gpu);
          gpu.synchronize();
          expect_close(out_cpu, out_gpu, kNormTol, kNormTol,
                       "layernorm_modulate x " + name(m.x) + " mod " + name(m.mod) + " " +
                           shape_str(ms) + " → " + name(m.out) + " " + shape_str(x.shape()));
        }
      }
    }
  }
}

// x + y·gate is one fp32 multiply and one add on both sides (the GPU avoids FMA contraction), so
// the results are normally identical; 1e-6 relative (plus 1e-7 absolute for cancellation) admits
// one rounding difference should the host compiler contract to an FMA.
TEST(CudaNorm, GatedResidualMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  struct Mix {
    DType x, y, gate, out;
  };
  const std::vector<Mix> mixes = {{DType::F32, DType::BF16, DType::F32, DType::F32},
                                  {DType::F32, DType::F32, DType::F32, DType::F32},
                                  {DType::BF16, DType::BF16, DType::BF16, DType::BF16},
                                  {DType::F32, DType::BF16, DType::BF16, DType::F32}};
  uint32_t seed = 400;
  for (const Mix& m : mixes) {
    for (int64_t rows : kRows) {
      for (int64_t width : kWidths) {
        const Tensor x = random_tensor({rows, width}, m.x, -4.0f, 4.0f, seed++);
        const Tensor y = random_tensor({rows, width}, m.y, -4.0f, 4.0f, seed++);
        for (const Shape& gs : modulation_shapes(rows, width)) {
          const Tensor gate = random_tensor(gs, m.gate, -1.0f, 1.0f, seed++);
          Tensor out_cpu = Tensor::empty(x.shape(), m.out);
          Tensor out_gpu = poisoned_gpu(x.shape(), m.out);
          ops::gated_residual(cpu, x, y, gate, out_cpu);
          ops::gated_residual(gpu, on_gpu(x), on_gpu(y), on_gpu(gate), out_gpu);
          gpu.synchronize();
          expect_close(out_cpu, out_gpu, 1e-7, 1e-6,
                       "gated_residual x " + name(m.x) + " y " + name(m.y) + " gate " +
                           name(m.gate) + " " + shape_str(gs) + " → " + name(m.out) + " " +
                           shape_str(x.shape()));
        }
      }
    }
  }
}

TEST(CudaNorm, GatedResidualInPlaceMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  for (int64_t width : {5120, 40, 3}) {
    const Tensor x = random_tensor({37, width}, DType::F32, -4.0f, 4.0f, 450);
    const Tensor y = random_tensor({37, width}, DType::BF16, -4.0f, 4.0f, 451);
    const Tensor gate = random_tensor({37, width}, DType::F32, -1.0f, 1.0f, 452);
    Tensor expected = Tensor::empty(x.shape(), DType::F32);
    ops::gated_residual(cpu, x, y, gate, expected);
    Tensor stream = on_gpu(x);  // the residual stream updated in place
    ops::gated_residual(gpu, stream, on_gpu(y), on_gpu(gate), stream);
    gpu.synchronize();
    expect_close(expected, stream, 1e-7, 1e-6,
                 "gated_residual in place, width " + std::to_string(width));
  }
}

// The residual-then-norm fusions (one pass: the register kernel for the rows that fit its
// registers — 1536, 3072, 5120, 40 — and the two-kernel path otherwise — 3, 9000, 12288), against
// gated_residual / add then the norm on the CPU. The updated stream is held to gated_residual's
// tolerance and the norm to kNormTol, as the unfused ops.
TEST(CudaNorm, ResidualNormsMatchCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  struct Mix {
    DType y, gate, out;
  };
  // The model's path (bf16 branch output, fp32 modulation, bf16 GEMM input), all fp32, and a
  // bf16 gate with an fp32 norm output.
  const std::vector<Mix> mixes = {{DType::BF16, DType::F32, DType::BF16},
                                  {DType::F32, DType::F32, DType::F32},
                                  {DType::BF16, DType::BF16, DType::F32}};
  uint32_t seed = 480;
  for (const Mix& m : mixes) {
    for (int64_t rows : kRows) {
      for (int64_t width : {1536, 3072, 5120, 40, 3, 9000, 12288}) {
        if (width > 5120 && rows == 1000) continue;
        const Tensor x = random_tensor({rows, width}, DType::F32, -3.0f, 4.0f, seed++);
        const Tensor y = random_tensor({rows, width}, m.y, -4.0f, 4.0f, seed++);
        for (const Shape& ms : modulation_shapes(rows, width)) {
          // The gate in every modulation shape, and absent (a plain sum) for the [D] case.
          for (const bool gated : {true, false}) {
            if (!gated && ms.size() != 1) continue;
            const Tensor gate = gated ? random_tensor(ms, m.gate, -1.0f, 1.0f, seed++) : Tensor();
            const Tensor shift = random_tensor(ms, DType::F32, -1.0f, 1.0f, seed++);
            const Tensor scale = random_tensor(ms, DType::F32, -0.5f, 1.0f, seed++);
            const std::string what = " y " + name(m.y) + (gated ? " gate " + name(m.gate) : "") +
                                     " " + shape_str(ms) + " → " + name(m.out) + " " +
                                     shape_str(x.shape());
            Tensor x_cpu = x.clone(), x_gpu = on_gpu(x);
            Tensor out_cpu = Tensor::empty(x.shape(), m.out);
            Tensor out_gpu = poisoned_gpu(x.shape(), m.out);
            ops::residual_layernorm_modulate(cpu, x_cpu, y, gate, shift, scale, 1e-6f, out_cpu);
            ops::residual_layernorm_modulate(gpu, x_gpu, on_gpu(y), on_gpu(gate), on_gpu(shift),
                                             on_gpu(scale), 1e-6f, out_gpu);
            gpu.synchronize();
            expect_close(x_cpu, x_gpu, 1e-7, 1e-6, "residual_layernorm_modulate stream" + what);
            expect_close(out_cpu, out_gpu, kNormTol, kNormTol,
                         "residual_layernorm_modulate" + what);
            if (ms.size() != 1) continue;  // the affine norm takes [D] parameters only
            const Tensor weight = random_tensor(ms, DType::F32, 0.5f, 1.5f, seed++);
            const Tensor bias = random_tensor(ms, DType::F32, -1.0f, 1.0f, seed++);
            x_cpu = x.clone();
            x_gpu = on_gpu(x);
            out_gpu = poisoned_gpu(x.shape(), m.out);
            ops::residual_layer_norm(cpu, x_cpu, y, gate, weight, bias, 1e-6f, out_cpu);
            ops::residual_layer_norm(gpu, x_gpu, on_gpu(y), on_gpu(gate), on_gpu(weight),
                                     on_gpu(bias), 1e-6f, out_gpu);
            gpu.synchronize();
            expect_close(x_cpu, x_gpu, 1e-7, 1e-6, "residual_layer_norm stream" + what);
            expect_close(out_cpu, out_gpu, kNormTol, kNormTol, "residual_layer_norm" + what);
          }
        }
      }
    }
  }
}

// Softmax: the GPU's expf (≤ 2 ulp) and fp32 sum (~1e-6 relative from the order) against double
// on the CPU: 1e-5 relative; 1e-9 absolute covers outputs far below any that matter.
TEST(CudaNorm, SoftmaxMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  uint32_t seed = 500;
  for_each_row_case(
      {kPairs[0], kPairs[1], kPairs[3]}, {9000}, [&](DtypePair p, int64_t rows, int64_t width) {
        const Tensor x = random_tensor({rows, width}, p.in, -8.0f, 8.0f, seed++);
        Tensor out_cpu = Tensor::empty(x.shape(), p.out);
        Tensor out_gpu = poisoned_gpu(x.shape(), p.out);
        ops::softmax(cpu, x, out_cpu);
        ops::softmax(gpu, on_gpu(x), out_gpu);
        gpu.synchronize();
        expect_close(out_cpu, out_gpu, 1e-9, 1e-5, row_label("softmax", p, rows, width));
      });
}

// Exact GELU: fp32 erfc on the GPU (≤ 5 ulp), double erf on the CPU. Where |result| > ~1e-3 that
// is within ~1e-6 relative; in the far negative tail the fp32 argument −x/√2 carries ~6e-8
// relative error, amplified by 2z² (z ≤ 5.7) to ≤ 4e-6 relative of results below 1e-6 anyway.
TEST(CudaNorm, GeluErfMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  for (const DtypePair p : kPairs) {
    const Tensor x = random_tensor({517, 2053}, p.in, -8.0f, 8.0f, 600);
    Tensor out_cpu = Tensor::empty(x.shape(), p.out);
    Tensor out_gpu = poisoned_gpu(x.shape(), p.out);
    ops::gelu_erf(cpu, x, out_cpu);
    ops::gelu_erf(gpu, on_gpu(x), out_gpu);
    gpu.synchronize();
    expect_close(out_cpu, out_gpu, 1e-6, 1e-5, row_label("gelu_erf", p, 517, 2053));
  }
}

TEST(CudaNorm, ClampMatchesCpuExactly) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  for (const DtypePair p : kPairs) {
    Tensor x = random_tensor({1000, 37}, p.in, -3.0f, 3.0f, 700);
    if (p.in == DType::F32) {  // infinities clamp too
      x.data<float>()[5] = INFINITY;
      x.data<float>()[6] = -INFINITY;
    }
    Tensor out_cpu = Tensor::empty(x.shape(), p.out);
    Tensor out_gpu = poisoned_gpu(x.shape(), p.out);
    ops::clamp(cpu, x, -1.0f, 1.5f, out_cpu);
    ops::clamp(gpu, on_gpu(x), -1.0f, 1.5f, out_gpu);
    gpu.synchronize();
    expect_identical(out_cpu, out_gpu, row_label("clamp", p, 1000, 37));
  }
  // In place.
  const Tensor x = random_tensor({3, 5, 7}, DType::BF16, -3.0f, 3.0f, 701);
  Tensor expected = Tensor::empty(x.shape(), DType::BF16);
  ops::clamp(cpu, x, -1.0f, 1.0f, expected);
  Tensor inplace = on_gpu(x);
  ops::clamp(gpu, inplace, -1.0f, 1.0f, inplace);
  gpu.synchronize();
  expect_identical(expected, inplace, "clamp bf16 in place");
}

// Σ cₖ·xₖ in double in the CPU's order with no FMA contraction, rounded once: bit-exact.
TEST(CudaNorm, LinearCombinationMatchesCpuExactly) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  const Shape shape = {16, 37, 61};
  const std::vector<double> coefficients = {0.75, -1.0 / 3.0, 2.5e-3, 1.0 + 1e-12, -0.5};
  const std::vector<DType> input_dtypes = {DType::F32, DType::BF16, DType::F32, DType::F16,
                                           DType::F32};
  std::vector<Tensor> hosts, devices;
  for (size_t k = 0; k < coefficients.size(); ++k) {
    hosts.push_back(
        random_tensor(shape, input_dtypes[k], -5.0f, 5.0f, 800 + static_cast<uint32_t>(k)));
    devices.push_back(on_gpu(hosts.back()));
  }
  for (size_t count : {size_t{1}, size_t{3}, size_t{5}}) {
    const std::vector<double> c(coefficients.begin(), coefficients.begin() + count);
    std::vector<const Tensor*> in_cpu, in_gpu;
    for (size_t k = 0; k < count; ++k) {
      in_cpu.push_back(&hosts[k]);
      in_gpu.push_back(&devices[k]);
    }
    for (DType out_dtype : {DType::F32, DType::BF16}) {
      Tensor out_cpu = Tensor::empty(shape, out_dtype);
      Tensor out_gpu = poisoned_gpu(shape, out_dtype);
      ops::linear_combination(cpu, c, in_cpu, out_cpu);
      ops::linear_combination(gpu, c, in_gpu, out_gpu);
      gpu.synchronize();
      expect_identical(out_cpu, out_gpu,
                       "linear_combination of " + std::to_string(count) + " → " + name(out_dtype));
    }
  }
  // out aliasing the first input (the solver's x ← a·x + b·v).
  Tensor expected = Tensor::empty(shape, DType::F32);
  ops::linear_combination(cpu, {0.9, 0.1}, {&hosts[0], &hosts[2]}, expected);
  Tensor x = on_gpu(hosts[0]);
  ops::linear_combination(gpu, {0.9, 0.1}, {&x, &devices[2]}, x);
  gpu.synchronize();
  expect_identical(expected, x, "linear_combination in place");
}

// cos/sin in double on both sides (device ≤ 2 ulp in double), rounded once to fp32: at most one
// fp32 ulp apart (values ≤ 1, so ≤ 6e-8); 2e-7 absolute.
TEST(CudaNorm, SinusoidalEmbeddingMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  const Tensor t = Tensor::from_vector<float>({0.0f, 1.0f, 999.0f, 500.5f, 17.25f, 0.001f}, {6});
  for (int64_t dim : {256, 6, 2}) {
    for (DType in : {DType::F32, DType::BF16}) {
      for (DType out_dtype : {DType::F32, DType::BF16}) {
        const Tensor ts = in == DType::F32 ? t : t.to(in);
        Tensor out_cpu = Tensor::empty({6, dim}, out_dtype);
        Tensor out_gpu = poisoned_gpu({6, dim}, out_dtype);
        ops::sinusoidal_embedding(cpu, ts, out_cpu);
        ops::sinusoidal_embedding(gpu, on_gpu(ts), out_gpu);
        gpu.synchronize();
        expect_close(out_cpu, out_gpu, 2e-7, 0.0,
                     "sinusoidal_embedding " + name(in) + " → " + name(out_dtype) + " dim " +
                         std::to_string(dim));
      }
    }
  }
}

// RoPE: the CPU rotates in double; the GPU rotates in fp32 (one FMA per output) with cos/sin
// computed in double by the same host formula and rounded to fp32. Its error is at most
// 2^-24·(|re·cos| + 2·|im·sin| + |out|) ≈ 1e-7 relative, under 1e-6 for inputs ≤ 4 even where the
// two products cancel; bf16/f16 outputs then differ by at most one ulp (expect_close allows it).
// 1e-6 absolute and relative: a wrong frequency split, pair layout or position is off by O(1).
constexpr double kRopeTol = 1e-6;

struct RopeCase {
  ops::RopeGrid grid;
  int64_t tokens, heads, head_dim, offset;
};
const std::vector<RopeCase> kRopeCases = {
    {{3, 4, 6}, 78, 3, 128, 0},         // whole sequence, 6 padding tokens
    {{3, 4, 6}, 30, 2, 128, 50},        // a later Ulysses rank: tokens 50..79, 72.. padding
    {{21, 30, 52}, 37, 1, 128, 30000},  // deep into a 480p-sized grid
    {{2, 3, 5}, 37, 4, 64, 1},          // other head sizes (parts 24/20/20 and 4/4/4)
    {{2, 3, 5}, 1, 5, 12, 29},          // one token, the last real one
};

TEST(CudaNorm, Rope3dMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  uint32_t seed = 900;
  for (const RopeCase& c : kRopeCases) {
    for (const DtypePair p : {kPairs[0], kPairs[1], kPairs[2], kPairs[3]}) {
      const Shape shape = {c.tokens, c.heads, c.head_dim};
      const Tensor x = random_tensor(shape, p.in, -4.0f, 4.0f, seed++);
      Tensor out_cpu = Tensor::empty(shape, p.out);
      Tensor out_gpu = poisoned_gpu(shape, p.out);
      ops::rope_3d(cpu, x, c.grid, c.offset, out_cpu);
      ops::rope_3d(gpu, on_gpu(x), c.grid, c.offset, out_gpu);
      gpu.synchronize();
      const std::string what = "rope_3d " + name(p.in) + " → " + name(p.out) + " " +
                               shape_str(shape) + " offset " + std::to_string(c.offset);
      expect_close(out_cpu, out_gpu, kRopeTol, kRopeTol, what);
      // Padding tokens are copied unchanged: bit for bit when the dtypes agree.
      const int64_t real = c.grid.frames * c.grid.height * c.grid.width;
      const int64_t first_pad = std::clamp<int64_t>(real - c.offset, 0, c.tokens);
      if (p.in == p.out && first_pad < c.tokens) {
        expect_identical(x.slice(first_pad, c.tokens), out_gpu.slice(first_pad, c.tokens),
                         what + " padding");
      }
    }
  }
}

TEST(CudaNorm, Rope3dInPlaceMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  for (DType dtype : {DType::F32, DType::BF16}) {
    const RopeCase& c = kRopeCases[1];
    const Tensor x = random_tensor({c.tokens, c.heads, c.head_dim}, dtype, -4.0f, 4.0f, 950);
    Tensor expected = Tensor::empty(x.shape(), dtype);
    ops::rope_3d(cpu, x, c.grid, c.offset, expected);
    Tensor inplace = on_gpu(x);
    ops::rope_3d(gpu, inplace, c.grid, c.offset, inplace);
    gpu.synchronize();
    expect_close(expected, inplace, kRopeTol, kRopeTol, "rope_3d in place " + name(dtype));
  }
}

// The fusion against the CPU composition (rms_norm then rope_3d, fp32 between): the norm's
// tolerance, since the fp32 rotation adds ≈1e-7 relative (see kRopeTol) to normalised values ≤ 3.
TEST(CudaNorm, RmsNormRopeMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  struct Case {
    ops::RopeGrid grid;
    int64_t tokens, heads, head_dim, offset;
  };
  const std::vector<Case> cases = {
      {{2, 3, 5}, 37, 40, 128, 0},   // 14B q/k (5120 wide); 7 padding tokens
      {{2, 3, 5}, 37, 12, 128, 20},  // 1.3B (1536 wide); a later rank ending in padding
      {{4, 16, 16}, 1000, 12, 128, 17}, {{2, 3, 5}, 1, 40, 128, 3},
      {{3, 4, 6}, 20, 72, 128, 50},  // 9216 wide: the uncached path
  };
  uint32_t seed = 1000;
  for (const Case& c : cases) {
    for (const DtypePair p : {kPairs[0], kPairs[1], kPairs[2]}) {
      const Shape shape = {c.tokens, c.heads, c.head_dim};
      const Tensor x = random_tensor(shape, p.in, -3.0f, 3.0f, seed++);
      const Tensor w = random_tensor({c.heads * c.head_dim}, DType::F32, 0.5f, 1.5f, seed++);
      for (const bool with_weight : {true, false}) {
        const Tensor weight = with_weight ? w : Tensor();
        Tensor out_cpu = Tensor::empty(shape, p.out);
        Tensor out_gpu = poisoned_gpu(shape, p.out);
        ops::rms_norm_rope(cpu, x, weight, 1e-6f, c.grid, c.offset, out_cpu);
        ops::rms_norm_rope(gpu, on_gpu(x), with_weight ? on_gpu(w) : Tensor(), 1e-6f, c.grid,
                           c.offset, out_gpu);
        gpu.synchronize();
        expect_close(out_cpu, out_gpu, kNormTol, kNormTol,
                     "rms_norm_rope " + name(p.in) + " → " + name(p.out) + " " + shape_str(shape) +
                         " offset " + std::to_string(c.offset) + (with_weight ? " weighted" : ""));
      }
    }
  }
  // In place, bf16 (the model's q and k).
  const Tensor x = random_tensor({37, 12, 128}, DType::BF16, -3.0f, 3.0f, 1099);
  const Tensor w = random_tensor({12 * 128}, DType::F32, 0.5f, 1.5f, 1098);
  Tensor expected = Tensor::empty(x.shape(), DType::BF16);
  ops::rms_norm_rope(cpu, x, w, 1e-6f, {2, 3, 5}, 10, expected);
  Tensor inplace = on_gpu(x);
  ops::rms_norm_rope(gpu, inplace, on_gpu(w), 1e-6f, {2, 3, 5}, 10, inplace);
  gpu.synchronize();
  expect_close(expected, inplace, kNormTol, kNormTol, "rms_norm_rope bf16 in place");
}

TEST(CudaLayout, PermuteMatchesCpuExactly) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  struct Case {
    Shape shape;
    std::vector<int> perm;
  };
  const std::vector<Case> cases = {
      {{37, 12, 128}, {1, 0, 2}},                            // [L, H, D] → [H, L, D]
      {{12, 37, 128}, {1, 0, 2}},                            // and back
      {{5, 7, 3}, {2, 0, 1}},                                // innermost axis moves
      {{4, 6, 8, 1, 2, 2, 16}, {6, 0, 3, 1, 4, 2, 5}},       // unpatchify-like (c first)
      {{2, 3, 1, 4, 5, 1, 2, 3}, {7, 6, 5, 4, 3, 2, 1, 0}},  // 8 axes, reversed
      {{3, 1, 5}, {1, 0, 2}},                                // only a size-1 axis moves: a copy
      {{33, 65}, {1, 0}},                                    // plain transpose, odd sizes
      {{9, 10, 11}, {0, 1, 2}},                              // identity
  };
  uint32_t seed = 1200;
  for (const Case& c : cases) {
    Shape out_shape;
    for (int d : c.perm) out_shape.push_back(c.shape[d]);
    for (DType dtype : {DType::F32, DType::BF16, DType::I64, DType::F8E4M3}) {
      const Tensor x = dtype == DType::I64
                           ? random_i64(c.shape, seed++)
                           : random_tensor(c.shape, DType::F32, -4.0f, 4.0f, seed++).to(dtype);
      Tensor out_cpu = Tensor::empty(out_shape, dtype);
      Tensor out_gpu = poisoned_gpu(out_shape, dtype);
      ops::permute(cpu, x, c.perm, out_cpu);
      ops::permute(gpu, on_gpu(x), c.perm, out_gpu);
      gpu.synchronize();
      expect_identical(out_cpu, out_gpu, "permute " + name(dtype) + " " + shape_str(c.shape));
    }
  }
  // A view starting one row in, so that only narrower words are aligned.
  const Tensor base = random_tensor({6, 5, 6}, DType::BF16, -1.0f, 1.0f, 1299);
  const Tensor x = base.slice(1, 6);
  const Tensor x_gpu = on_gpu(base).slice(1, 6);
  Tensor out_cpu = Tensor::empty({5, 5, 6}, DType::BF16);
  Tensor out_gpu = poisoned_gpu({5, 5, 6}, DType::BF16);
  ops::permute(cpu, x, {1, 0, 2}, out_cpu);
  ops::permute(gpu, x_gpu, {1, 0, 2}, out_gpu);
  gpu.synchronize();
  expect_identical(out_cpu, out_gpu, "permute of an offset view");
}

TEST(CudaLayout, CopySliceMatchesCpuExactly) {
  SKIP_WITHOUT_GPU();
  const Context cpu = Context::cpu(), gpu = Context::cuda(0);
  struct Case {
    Shape src, dst;
    int dim;
    int64_t src_begin, dst_begin, count;
  };
  const std::vector<Case> cases = {
      {{4, 10, 6}, {4, 8, 6}, 1, 3, 2, 5},    // a middle axis: strided rows
      {{10, 6}, {12, 6}, 0, 2, 5, 7},         // the leading axis: one contiguous copy
      {{5, 7, 9}, {5, 7, 4}, -1, 8, 3, 1},    // the last axis, one entry per row
      {{3, 16, 5}, {3, 16, 5}, 1, 0, 0, 16},  // the whole tensor
      {{3, 4, 5}, {3, 6, 5}, 1, 1, 2, 0},     // nothing
      {{2, 3, 40}, {2, 3, 41}, 2, 1, 0, 37},  // odd runs
  };
  uint32_t seed = 1300;
  for (const Case& c : cases) {
    for (DType dtype : {DType::F32, DType::BF16, DType::I64, DType::F8E4M3}) {
      const Tensor src = dtype == DType::I64
                             ? random_i64(c.src, seed++)
                             : random_tensor(c.src, DType::F32, -4.0f, 4.0f, seed++).to(dtype);
      // Both destinations start as the same poison; only the slice may change.
      Tensor dst_cpu = poisoned_host(c.dst, dtype);
      Tensor dst_gpu = poisoned_gpu(c.dst, dtype);
      ops::copy_slice(cpu, src, c.dim, c.src_begin, dst_cpu, c.dst_begin, c.count);
      ops::copy_slice(gpu, on_gpu(src), c.dim, c.src_begin, dst_gpu, c.dst_begin, c.count);
      gpu.synchronize();
      expect_identical(dst_cpu, dst_gpu,
                       "copy_slice " + name(dtype) + " " + shape_str(c.src) + " → " +
                           shape_str(c.dst) + " along " + std::to_string(c.dim));
    }
  }
}

}  // namespace
}  // namespace wanbatch::core
