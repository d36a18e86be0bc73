// The video API of a wanbatch built without FFmpeg (WANBATCH_VIDEO=OFF, or libav not found):
// every writer fails with one line saying so, naming what it was asked to write.
#include "core/error.h"
#include "io/video_writer.h"

namespace wanbatch::io {
namespace {

[[noreturn]] void throw_not_built(const std::string& target) {
  throw make_error("cannot write ", target,
                   ": this wanbatch was built without FFmpeg (WANBATCH_VIDEO=OFF or libav not "
                   "found): only latents can be written");
}

}  // namespace

bool video_built() { return false; }

void write_video(const std::string& path, const core::Tensor&, const VideoOptions&) {
  throw_not_built(path);
}

void write_png_frames(const std::string& dir, const core::Tensor&) { throw_not_built(dir); }

}  // namespace wanbatch::io
