// What the FFmpeg (libav) code of io/ shares: the return-code check that turns a failure into one
// error line naming the file and the call, owners for libav handles, and libav's log forwarded
// into wanbatch's. Only files built with FFmpeg include this.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <cstdio>
#include <memory>
#include <string>

namespace wanbatch::io::av {

std::string error_text(int code);

// Throws "cannot <verb> <target>: <function> failed: <libav's text> [file:line]"; `call` is the
// call as written, of which the message names only the function.
[[noreturn]] void throw_error(int code, const char* call, const char* verb,
                              const std::string& target, const char* file, int line);

// libav's log lines into wanbatch's log (once per process; info lines become debug lines).
void forward_log();

struct CodecContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct InputClose {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;
using InputPtr = std::unique_ptr<AVFormatContext, InputClose>;

}  // namespace wanbatch::io::av

// Evaluate a libav call returning an int (negative AVERROR on failure) and yield its value; a
// failure throws an Error naming the file being written (read), the call, libav's text and where.
#define WB_AV_CHECK(call, verb, target)                                                          \
  ([&] {                                                                                         \
    const int wb_av_result_ = (call);                                                            \
    if (wb_av_result_ < 0) {                                                                     \
      ::wanbatch::io::av::throw_error(wb_av_result_, #call, verb, (target), __FILE__, __LINE__); \
    }                                                                                            \
    return wb_av_result_;                                                                        \
  }())
#define AV_CHECK(call, target) WB_AV_CHECK(call, "write", target)
#define AV_READ_CHECK(call, target) WB_AV_CHECK(call, "read", target)
