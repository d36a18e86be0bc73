// Video and PNG writing through FFmpeg libav (5.x to 7.x API: send/receive encoding, codecpar,
// no deprecated fields). Every libav handle is owned by a unique_ptr with the matching free
// function, every return code goes through AV_CHECK, and libav's own log lines are forwarded to
// WB_LOG so they carry the rank and obey the level filter.
#include "io/video_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/av_support.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using av::CodecContextPtr;
using av::FileClose;
using av::FramePtr;
using av::PacketPtr;
using av::SwsPtr;
using core::Tensor;

// An output context closes its file (if it opened one) before it is freed.
struct OutputFree {
  void operator()(AVFormatContext* f) const {
    if (f->pb && !(f->oformat->flags & AVFMT_NOFILE)) avio_closep(&f->pb);
    avformat_free_context(f);
  }
};
using OutputPtr = std::unique_ptr<AVFormatContext, OutputFree>;

// An option dictionary: libav calls take its address, consume the entries they know and leave
// the rest, so that what is left afterwards is what nobody understood.
class Dict {
 public:
  Dict() = default;
  ~Dict() { av_dict_free(&dict_); }
  Dict(const Dict&) = delete;
  Dict& operator=(const Dict&) = delete;

  AVDictionary** address() { return &dict_; }
  // Entries nobody consumed, comma-separated; empty when all were taken.
  std::string leftover() const {
    std::string keys;
    const AVDictionaryEntry* e = nullptr;
    while ((e = av_dict_get(dict_, "", e, AV_DICT_IGNORE_SUFFIX))) {
      keys += keys.empty() ? "" : ", ";
      keys += e->key;
    }
    return keys;
  }

 private:
  AVDictionary* dict_ = nullptr;
};

// ---- frames ---------------------------------------------------------------------------------

// The frames as a host f32 tensor [3, T, H, W], checked; throws naming `target`.
Tensor host_frames(const Tensor& frames, int64_t min_side, const std::string& target) {
  WB_CHECK(frames.defined(), "cannot write ", target, ": no frames given");
  WB_CHECK(frames.ndim() == 4 && frames.dim(0) == 3, "cannot write ", target,
           ": frames must be [3, T, H, W] RGB, got ", frames.describe());
  WB_CHECK(core::is_floating(frames.dtype()) && frames.dtype() != core::DType::F8E4M3,
           "cannot write ", target, ": frames must be f32, bf16 or f16, got ", frames.describe());
  WB_CHECK(frames.dim(1) >= 1, "cannot write ", target, ": no frames (T = 0) in ",
           frames.describe());
  WB_CHECK(frames.dim(2) >= min_side && frames.dim(3) >= min_side, "cannot write ", target,
           ": frames must be at least ", min_side, "x", min_side, " pixels, got ",
           frames.describe());
  WB_CHECK(frames.dim(2) <= 16384 && frames.dim(3) <= 16384, "cannot write ", target,
           ": frames larger than 16384 pixels a side: ", frames.describe());
  Tensor host = frames.device().is_cpu() ? frames : frames.to(core::Device::cpu());
  if (host.dtype() != core::DType::F32) host = host.to(core::DType::F32);
  return host;
}

// Frame t of planar [3, T, H, W] as packed RGB24 rows of `stride` bytes, `width` × `height`
// pixels (≥ the item's W × H): columns and rows beyond the item repeat its last ones.
void pack_rgb(const Tensor& frames, int64_t t, int width, int height, int stride, uint8_t* out) {
  const int64_t T = frames.dim(1), H = frames.dim(2), W = frames.dim(3);
  const float* base = frames.data<float>();
  for (int y = 0; y < height; ++y) {
    const int64_t sy = std::min<int64_t>(y, H - 1);
    uint8_t* row = out + static_cast<size_t>(y) * stride;
    for (int c = 0; c < 3; ++c) {
      const float* src = base + ((c * T + t) * H + sy) * W;
      for (int64_t x = 0; x < W; ++x) row[x * 3 + c] = frame_value_to_byte(src[x]);
      for (int64_t x = W; x < width; ++x) row[x * 3 + c] = row[(W - 1) * 3 + c];
    }
  }
}

