// io/image_reader.h in a wanbatch built without FFmpeg: images cannot be decoded (rgb8_to_tensor,
// in rgb8_image.cpp, still works).
#include "core/error.h"
#include "io/image_reader.h"

namespace wanbatch::io {

Rgb8Image read_image_rgb8(const std::string& path) {
  throw make_error("cannot read ", path,
                   ": this wanbatch was built without FFmpeg (WANBATCH_VIDEO=OFF or libav not "
                   "found), which image items need");
}

core::Tensor read_image(const std::string& path) { return rgb8_to_tensor(read_image_rgb8(path)); }

}  // namespace wanbatch::io
