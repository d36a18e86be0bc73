// Reproducible initial noise: a counter-based generator (Philox4x32-10 + Box-Muller) keyed by the
// item's seed and each element's global index, so an item's noise is the same on the CPU and the
// GPU, on any number of ranks, and for any slice a rank generates of it.
//
// The mapping below is a file-format-level contract: changing any step changes everyone's videos
// for the same seed (tests/unit/model/philox_noise_test.cpp pins values to catch that).
//
//   key     = {low32(seed), high32(seed)}
//   element i (global flat index, row-major over the latent [C, F, H, W]) lives in block j = i / 4
//   counter = {low32(j), high32(j), 0, 0};  r0..r3 = philox4x32_10(counter, key)
//   u1 = (r0 + 1) · 2^-32 ∈ (0, 1],  u2 = r1 · 2^-32 ∈ [0, 1)
//   n0 = sqrt(-2 ln u1) · cos(2π u2),  n1 = sqrt(-2 ln u1) · sin(2π u2)
//   n2, n3 likewise from (r2, r3)
//   element i = float(n[i % 4]): computed in double, rounded once to float.
//
// Philox4x32-10 is Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11), exactly
// as Random123's philox4x32 with 10 rounds (its kat_vectors are the unit test's known answers).
//
// Bit-identical on every device: the math below uses only +, -, ×, ÷ and sqrt in double, which
// IEEE 754 rounds correctly everywhere, and no libm (whose log/sin/cos differ between glibc and
// CUDA). That holds only if the compiler does not fuse a·b + c into one FMA (one rounding instead
// of two): philox_noise.cpp is compiled with -ffp-contract=off (model/CMakeLists.txt), and a CUDA
// kernel calling these functions must be compiled with -fmad=false (or spell every product and sum
// with __dmul_rn / __dadd_rn). Any other translation unit that needs the exact bits must do the
// same; the functions are inline, so the flags of the unit that calls them decide. (Checked on an
// H200, nvcc 13: with -fmad=false, 2 × 4.8M normals equal the CPU's in every double bit; with
// nvcc's default -fmad=true about 4% of the doubles differ, though rarely after rounding to float.)
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/tensor.h"

// Callable from host code and, under nvcc, from CUDA kernels.
#if defined(__CUDACC__)
#define WANBATCH_HD __host__ __device__
#else
#define WANBATCH_HD
#endif

namespace wanbatch::model::sampling {

// ---- Philox4x32-10 --------------------------------------------------------------------------

struct PhiloxCounter {  // also the generator's output block
  uint32_t v[4];
};
struct PhiloxKey {
  uint32_t v[2];
};

// Random123's constants: the round multipliers and the Weyl sequence bumping the key each round.
inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

WANBATCH_HD inline PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  uint32_t k0 = key.v[0], k1 = key.v[1];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kPhiloxW0;  // the bump after the last round is unused, as in Random123
    k1 += kPhiloxW1;
  }
  return PhiloxCounter{{c0, c1, c2, c3}};
}

// ---- libm-free double math (only + - × ÷ sqrt, so every IEEE device gets the same bits) ------

namespace detail {
// ln 2 split so that e · kLn2Hi is exact for |e| < 2^20 (fdlibm's split): the low part carries
// the rest, keeping ln(2^e · m) accurate to the last bit of the sum.
inline constexpr double kLn2Hi = 0x1.62e42fee00000p-1;
inline constexpr double kLn2Lo = 0x1.a39ef35793c76p-33;
inline constexpr double kHalfPi = 0x1.921fb54442d18p+0;  // π/2 rounded to double
inline constexpr double kSqrtHalf = 0x1.6a09e667f3bcdp-1;

WANBATCH_HD inline uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}

WANBATCH_HD inline double double_of(uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}

WANBATCH_HD inline double sqrt_rn(double x) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(x);  // correctly rounded in CUDA too (IEEE 754 requires it)
#else
  return std::sqrt(x);
#endif
}
}  // namespace detail