// ---- video ----------------------------------------------------------------------------------

const std::array<const char*, 10> kX264Presets = {"ultrafast", "superfast", "veryfast", "faster",
                                                  "fast",      "medium",    "slow",     "slower",
                                                  "veryslow",  "placebo"};

// The encoder for options.codec, or mpeg4 with a warning when this FFmpeg has no such encoder.
const AVCodec* find_video_encoder(const VideoOptions& options, const std::string& path) {
  const AVCodec* codec = avcodec_find_encoder_by_name(options.codec.c_str());
  if (!codec) {
    WB_LOG(warning) << "video encoder '" << options.codec
                    << "' is not available in this FFmpeg; writing " << path
                    << " as MPEG-4 Part 2 (mpeg4) instead";
    codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    WB_CHECK(codec, "cannot write ", path, ": neither the video encoder '", options.codec,
             "' nor mpeg4 is available in this FFmpeg");
  }
  WB_CHECK(codec->type == AVMEDIA_TYPE_VIDEO, "cannot write ", path, ": '", options.codec,
           "' is not a video encoder");
  return codec;
}

// Sends one frame (nullptr: flush) and writes every packet the encoder has ready.
void encode(AVCodecContext* encoder, const AVFrame* frame, AVFormatContext* output,
            AVStream* stream, AVPacket* packet, const std::string& path) {
  AV_CHECK(avcodec_send_frame(encoder, frame), path);
  for (;;) {
    const int rc = avcodec_receive_packet(encoder, packet);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
    AV_CHECK(rc, path);
    // One frame per packet; encoders do not all fill in the duration, and the MP4 muxer needs it
    // for the last frame's length (and so the file's duration).
    if (packet->duration <= 0) packet->duration = 1;
    av_packet_rescale_ts(packet, encoder->time_base, stream->time_base);
    packet->stream_index = stream->index;
    // Takes the packet's reference and leaves it blank for the next receive.
    AV_CHECK(av_interleaved_write_frame(output, packet), path);
  }
}

}  // namespace

bool video_built() { return true; }

