// Element types a tensor can hold, their sizes and names, and the scalar conversions between the
// reduced-precision floating formats and fp32 (round to nearest even, NaN/inf/subnormals kept).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wanbatch::core {

enum class DType : uint8_t { F32, BF16, F16, F8E4M3, I32, I64 };

size_t dtype_size(DType dtype);
// Short lower-case name used in messages and by `wanbatch inspect`: f32, bf16, f16, f8e4m3, ...
std::string_view dtype_name(DType dtype);
// Parses dtype_name() spellings; throws Error naming the text otherwise.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// bfloat16: the top 16 bits of an fp32, rounded to nearest even; NaN stays a (quiet) NaN.
uint16_t float_to_bf16(float value);
float bf16_to_float(uint16_t bits);

// IEEE binary16 with subnormals; overflow gives inf, round to nearest even.
uint16_t float_to_f16(float value);
float f16_to_float(uint16_t bits);

// fp8 e4m3 "fn" (as in PyTorch float8_e4m3fn and NVIDIA __nv_fp8_e4m3): bias 7, no infinity,
// 0x7f/0xff are NaN, largest finite 448. Conversion saturates finite overflow and inf to ±448 (as
// NVIDIA's __NV_SATFINITE does) and keeps NaN; round to nearest even, subnormals down to 2^-9.
uint8_t float_to_f8e4m3(float value);
float f8e4m3_to_float(uint8_t bits);

// Converts `count` elements from `src` (of type `from`) to `dst` (of type `to`). Floating to
// integer truncates toward zero, saturates at the integer's range and maps NaN to 0; every
// floating pair goes through fp32 (exact for these formats).
void convert_elements(const void* src, DType from, void* dst, DType to, size_t count);

}  // namespace wanbatch::core
