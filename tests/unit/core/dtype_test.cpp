// Scalar dtype conversions: hand-worked edge values (ties, subnormals, overflow, inf, NaN), exact
// round trips over every bit pattern, and a check of f16 against the compiler's _Float16.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"

namespace wanbatch::core {
namespace {

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }
constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::F8E4M3), 1u);
  EXPECT_EQ(dtype_size(DType::I32), 4u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  for (DType d : {DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::I32, DType::I64}) {
    EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  }
  EXPECT_THROW(parse_dtype("f64"), Error);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie, kept bit even: down
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie, kept bit odd: up
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001)), 0x3f81);  // just above the tie: up
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(kInf), 0x7f80);
  EXPECT_EQ(float_to_bf16(-kInf), 0xff80);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds up to inf
  EXPECT_EQ(float_to_bf16(from_bits(0x00010001)), 0x0001);  // subnormal kept
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(kNaN))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7f800001)))));  // low payload
}

TEST(DType, Bf16RoundTripsEveryValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float value = bf16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_bf16(value), bits) << std::hex << bits;
  }
}

TEST(DType, F16EdgeValues) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);  // half an ulp past the largest finite: inf
  EXPECT_EQ(float_to_f16(-kInf), 0xfc00);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -14)), 0x0400);   // smallest normal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);   // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);   // tie between 0 and 1 ulp: even
  EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -26)), 0x0001);   // 0.75 ulp: up
  EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -25)), 0x0002);   // 1.5 ulp tie: to even (2)
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);       // tie: down to even
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);       // tie: up to even
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x7c00), kInf);
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(kNaN))));
}

TEST(DType, F16RoundTripsEveryValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float value = f16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_f16(value), bits) << std::hex << bits;
  }
}

#if defined(__FLT16_MAX__)
// The compiler's _Float16 conversion (libgcc soft-float, round to nearest even) is an independent
// implementation: compare on random bit patterns and on every float near the f16 range edges.
TEST(DType, F16MatchesCompilerFloat16) {
  std::mt19937 rng(7);
  auto check = [](uint32_t bits) {
    const float value = from_bits(bits);
    const uint16_t expected = std::bit_cast<uint16_t>(static_cast<_Float16>(value));
    if (std::isnan(value)) {
      ASSERT_TRUE(std::isnan(f16_to_float(float_to_f16(value))));
    } else {
      ASSERT_EQ(float_to_f16(value), expected) << std::hex << bits;
    }
  };
  for (int i = 0; i < 2'000'000; ++i) check(rng());
  for (uint32_t bits = 0x33000000 - 4096; bits < 0x38800000 + 4096; bits += 97) check(bits);
  for (uint32_t bits = 0x477fe000 - 4096; bits < 0x47800000 + 4096; ++bits) check(bits);
}
#endif

TEST(DType, F8E4M3EdgeValues) {
  EXPECT_EQ(float_to_f8e4m3(1.0f), 0x38);
  EXPECT_EQ(float_to_f8e4m3(448.0f), 0x7e);
  EXPECT_EQ(float_to_f8e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(float_to_f8e4m3(kInf), 0x7e);
  EXPECT_EQ(float_to_f8e4m3(-kInf), 0xfe);
  EXPECT_EQ(float_to_f8e4m3(kNaN) & 0x7f, 0x7f);
  EXPECT_EQ(float_to_f8e4m3(std::ldexp(1.0f, -6)), 0x08);  // smallest normal
  EXPECT_EQ(float_to_f8e4m3(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(float_to_f8e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie: even (0)
  EXPECT_EQ(float_to_f8e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 steps tie: even (2)
  EXPECT_EQ(float_to_f8e4m3(1.0625f), 0x38);  // tie between 1 and 1.125: even (1)
  EXPECT_EQ(float_to_f8e4m3(1.1875f), 0x3a);  // tie between 1.125 and 1.25: even (1.25)
  EXPECT_EQ(float_to_f8e4m3(-2.5f), 0xc2);
  EXPECT_EQ(float_to_f8e4m3(std::ldexp(15.0f, -10)), 0x08);  // 7.5 steps rounds up to 2^-6
  EXPECT_EQ(f8e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(f8e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(f8e4m3_to_float(0x7f)));
  EXPECT_TRUE(std::isnan(f8e4m3_to_float(0xff)));
}

TEST(DType, F8E4M3RoundTripsEveryValue) {
  for (uint32_t bits = 0; bits < 0x100; ++bits) {
    const float value = f8e4m3_to_float(static_cast<uint8_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_f8e4m3(value), bits) << std::hex << bits;
  }
}

TEST(DType, ConvertElementsBetweenTypes) {
  const std::vector<float> values{1.5f, -2.75f, 0.0f, 300.0f};
  std::vector<uint16_t> half(values.size());
  convert_elements(values.data(), DType::F32, half.data(), DType::BF16, values.size());
  std::vector<float> back(values.size());
  convert_elements(half.data(), DType::BF16, back.data(), DType::F32, values.size());
  EXPECT_EQ(back, values);  // all exactly representable in bf16
  std::vector<int32_t> ints(values.size());
  convert_elements(values.data(), DType::F32, ints.data(), DType::I32, values.size());
  EXPECT_EQ(ints, (std::vector<int32_t>{1, -2, 0, 300}));  // truncation toward zero
  const std::vector<float> wild{kNaN, kInf, -kInf, 3e9f, -3e9f, 2147483520.0f};
  std::vector<int32_t> clamped(wild.size());
  convert_elements(wild.data(), DType::F32, clamped.data(), DType::I32, wild.size());
  EXPECT_EQ(clamped, (std::vector<int32_t>{0, INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN,
                                           2147483520}));  // saturation, NaN → 0
  std::vector<int64_t> clamped64(wild.size());
  convert_elements(wild.data(), DType::F32, clamped64.data(), DType::I64, wild.size());
  EXPECT_EQ(clamped64[0], 0);
  EXPECT_EQ(clamped64[1], INT64_MAX);
  EXPECT_EQ(clamped64[4], -3000000000);
  const std::vector<int64_t> big{(int64_t{1} << 40) + 1, -5};
  std::vector<int32_t> narrowed(2);
  std::vector<int64_t> widened(2);
  convert_elements(big.data(), DType::I64, narrowed.data(), DType::I32, 2);
  convert_elements(narrowed.data(), DType::I32, widened.data(), DType::I64, 2);
  EXPECT_EQ(widened[1], -5);  // integer paths are exact, not through fp32
}

}  // namespace
}  // namespace wanbatch::core