void write_video(const std::string& path, const Tensor& frames, const VideoOptions& options) {
  const Tensor host = host_frames(frames, 2, path);
  WB_CHECK(options.fps >= 1 && options.fps <= 1000, "cannot write ", path,
           ": fps must be 1 to 1000, got ", options.fps);
  WB_CHECK(options.crf >= 0 && options.crf <= 51, "cannot write ", path,
           ": crf must be 0 to 51, got ", options.crf);
  av::forward_log();

  const int frame_count = static_cast<int>(host.dim(1));
  // yuv420p needs even sizes: pad by repeating the last row/column (see the header).
  const int width = static_cast<int>((host.dim(3) + 1) / 2 * 2);
  const int height = static_cast<int>((host.dim(2) + 1) / 2 * 2);

  const AVCodec* codec = find_video_encoder(options, path);
  CodecContextPtr encoder(avcodec_alloc_context3(codec));
  WB_CHECK(encoder, "cannot write ", path, ": out of memory (avcodec_alloc_context3)");
  const bool has_crf = av_opt_find(encoder->priv_data, "crf", nullptr, 0, 0) != nullptr;
  const bool has_preset = av_opt_find(encoder->priv_data, "preset", nullptr, 0, 0) != nullptr;
  if (std::string(codec->name) == "libx264") {
    WB_CHECK(
        std::find(kX264Presets.begin(), kX264Presets.end(), options.preset) != kX264Presets.end(),
        "cannot write ", path, ": unknown x264 preset '", options.preset,
        "' (ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, "
        "placebo)");
  }

  const AVOutputFormat* format = av_guess_format(nullptr, path.c_str(), nullptr);
  if (!format) format = av_guess_format("mp4", nullptr, nullptr);
  WB_CHECK(format, "cannot write ", path, ": this FFmpeg has no mp4 muxer");
  const std::string format_name = format->name;
  const bool is_mov =
      format_name.find("mp4") != std::string::npos || format_name.find("mov") != std::string::npos;

  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_YUV420P;
  encoder->time_base = AVRational{1, options.fps};
  encoder->framerate = AVRational{options.fps, 1};
  encoder->sample_aspect_ratio = AVRational{1, 1};
  // What swscale does below (BT.601 matrix, limited range); the RGB itself is sRGB-like.
  encoder->colorspace = AVCOL_SPC_SMPTE170M;
  encoder->color_range = AVCOL_RANGE_MPEG;
  encoder->color_primaries = AVCOL_PRI_BT709;
  encoder->color_trc = AVCOL_TRC_BT709;
  if (has_crf) {
    encoder->thread_count = 0;  // x264 picks its own frame threads
  } else {
    // Slice-threaded encoders (mpeg4) take one slice per 16-row macroblock row at most and warn
    // when given more threads than that.
    const int rows = (height + 15) / 16;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    encoder->thread_count = std::clamp(std::min(rows, cores), 1, 16);
  }
  if (format->flags & AVFMT_GLOBALHEADER) encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  Dict codec_options;
  if (has_crf) {
    AV_CHECK(av_dict_set(codec_options.address(), "crf", std::to_string(options.crf).c_str(), 0),
             path);
  } else {
    // imageio's quantizer for the same quality (see VideoOptions::crf).
    encoder->flags |= AV_CODEC_FLAG_QSCALE;
    encoder->global_quality = FF_QP2LAMBDA * (1 + options.crf * 30 / 51);
  }
  if (has_preset) {
    AV_CHECK(av_dict_set(codec_options.address(), "preset", options.preset.c_str(), 0), path);
  }
  AV_CHECK(avcodec_open2(encoder.get(), codec, codec_options.address()), path);
  const std::string unknown_codec_options = codec_options.leftover();
  WB_CHECK(unknown_codec_options.empty(), "cannot write ", path, ": encoder ", codec->name,
           " did not take the options ", unknown_codec_options);

  AtomicFile file(path);
  OutputPtr output;
  {
    AVFormatContext* raw = nullptr;
    AV_CHECK(avformat_alloc_output_context2(&raw, format, nullptr, file.temp_path().c_str()), path);
    output.reset(raw);
  }
  AVStream* stream = avformat_new_stream(output.get(), nullptr);
  WB_CHECK(stream, "cannot write ", path, ": out of memory (avformat_new_stream)");
  stream->time_base = encoder->time_base;
  stream->avg_frame_rate = encoder->framerate;
  AV_CHECK(avcodec_parameters_from_context(stream->codecpar, encoder.get()), path);
  if (!(format->flags & AVFMT_NOFILE)) {
    AV_CHECK(avio_open(&output->pb, file.temp_path().c_str(), AVIO_FLAG_WRITE), path);
  }
  Dict muxer_options;
  if (is_mov) AV_CHECK(av_dict_set(muxer_options.address(), "movflags", "+faststart", 0), path);
  AV_CHECK(avformat_write_header(output.get(), muxer_options.address()), path);
  const std::string unknown_muxer_options = muxer_options.leftover();
  WB_CHECK(unknown_muxer_options.empty(), "cannot write ", path, ": muxer ", format_name,
           " did not take the options ", unknown_muxer_options);

  // RGB24 (full range) → YUV420P (BT.601, limited range), explicitly, to match the stream tags.
  // Accurate rounding and full-resolution chroma input before the 4:2:0 filter keep the colours
  // of small detail; bicubic is FFmpeg's default filter.
  SwsPtr sws(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr,
                            nullptr));
  WB_CHECK(sws, "cannot write ", path, ": libswscale cannot convert rgb24 to yuv420p at ", width,
           "x", height);
  const int* bt601 = sws_getCoefficients(SWS_CS_ITU601);
  AV_CHECK(sws_setColorspaceDetails(sws.get(), bt601, 1, bt601, 0, 0, 1 << 16, 1 << 16), path);

  FramePtr frame(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  WB_CHECK(frame && packet, "cannot write ", path, ": out of memory (av_frame_alloc)");
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = width;
  frame->height = height;
  frame->colorspace = encoder->colorspace;
  frame->color_range = encoder->color_range;
  frame->color_primaries = encoder->color_primaries;
  frame->color_trc = encoder->color_trc;
  frame->sample_aspect_ratio = encoder->sample_aspect_ratio;
  AV_CHECK(av_frame_get_buffer(frame.get(), 0), path);

  const int rgb_stride = width * 3;
  std::vector<uint8_t> rgb(static_cast<size_t>(rgb_stride) * height);
  for (int t = 0; t < frame_count; ++t) {
    pack_rgb(host, t, width, height, rgb_stride, rgb.data());
    // The encoder may still hold the previous frame's buffers (lookahead): get our own.
    AV_CHECK(av_frame_make_writable(frame.get()), path);
    const uint8_t* const src[4] = {rgb.data(), nullptr, nullptr, nullptr};
    const int src_stride[4] = {rgb_stride, 0, 0, 0};
    AV_CHECK(sws_scale(sws.get(), src, src_stride, 0, height, frame->data, frame->linesize), path);
    frame->pts = t;
    encode(encoder.get(), frame.get(), output.get(), stream, packet.get(), path);
  }
  encode(encoder.get(), nullptr, output.get(), stream, packet.get(), path);
  AV_CHECK(av_write_trailer(output.get()), path);
  if (output->pb) {
    // avio_closep does not report buffered write errors (a full disk); ask before closing.
    avio_flush(output->pb);
    if (output->pb->error < 0)
      av::throw_error(output->pb->error, "write", "write", path, __FILE__, __LINE__);
    AV_CHECK(avio_closep(&output->pb), path);
  }
  output.reset();
  file.commit();
  WB_LOG(debug) << "wrote " << path << ": " << frame_count << " frames " << width << "x" << height
                << " at " << options.fps << " fps, " << codec->name << " in " << format_name;
}

