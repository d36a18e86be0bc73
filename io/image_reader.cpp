#include "io/image_reader.h"

#include <filesystem>
#include <string_view>
#include <utility>

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include "core/error.h"
#include "io/av_support.h"
#include "io/pillow_color.h"

namespace wanbatch::io {

Rgb8Image read_image_rgb8(const std::string& path) {
  av::forward_log();
  WB_CHECK(std::filesystem::is_regular_file(path), "cannot read ", path, ": no such file");
  AVFormatContext* raw = nullptr;
  AV_READ_CHECK(avformat_open_input(&raw, path.c_str(), nullptr, nullptr), path);
  const av::InputPtr input(raw);
  AV_READ_CHECK(avformat_find_stream_info(input.get(), nullptr), path);
  const int stream =
      AV_READ_CHECK(av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0), path);
  const AVCodecParameters* parameters = input->streams[stream]->codecpar;
  const AVCodec* codec = avcodec_find_decoder(parameters->codec_id);
  WB_CHECK(codec != nullptr, "cannot read ", path, ": this FFmpeg has no decoder for it");
  const av::CodecContextPtr decoder(avcodec_alloc_context3(codec));
  WB_CHECK(decoder != nullptr, "cannot read ", path, ": out of memory");
  AV_READ_CHECK(avcodec_parameters_to_context(decoder.get(), parameters), path);
  AV_READ_CHECK(avcodec_open2(decoder.get(), codec, nullptr), path);

  // The first frame: packets of the image's stream until the decoder gives one (then the end of
  // the file drains it).
  const av::PacketPtr packet(av_packet_alloc());
  const av::FramePtr frame(av_frame_alloc());
  WB_CHECK(packet && frame, "cannot read ", path, ": out of memory");
  bool draining = false;
  for (;;) {
    if (!draining) {
      const int read = av_read_frame(input.get(), packet.get());
      if (read == AVERROR_EOF) {
        draining = true;
        AV_READ_CHECK(avcodec_send_packet(decoder.get(), nullptr), path);
      } else {
        AV_READ_CHECK(read, path);
        const bool ours = packet->stream_index == stream;
        const int sent = ours ? avcodec_send_packet(decoder.get(), packet.get()) : 0;
        av_packet_unref(packet.get());
        AV_READ_CHECK(sent, path);
        if (!ours) continue;
      }
    }
    const int received = avcodec_receive_frame(decoder.get(), frame.get());
    if (received == 0) break;
    if (received == AVERROR(EAGAIN) && !draining) continue;
    WB_CHECK(received != AVERROR_EOF, "cannot read ", path, ": it holds no image");
    AV_READ_CHECK(received, path);
  }

  const int width = frame->width, height = frame->height;
  WB_CHECK(width >= 1 && height >= 1 && width <= 16384 && height <= 16384, "cannot read ", path,
           ": ", width, "x", height, " pixels is not a usable image size");
  // The colour conversion as Pillow gets it from libjpeg / libwebp where FFmpeg's differs (its
  // chroma upsampling put colour edges up to a hundred levels off); other formats through
  // swscale at the same size, subsampled chroma interpolated bilinearly from where the format
  // sites it.
  av::SwsPtr sws(sws_alloc_context());
  WB_CHECK(sws != nullptr, "cannot read ", path, ": out of memory");
  const AVPixFmtDescriptor* format = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(frame->format));
  const bool subsampled = format && (format->log2_chroma_w > 0 || format->log2_chroma_h > 0);
  const bool centred = subsampled && frame->chroma_location == AVCHROMA_LOC_CENTER;
  Rgb8Image image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<size_t>(3) * width * height);
  // JPEG: libjpeg's own colour conversion (io/pillow_color.h), as Pillow decodes it.
  const bool jfif = format && format->nb_components == 3 &&
                    !(format->flags & AV_PIX_FMT_FLAG_RGB) &&
                    parameters->codec_id == AV_CODEC_ID_MJPEG &&
                    (frame->color_range == AVCOL_RANGE_JPEG ||
                     std::string_view(format->name).rfind("yuvj", 0) == 0);
  if (jfif) {
    const uint8_t* const planes[3] = {frame->data[0], frame->data[1], frame->data[2]};
    const int strides[3] = {frame->linesize[0], frame->linesize[1], frame->linesize[2]};
    if (jpeg_ycc_to_rgb(planes, strides, width, height, format->log2_chroma_w,
                        format->log2_chroma_h, image)) {
      return image;
    }
  }
  // Lossy WebP: libwebp's conversion (io/pillow_color.h), as Pillow decodes it.
  if (parameters->codec_id == AV_CODEC_ID_WEBP && frame->format == AV_PIX_FMT_YUV420P) {
    const uint8_t* const planes[3] = {frame->data[0], frame->data[1], frame->data[2]};
    const int strides[3] = {frame->linesize[0], frame->linesize[1], frame->linesize[2]};
    webp_yuv420_to_rgb(planes, strides, width, height, image);
    return image;
  }
  const std::pair<const char*, int64_t> settings[] = {
      {"srcw", width},
      {"srch", height},
      {"src_format", frame->format},
      {"dstw", width},
      {"dsth", height},
      {"dst_format", AV_PIX_FMT_RGB24},
      {"sws_flags", SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP},
      // Chroma siting in 1/256 of a luma sample: centred between the samples (JPEG), or the
      // format's default (-513).
      {"src_h_chr_pos", centred ? 128 : -513},
      {"src_v_chr_pos", centred ? 128 : -513}};
  for (const auto& [key, value] : settings) {
    WB_CHECK(av_opt_set_int(sws.get(), key, value, 0) >= 0, "cannot read ", path,
             ": the RGB conversion refuses ", key);
  }
  WB_CHECK(sws_init_context(sws.get(), nullptr, nullptr) >= 0, "cannot read ", path,
           ": no conversion from its pixel format to RGB");
  uint8_t* planes[1] = {image.pixels.data()};
  const int strides[1] = {3 * width};
  sws_scale(sws.get(), frame->data, frame->linesize, 0, height, planes, strides);
  return image;
}

core::Tensor read_image(const std::string& path) { return rgb8_to_tensor(read_image_rgb8(path)); }

}  // namespace wanbatch::io
