// Philox noise: the generator against Random123's known answers, the seed/index mapping (pinned
// values, slices, the counter's high word), the distribution, and the libm-free math against the
// standard library.
#include "model/sampling/philox_noise.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "core/error.h"

namespace wanbatch::model::sampling {
namespace {

std::vector<float> normals(uint64_t seed, uint64_t first_index, size_t count) {
  std::vector<float> out(count);
  philox_normal(seed, first_index, out.data(), count);
  return out;
}

std::vector<uint32_t> bits_of(const std::vector<float>& values) {
  std::vector<uint32_t> bits;
  for (float v : values) bits.push_back(std::bit_cast<uint32_t>(v));
  return bits;
}

void expect_block(PhiloxCounter counter, PhiloxKey key, std::vector<uint32_t> expected) {
  const PhiloxCounter got = philox4x32_10(counter, key);
  EXPECT_EQ(std::vector<uint32_t>(got.v, got.v + 4), expected);
}

// Random123's tests/kat_vectors, the three philox4x32 10 lines (counter, key → output).
TEST(Philox4x32, MatchesRandom123KnownAnswers) {
  expect_block({{0, 0, 0, 0}}, {{0, 0}}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  expect_block({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, {{0xffffffff, 0xffffffff}},
               {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  expect_block({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, {{0xa4093822, 0x299f31d0}},
               {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

// The mapping is a contract (changing it changes every video for a given seed). These bits were
// computed by this implementation and agree with an independent Python script that implements
// the mapping with math.log / math.cos / math.sin and rounds to np.float32.
TEST(PhiloxNoise, PinnedValuesForSeed42) {
  EXPECT_EQ(bits_of(normals(42, 0, 8)),
            (std::vector<uint32_t>{0xbf785e5c, 0x3e46ace8, 0xbf9e28d2, 0x3ff6433b, 0xbd95e030,
                                   0x3e0e7a0f, 0xbf8da733, 0x3ea742fd}));
  // -0.97018981, 0.19401896, -1.23562074, 1.92392671, ...
  EXPECT_FLOAT_EQ(normals(42, 0, 1)[0], -0.97018981f);
}

// A 64-bit seed (both key words) and a slice straddling blocks 2^32 - 1 and 2^32 (the counter's
// high word), again cross-checked with the Python script.
TEST(PhiloxNoise, PinnedValuesUseTheHighWordsOfSeedAndBlock) {
  EXPECT_EQ(bits_of(normals(0x123456789abcdef0ull, (1ull << 34) - 2, 4)),
            (std::vector<uint32_t>{0xbf6d604e, 0xc01ba9e9, 0xbf50ac1f, 0x3ebf196f}));
}

TEST(PhiloxNoise, MapsSeedToKeyAndBlockToCounter) {
  const uint64_t seed = 0x0123456789abcdefull;
  const uint64_t block = 0x00000005fffffffeull;
  const PhiloxCounter r =
      philox4x32_10({{0xfffffffe, 0x00000005, 0, 0}}, {{0x89abcdef, 0x01234567}});
  double n[4];
  box_muller(r.v[0], r.v[1], &n[0], &n[1]);
  box_muller(r.v[2], r.v[3], &n[2], &n[3]);
  const std::vector<float> got = normals(seed, block * 4, 4);
  for (int lane = 0; lane < 4; ++lane) EXPECT_EQ(got[lane], static_cast<float>(n[lane])) << lane;
  // Box-Muller: u1 = (r0 + 1)·2^-32 gives the radius, u2 = r1·2^-32 the angle; cos first.
  const double u1 = (r.v[0] + 1.0) / 4294967296.0, u2 = r.v[1] / 4294967296.0;
  EXPECT_NEAR(n[0], std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2), 1e-12);
  EXPECT_NEAR(n[1], std::sqrt(-2 * std::log(u1)) * std::sin(2 * std::numbers::pi * u2), 1e-12);
}

TEST(PhiloxNoise, SameSeedGivesTheSameBits) {
  const core::Tensor a = initial_noise(7, {4, 3, 6, 10});
  const core::Tensor b = initial_noise(7, {4, 3, 6, 10});
  ASSERT_EQ(a.nbytes(), b.nbytes());
  EXPECT_EQ(std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()), 0);
}

TEST(PhiloxNoise, DifferentSeedsDiffer) {
  const size_t n = 4096;
  const std::vector<float> base = normals(42, 0, n);
  // Neighbouring seeds, and seeds that differ only in the key's high word.
  for (uint64_t other : {43ull, 41ull, 42ull + (1ull << 32), 42ull + (1ull << 63)}) {
    const std::vector<float> v = normals(other, 0, n);
    size_t equal = 0;
    for (size_t i = 0; i < n; ++i) equal += v[i] == base[i];
    EXPECT_EQ(equal, 0u) << "seed " << other;
  }
}

// What lets a rank generate only its slice: any [first, first + count) equals those elements of
// the whole tensor, whatever the alignment to blocks of 4.
TEST(PhiloxNoise, SliceEqualsTheSameElementsOfTheWholeTensor) {
  const core::Shape shape = {3, 5, 7, 9};
  const core::Tensor full = initial_noise(1234, shape);
  const float* all = full.data<float>();
  const size_t numel = static_cast<size_t>(full.numel());
  for (size_t first : {0, 1, 2, 3, 4, 5, 6, 7, 63, 315, 941, 944}) {
    for (size_t count : {1, 2, 3, 4, 5, 9, 100}) {
      if (first + count > numel) continue;
      const std::vector<float> part = normals(1234, first, count);
      EXPECT_EQ(std::memcmp(part.data(), all + first, count * sizeof(float)), 0)
          << "first " << first << " count " << count;
    }
  }
  // A rank's slice along C (the leading dimension) is a contiguous index range.
  const size_t per_channel = numel / 3;
  const std::vector<float> channel1 = normals(1234, per_channel, per_channel);
  EXPECT_EQ(std::memcmp(channel1.data(), full.slice(1, 2).data<float>(), per_channel * 4), 0);
}

TEST(PhiloxNoise, InitialNoiseIsAHostF32TensorOfTheShape) {
  const core::Tensor t = initial_noise(1, {16, 2, 4, 6});
  EXPECT_EQ(t.shape(), (core::Shape{16, 2, 4, 6}));
  EXPECT_EQ(t.dtype(), core::DType::F32);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(initial_noise(1, {0, 3}).numel(), 0);
}

TEST(PhiloxNoise, RejectsAnIndexRangePast2To64) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  float out[2];
  EXPECT_NO_THROW(philox_normal(1, max - 1, out, 2));  // the last two indices exist
  EXPECT_TRUE(std::isfinite(out[0]) && std::isfinite(out[1]));
  EXPECT_THROW(philox_normal(1, max, out, 2), Error);
  EXPECT_NO_THROW(philox_normal(1, max, out, 0));
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// 2^20 samples of one latent. Tolerances are ~5σ or more of each statistic's sampling error, so a
// correct generator passes (the result is deterministic anyway) while a wrong lane, a broken
// Box-Muller or a biased uniform fails by far.
TEST(PhiloxNoise, IsStandardNormalOverAMillionSamples) {
  const core::Tensor noise = initial_noise(2024, {16, 4, 128, 128});
  const float* v = noise.data<float>();
  const size_t n = static_cast<size_t>(noise.numel());
  ASSERT_EQ(n, 1u << 20);

  double sum = 0, sum_sq = 0, lag1 = 0;
  size_t beyond_3 = 0;
  for (size_t i = 0; i < n; ++i) {
    sum += v[i];
    sum_sq += double(v[i]) * v[i];
    beyond_3 += std::fabs(v[i]) > 3.0f;
    if (i + 1 < n) lag1 += double(v[i]) * v[i + 1];
  }
  const double mean = sum / n;
  const double variance = sum_sq / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.005);     // σ of the mean: 1/√n ≈ 0.001
  EXPECT_NEAR(variance, 1.0, 0.01);  // σ of the variance: √(2/n) ≈ 0.0014
  // P(|x| > 3) = 0.0026998; σ of the fraction: √(p(1-p)/n) ≈ 5e-5.
  EXPECT_NEAR(double(beyond_3) / n, 0.0026998, 0.0003);
  // Neighbours (the two outputs of one Box-Muller pair among them) are uncorrelated: σ ≈ 0.001.
  EXPECT_NEAR(lag1 / (n - 1), 0.0, 0.005);

  // Kolmogorov-Smirnov against the normal CDF: D below the 0.1% critical value 1.949/√n.
  std::vector<double> sorted(v, v + n);
  std::sort(sorted.begin(), sorted.end());
  double d = 0;
  for (size_t i = 0; i < n; ++i) {
    const double cdf = normal_cdf(sorted[i]);
    d = std::max({d, std::fabs(double(i + 1) / n - cdf), std::fabs(double(i) / n - cdf)});
  }
  EXPECT_LT(d, 1.949 / std::sqrt(double(n))) << "KS statistic";
}

// Distance from `got` to the exact value `ref`, in units of the last place of ref as a double.
double ulps(double got, long double ref) {
  if (ref == 0) return got == 0 ? 0 : std::numeric_limits<double>::infinity();
  const double ulp = std::ldexp(1.0, std::ilogb(static_cast<double>(ref)) - 52);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - ref) / ulp);
}

// The inputs the noise feeds these functions: k·2^-32, at the edges and at random.
std::vector<uint64_t> test_numerators(uint64_t lo, uint64_t hi,
                                      const std::vector<uint64_t>& centres) {
  std::vector<uint64_t> ks;
  for (uint64_t c : centres)
    for (uint64_t d = 0; d <= 2000; ++d) {
      if (c >= lo + d) ks.push_back(c - d);
      if (c + d <= hi) ks.push_back(c + d);
    }
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<uint64_t> pick(lo, hi);
  for (int i = 0; i < 1000000; ++i) ks.push_back(pick(rng));
  return ks;
}

// Tolerance 4 ulp, against long double references: the inputs are exact, and each function adds
// about one rounding in its reduced argument (s or x) plus one or two in the final sums, ~2 ulp at
// worst; a wrong coefficient or reduction shows up as thousands of ulp.
constexpr double kMaxUlps = 4.0;

TEST(PhiloxMath, LogMatchesStdLogWithin4Ulp) {
  std::vector<uint64_t> centres = {1, 1ull << 32};
  for (int b = 1; b < 32; ++b) centres.push_back(1ull << b);
  double worst = 0;
  for (uint64_t k : test_numerators(1, 1ull << 32, centres)) {
    const double u = static_cast<double>(k) * 0x1p-32;
    const double e = ulps(log_positive(u), std::log(static_cast<long double>(u)));
    worst = std::max(worst, e);
    ASSERT_LE(e, kMaxUlps) << "u = " << u;
  }
  // Any positive normal double, not only the noise's inputs.
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<double> exponent(-1000.0, 1000.0);
  for (int i = 0; i < 100000; ++i) {
    const double x = std::pow(2.0, exponent(rng));
    const double e = ulps(log_positive(x), std::log(static_cast<long double>(x)));
    worst = std::max(worst, e);
    ASSERT_LE(e, kMaxUlps) << "x = " << x;
  }
  EXPECT_EQ(log_positive(1.0), 0.0);
  EXPECT_EQ(log_positive(0.5), -detail::kLn2Hi - detail::kLn2Lo);
  std::printf("log_positive: worst %.2f ulp\n", worst);
}

// The reference reduces u to the nearest quarter turn exactly (u - q/4 is exact in double) before
// calling sinl/cosl: 2π·u itself, rounded, has a relative error near the zeros of sin and cos far
// above an ulp of the result, where sincos_2pi is exact.
TEST(PhiloxMath, SinCos2PiMatchStdWithin4Ulp) {
  const long double two_pi = 6.283185307179586476925286766559005768L;
  std::vector<uint64_t> centres;
  for (uint64_t eighth = 0; eighth <= 8; ++eighth) centres.push_back(eighth << 29);
  double worst = 0;
  for (uint64_t k : test_numerators(0, 1ull << 32, centres)) {
    const double u = static_cast<double>(k) * 0x1p-32;
    const double quarter = std::nearbyint(4.0 * u);
    const long double angle = two_pi * static_cast<long double>(u - quarter / 4.0);
    long double ref_sin = std::sin(angle), ref_cos = std::cos(angle);
    for (int turn = 0; turn < static_cast<int>(quarter); ++turn) {
      const long double s = ref_sin;
      ref_sin = ref_cos;  // sin(a + π/2) = cos a, cos(a + π/2) = -sin a
      ref_cos = -s;
    }
    double s, c;
    sincos_2pi(u, &s, &c);
    const double e = std::max(ulps(s, ref_sin), ulps(c, ref_cos));
    worst = std::max(worst, e);
    ASSERT_LE(e, kMaxUlps) << "u = " << u << " sin " << s << " cos " << c;
  }
  double s, c;
  sincos_2pi(0.25, &s, &c);
  EXPECT_EQ(s, 1.0);
  EXPECT_EQ(c, 0.0);
  // Away from the zeros the plain libm calls agree to a few ulp as well.
  sincos_2pi(0.1, &s, &c);
  EXPECT_NEAR(s, std::sin(2 * std::numbers::pi * 0.1), 4e-16);
  EXPECT_NEAR(c, std::cos(2 * std::numbers::pi * 0.1), 4e-16);
  std::printf("sincos_2pi: worst %.2f ulp\n", worst);
}

}  // namespace
}  // namespace wanbatch::model::sampling
