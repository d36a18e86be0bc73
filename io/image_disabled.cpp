// io/image_reader.h in a wanbatch built without FFmpeg: images cannot be decoded.
#include "core/error.h"
#include "io/image_reader.h"

namespace wanbatch::io {

core::Tensor read_image(const std::string& path) {
  throw make_error("cannot read ", path,
                   ": this wanbatch was built without FFmpeg (WANBATCH_VIDEO=OFF or libav not "
                   "found), which image items need");
}

}  // namespace wanbatch::io
