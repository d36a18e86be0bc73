// The YUV → RGB steps of the libraries Pillow decodes with, for the formats where FFmpeg's own
// conversion differs (tens of levels off at colour edges). JPEG: libjpeg's "fancy" triangle
// upsampling of the chroma (jdsample.c: 3/4 of the nearer and 1/4 of the farther sample in each
// subsampled direction, with its rounding biases) and its fixed-point JFIF conversion
// (jdcolor.c); only the colour step is libjpeg's, the IDCT stays FFmpeg's (within a few levels).
// Lossy WebP: libwebp's fancy upsampler and BT.601 conversion (exact).
#pragma once

#include <cstdint>

namespace wanbatch::io {

struct Rgb8Image;

// Planes of a full-range (JFIF) YCbCr image whose chroma is subsampled by 2^log2_w horizontally
// and 2^log2_h vertically (0 or 1 each: 4:4:4, 4:2:2, 4:4:0, 4:2:0), at the image's size; fills
// `out` (already sized width × height). Returns false, leaving `out` alone, for other
// subsamplings.
bool jpeg_ycc_to_rgb(const uint8_t* const planes[3], const int strides[3], int width, int height,
                     int log2_w, int log2_h, Rgb8Image& out);

// Lossy WebP's 4:2:0 limited-range YUV → RGB as libwebp does it (what Pillow sees): its "fancy"
// upsampler (9-3-3-1 weights per 2×2 neighbourhood, src/dsp/upsampling.c) and its 14-bit
// fixed-point BT.601 conversion (src/dsp/yuv.h). Both decoders reconstruct the same planes, so
// this is exact.
void webp_yuv420_to_rgb(const uint8_t* const planes[3], const int strides[3], int width, int height,
                        Rgb8Image& out);

}  // namespace wanbatch::io
