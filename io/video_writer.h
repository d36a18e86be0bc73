// Decoded frames to files: an H.264 MP4 per item (DESIGN.md, "Data") and, with --save-frames, one
// PNG per frame, through FFmpeg's libavformat/libavcodec/libswscale. Every file is written under a
// temporary name beside its destination and renamed when complete (io::AtomicFile). A wanbatch
// built without FFmpeg (WANBATCH_VIDEO=OFF, or libav not found) has the same functions; they throw
// a one-line error saying that only latents can be written.
//
// Pixels: v in [-1, 1] becomes the byte floor((clamp(v, -1, 1) + 1) / 2 · 255) computed in fp32,
// as the official Wan save_video does (torchvision make_grid normalizes to [0, 1], then
// `(x * 255).type(torch.uint8)` truncates); NaN becomes 0. PNG frames hold exactly these bytes.
//
// Video: RGB → YUV 4:2:0 by libswscale with the BT.601 matrix and limited range, and the stream is
// tagged so (matrix smpte170m, range tv; primaries and transfer bt709, those of the sRGB-like
// frames). 4:2:0 needs an even width and height: an odd width or height is padded by repeating the
// last column or row, so a 33×17 item is stored as 34×18 and no pixel of the item is lost.
// Timestamps are frame indices in a 1/fps time base; MP4 files get `movflags +faststart`. The
// container comes from the extension of `path` (.mp4, .mov, .mkv, ...), MP4 when it names none.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace wanbatch::io {

struct VideoOptions {
  // Frames per second: the model's sample_fps (16 for Wan2.1 and the Wan2.2 A14B models, 24 for
  // Wan2.2 TI2V-5B) unless the manifest item gives one.
  int fps = 16;
  // x264 constant rate factor, 0 (lossless) to 51. 10 is what the official Wan save_video gets
  // from imageio (quality 8 → crf int((1 - 8/10) · 51) = 10): visually lossless. Measured RGB
  // PSNR: ~48 dB on an 832×480 test pattern (4:2:0 alone allows ~50), ~40 dB on the 64×48 one of
  // the tests, where edges dominate. Encoders without a crf option (mpeg4) get the quantizer
  // imageio would give, qscale 1 + crf · 30 / 51 (6 at crf 10).
  int crf = 10;
  // x264 preset (ultrafast ... placebo); ignored by encoders without one.
  std::string preset = "medium";
  // An FFmpeg encoder name. When this FFmpeg lacks it, the video is written with "mpeg4" (MPEG-4
  // Part 2) and a warning says so.
  std::string codec = "libx264";
};

// frames: [3, T, H, W] RGB on any device, f32 (bf16/f16 are converted), values in [-1, 1] (outside
// values are clamped); T ≥ 1, H, W ≥ 2. Throws wanbatch::Error naming `path` on bad input or any
// library failure, leaving no temporary file behind and any existing file at `path` untouched.
void write_video(const std::string& path, const core::Tensor& frames,
                 const VideoOptions& options = {});

// One PNG (rgb24, lossless) per frame, DIR/frame_00000.png, DIR/frame_00001.png, ..., through
// libavcodec's PNG encoder, each written atomically; creates DIR when missing. frames as for
// write_video, any H, W ≥ 1 (PNG needs no padding).
void write_png_frames(const std::string& dir, const core::Tensor& frames);

// Whether this wanbatch was built with FFmpeg; when false the two writers above always throw.
bool video_built();

// The byte a frame value becomes (see the top of this file); shared with the tests.
inline uint8_t frame_value_to_byte(float v) {
  // Written so that NaN fails both comparisons and lands on -1.
  const float clamped = v > -1.0f ? (v < 1.0f ? v : 1.0f) : -1.0f;
  const float unit = (clamped + 1.0f) / 2.0f;  // torchvision's (x - low) / (high - low)
  return static_cast<uint8_t>(unit * 255.0f);  // torch's float → uint8 cast truncates
}

}  // namespace wanbatch::io