// Natural log of a positive normal double (the noise uses u ∈ [2^-32, 1]). Writes x = 2^e · m with
// m ∈ [√½, √2), then ln m = 2 atanh(s), s = (m-1)/(m+1), |s| ≤ 0.172, as its Taylor series to
// s^21 (the next term is below 2^-60 relative). About 1-2 ulp; the unit test bounds it.
WANBATCH_HD inline double log_positive(double x) {
  const uint64_t bits = detail::bits_of(x);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  // The same mantissa with exponent 0: m ∈ [1, 2).
  double m = detail::double_of((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
  if (m > 2.0 * detail::kSqrtHalf) {  // [√2, 2) → [√½, 1): exact halving
    m *= 0.5;
    e += 1;
  }
  const double s = (m - 1.0) / (m + 1.0);  // m - 1 is exact (Sterbenz)
  const double z = s * s;
  double p = 1.0 / 21.0;
  p = p * z + 1.0 / 19.0;
  p = p * z + 1.0 / 17.0;
  p = p * z + 1.0 / 15.0;
  p = p * z + 1.0 / 13.0;
  p = p * z + 1.0 / 11.0;
  p = p * z + 1.0 / 9.0;
  p = p * z + 1.0 / 7.0;
  p = p * z + 1.0 / 5.0;
  p = p * z + 1.0 / 3.0;
  const double two_s = 2.0 * s;
  const double log_m = two_s + two_s * (z * p);
  const double de = static_cast<double>(e);
  return de * detail::kLn2Hi + (log_m + de * detail::kLn2Lo);
}

// sin(2πu) and cos(2πu) for u ∈ [0, 1]. The reduction is exact because it works on u, not on a
// rounded 2πu: 4u = q + f with integer q (the quadrant) and f ∈ [-½, ½] (both exact in double),
// then x = (π/2)·f ∈ [-π/4, π/4] and Taylor series to x^17 / x^16 (next terms below 2^-55).
// Exact zeros and ±1 at multiples of ¼, and relative accuracy near them that 2π·u cannot give.
WANBATCH_HD inline void sincos_2pi(double u, double* sin_out, double* cos_out) {
  const double t = 4.0 * u;  // exact: a power-of-two scaling
  int q = static_cast<int>(t);
  double f = t - static_cast<double>(q);  // exact: the fraction bits of t
  if (f > 0.5) {                          // round to the nearest quadrant instead
    f -= 1.0;                             // exact
    q += 1;
  }
  const double x = detail::kHalfPi * f;
  const double z = x * x;

  double ps = 1.0 / 355687428096000.0;  // 1/17!
  ps = ps * z - 1.0 / 1307674368000.0;  // 1/15!
  ps = ps * z + 1.0 / 6227020800.0;
  ps = ps * z - 1.0 / 39916800.0;
  ps = ps * z + 1.0 / 362880.0;
  ps = ps * z - 1.0 / 5040.0;
  ps = ps * z + 1.0 / 120.0;
  ps = ps * z - 1.0 / 6.0;
  const double s = x + x * (z * ps);

  double pc = 1.0 / 20922789888000.0;  // 1/16!
  pc = pc * z - 1.0 / 87178291200.0;   // 1/14!
  pc = pc * z + 1.0 / 479001600.0;
  pc = pc * z - 1.0 / 3628800.0;
  pc = pc * z + 1.0 / 40320.0;
  pc = pc * z - 1.0 / 720.0;
  pc = pc * z + 1.0 / 24.0;
  pc = pc * z - 0.5;
  const double c = 1.0 + z * pc;

  switch (q & 3) {  // rotate by q quarter turns
    case 0:
      *sin_out = s;
      *cos_out = c;
      break;
    case 1:
      *sin_out = c;
      *cos_out = -s;
      break;
    case 2:
      *sin_out = -s;
      *cos_out = -c;
      break;
    default:
      *sin_out = -c;
      *cos_out = s;
      break;
  }
}

// Box-Muller on one pair of 32-bit words: u1 = (a + 1)·2^-32 ∈ (0, 1] keeps ln u1 finite,
// u2 = b·2^-32 ∈ [0, 1). Both are exact in double.
WANBATCH_HD inline void box_muller(uint32_t a, uint32_t b, double* n_cos, double* n_sin) {
  constexpr double kTwoPowMinus32 = 0x1p-32;
  const double u1 = (static_cast<double>(a) + 1.0) * kTwoPowMinus32;
  const double u2 = static_cast<double>(b) * kTwoPowMinus32;
  const double radius = detail::sqrt_rn(-2.0 * log_positive(u1));
  double s, c;
  sincos_2pi(u2, &s, &c);
  *n_cos = radius * c;
  *n_sin = radius * s;
}

// The four normals (in double, before the rounding to float) of block j = i / 4 for `seed`.
WANBATCH_HD inline void philox_normal_block(uint64_t seed, uint64_t block, double out[4]) {
  const PhiloxKey key{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
  const PhiloxCounter counter{
      {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  const PhiloxCounter r = philox4x32_10(counter, key);
  box_muller(r.v[0], r.v[1], &out[0], &out[1]);
  box_muller(r.v[2], r.v[3], &out[2], &out[3]);
}

// ---- the noise --------------------------------------------------------------------------------

// out[k] = the standard normal of global index first_index + k, k < count: a rank holding a slice
// of an item's latent generates just that slice. first_index + count must not pass 2^64 - 1.
void philox_normal(uint64_t seed, uint64_t first_index, float* out, size_t count);

// An item's whole initial noise: a host f32 tensor of `shape` (the latent [C, F, H, W]), element
// i being philox_normal's index i.
core::Tensor initial_noise(uint64_t seed, const core::Shape& shape);

}  // namespace wanbatch::model::sampling