// ---- PNG frames -----------------------------------------------------------------------------

void write_png_frames(const std::string& dir, const Tensor& frames) {
  const Tensor host = host_frames(frames, 1, dir);
  av::forward_log();
  std::error_code ec;
  fs::create_directories(dir, ec);
  WB_CHECK(!ec, "cannot write ", dir, ": cannot create the folder: ", ec.message());

  const int frame_count = static_cast<int>(host.dim(1));
  const int width = static_cast<int>(host.dim(3));
  const int height = static_cast<int>(host.dim(2));
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  WB_CHECK(codec, "cannot write ", dir, ": this FFmpeg has no PNG encoder");
  CodecContextPtr encoder(avcodec_alloc_context3(codec));
  WB_CHECK(encoder, "cannot write ", dir, ": out of memory (avcodec_alloc_context3)");
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_RGB24;
  encoder->time_base = AVRational{1, 1};
  AV_CHECK(avcodec_open2(encoder.get(), codec, nullptr), dir);

  FramePtr frame(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  WB_CHECK(frame && packet, "cannot write ", dir, ": out of memory (av_frame_alloc)");
  frame->format = AV_PIX_FMT_RGB24;
  frame->width = width;
  frame->height = height;
  AV_CHECK(av_frame_get_buffer(frame.get(), 0), dir);

  for (int t = 0; t < frame_count; ++t) {
    std::array<char, 32> name{};
    std::snprintf(name.data(), name.size(), "frame_%05d.png", t);
    const std::string path = (fs::path(dir) / name.data()).string();
    AV_CHECK(av_frame_make_writable(frame.get()), path);
    pack_rgb(host, t, width, height, frame->linesize[0], frame->data[0]);
    frame->pts = t;
    AV_CHECK(avcodec_send_frame(encoder.get(), frame.get()), path);
    AV_CHECK(avcodec_receive_packet(encoder.get(), packet.get()), path);

    AtomicFile file(path);
    std::unique_ptr<std::FILE, FileClose> out(std::fopen(file.temp_path().c_str(), "wb"));
    WB_CHECK(out, "cannot write ", path, ": ", std::strerror(errno));
    const size_t size = static_cast<size_t>(packet->size);
    const bool written = std::fwrite(packet->data, 1, size, out.get()) == size;
    const int write_errno = errno;
    av_packet_unref(packet.get());
    WB_CHECK(written, "cannot write ", path, ": ", std::strerror(write_errno));
    WB_CHECK(std::fclose(out.release()) == 0, "cannot write ", path, ": ", std::strerror(errno));
    file.commit();
  }
}

}  // namespace wanbatch::io
