#include "core/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace wanbatch::core {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F8E4M3: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  throw Error("unknown dtype");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::F8E4M3: return "f8e4m3";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  for (DType d : {DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::I32, DType::I64}) {
    if (dtype_name(d) == name) return d;
  }
  throw make_error("unknown dtype '", name, "' (expected f32, bf16, f16, f8e4m3, i32 or i64)");
}

bool is_floating(DType dtype) { return dtype != DType::I32 && dtype != DType::I64; }

namespace {
uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}
float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}
}  // namespace

uint16_t float_to_bf16(float value) {
  uint32_t bits = float_bits(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x0040);  // keep it quiet
  // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_to_float(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

uint16_t float_to_f16(float value) {
  const uint32_t bits = float_bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | static_cast<uint16_t>((abs >> 13) & 0x1ff);  // NaN
  if (abs >= 0x477ff000) return sign | 0x7c00;  // ≥ 65520 rounds past the largest finite: inf
  if (abs >= 0x38800000) {                      // normal in f16 (≥ 2^-14)
    uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1);
    return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
  }
  if (abs < 0x33000000) return sign;  // below half the smallest subnormal (2^-25): zero
  // Subnormal: value = m · 2^-24; shift the full significand into place with round to even.
  const uint32_t exponent = abs >> 23;
  const uint32_t significand = (abs & 0x7fffff) | 0x800000;
  const uint32_t shift = 126 - exponent;  // 14..24 for exponents 102..112
  uint32_t result = significand >> shift;
  const uint32_t remainder = significand & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (remainder > half || (remainder == half && (result & 1))) ++result;
  return sign | static_cast<uint16_t>(result);
}

float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0x1f) return bits_float(sign | 0x7f800000 | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint8_t float_to_f8e4m3(float value) {
  const uint32_t bits = float_bits(value);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  if (std::isnan(value)) return sign | 0x7f;
  const float magnitude = std::fabs(value);
  if (magnitude >= 448.0f) return sign | 0x7e;  // saturate (inf included)
  if (magnitude < std::ldexp(1.0f, -6)) {
    // Subnormal range: multiples of 2^-9; nearbyint rounds half to even in the default mode.
    const float steps = std::nearbyint(magnitude * 512.0f);
    return sign | static_cast<uint8_t>(steps);  // 8 steps becomes the smallest normal, 0x08
  }
  const uint32_t abs = bits & 0x7fffffff;
  // Keep 3 mantissa bits with round to even, then rebias the exponent from 127 to 7.
  const uint32_t rounded = abs + 0x7ffff + ((abs >> 20) & 1);
  const uint32_t exponent = (rounded >> 23) - 120;
  const uint32_t mantissa = (rounded >> 20) & 0x7;
  const uint8_t result = static_cast<uint8_t>((exponent << 3) | mantissa);
  return sign | (result > 0x7e ? 0x7e : result);
}

float f8e4m3_to_float(uint8_t bits) {
  const bool negative = bits & 0x80;
  const uint32_t exponent = (bits >> 3) & 0xf;
  const uint32_t mantissa = bits & 0x7;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);
  } else {
    magnitude = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, static_cast<int>(exponent) - 7);
  }
  return negative ? -magnitude : magnitude;
}

namespace {
float load_float(const void* src, DType dtype, size_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(src)[i];
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(src)[i]);
    case DType::F16: return f16_to_float(static_cast<const uint16_t*>(src)[i]);
    case DType::F8E4M3: return f8e4m3_to_float(static_cast<const uint8_t*>(src)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    case DType::I64: return static_cast<float>(static_cast<const int64_t*>(src)[i]);
  }
  return 0.0f;
}

// Truncation toward zero, saturating at the integer's range, NaN → 0 (C++ leaves those cases
// undefined; core/cuda/runtime.cu does the same on the GPU).
template <typename Int>
Int float_to_int(float value) {
  if (std::isnan(value)) return 0;
  constexpr float lo = static_cast<float>(std::numeric_limits<Int>::min());  // exactly -2^(n-1)
  if (value <= lo) return std::numeric_limits<Int>::min();
  if (value >= -lo) return std::numeric_limits<Int>::max();
  return static_cast<Int>(value);
}

void store_float(void* dst, DType dtype, size_t i, float value) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(dst)[i] = value; break;
    case DType::BF16: static_cast<uint16_t*>(dst)[i] = float_to_bf16(value); break;
    case DType::F16: static_cast<uint16_t*>(dst)[i] = float_to_f16(value); break;
    case DType::F8E4M3: static_cast<uint8_t*>(dst)[i] = float_to_f8e4m3(value); break;
    case DType::I32: static_cast<int32_t*>(dst)[i] = float_to_int<int32_t>(value); break;
    case DType::I64: static_cast<int64_t*>(dst)[i] = float_to_int<int64_t>(value); break;
  }
}
}  // namespace

void convert_elements(const void* src, DType from, void* dst, DType to, size_t count) {
  if (from == to) {
    std::memcpy(dst, src, count * dtype_size(from));
    return;
  }
  if (from == DType::I64 && to == DType::I32) {  // exact path for ids, not through fp32
    for (size_t i = 0; i < count; ++i)
      static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(static_cast<const int64_t*>(src)[i]);
    return;
  }
  if (from == DType::I32 && to == DType::I64) {
    for (size_t i = 0; i < count; ++i)
      static_cast<int64_t*>(dst)[i] = static_cast<const int32_t*>(src)[i];
    return;
  }
  for (size_t i = 0; i < count; ++i) store_float(dst, to, i, load_float(src, from, i));
}

}  // namespace wanbatch::core
