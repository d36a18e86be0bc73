// Video and PNG output: files are read back with libavformat/libavcodec (a small decoder below,
// independent of the writer) and checked for frame count, size, frame rate, duration, timestamps,
// colour tags and PSNR against the bytes written; PNG frames must come back exactly. Bad input
// and failed writes end in one line naming the file, with nothing left behind. A wanbatch built
// without FFmpeg only checks the error its writers give.
#include "io/video_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "temp_dir_test.h"

#if WANBATCH_TEST_VIDEO
#include "io/av_support.h"
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libswscale/swscale.h>
}

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <stdexcept>
#endif

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

bool is_one_line(const std::string& s) { return s.find('\n') == std::string::npos; }

TEST(VideoPixels, FollowTheOfficialSaveVideoTruncation) {
  // (x + 1) / 2 · 255 truncated, as torch's float → uint8 cast in Wan's save_video.
  EXPECT_EQ(frame_value_to_byte(-1.0f), 0);
  EXPECT_EQ(frame_value_to_byte(1.0f), 255);
  EXPECT_EQ(frame_value_to_byte(0.0f), 127);  // 127.5 → 127
  EXPECT_EQ(frame_value_to_byte(0.999f), 254);
  EXPECT_EQ(frame_value_to_byte(-0.99f), 1);  // 1.275 → 1
  EXPECT_EQ(frame_value_to_byte(-7.0f), 0);   // clamped
  EXPECT_EQ(frame_value_to_byte(3.5f), 255);  // clamped
  EXPECT_EQ(frame_value_to_byte(std::nanf("")), 0);
}

#if WANBATCH_TEST_VIDEO

class VideoWriterTest : public wanbatch::testing::TempDirTest {
 protected:
  // Every entry of the test folder, to check that nothing (a temporary) is left behind.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    return names;
  }
};

// Smooth gradients that drift over time, a disc moving right and a square moving left, with edges
// about 4 pixels wide: something like a VAE-decoded frame (which is upsampled 8× from the latent),
// in [-1, 1], as [3, T, H, W]. One-pixel edges between saturated colours would measure 4:2:0
// chroma subsampling rather than the writer: they cap RGB PSNR near 32 dB even with no encoder.
Tensor test_pattern(int frames, int height, int width) {
  std::vector<float> v(static_cast<size_t>(3) * frames * height * width);
  const float pi = 3.14159265f;
  auto soft = [](float d) { return std::clamp(0.5f - d / 4.0f, 0.0f, 1.0f); };
  for (int t = 0; t < frames; ++t) {
    const float ft = frames > 1 ? static_cast<float>(t) / (frames - 1) : 0.0f;
    const float disc_x = width * (0.2f + 0.6f * ft), disc_y = height * 0.45f;
    const float radius = std::max(2.0f, height * 0.25f);
    const float square_x = width * (0.75f - 0.5f * ft), square_y = height * 0.6f;
    const float half = std::max(1.5f, height * 0.15f);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        float rgb[3] = {static_cast<float>(x) / (width - 1), static_cast<float>(y) / (height - 1),
                        0.5f + 0.4f * std::sin(2 * pi * (x + y + 3.0f * t) / (width + height))};
        const float disc = soft(std::hypot(x - disc_x, y - disc_y) - radius);
        const float square = soft(std::max(std::abs(x - square_x), std::abs(y - square_y)) - half);
        const float disc_rgb[3] = {0.95f, 0.85f, 0.2f}, square_rgb[3] = {0.1f, 0.2f, 0.7f};
        for (int c = 0; c < 3; ++c) {
          float p = rgb[c] * (1 - disc) + disc_rgb[c] * disc;
          p = p * (1 - square) + square_rgb[c] * square;
          v[((static_cast<size_t>(c) * frames + t) * height + y) * width + x] = 2 * p - 1;
        }
      }
    }
  }
  return Tensor::from_vector(v, {3, frames, height, width});
}

// Frame t of the pattern as the writer's bytes, packed RGB, width × height.
std::vector<uint8_t> expected_rgb(const Tensor& frames, int t) {
  const int64_t T = frames.dim(1), H = frames.dim(2), W = frames.dim(3);
  const float* p = frames.data<float>();
  std::vector<uint8_t> out(static_cast<size_t>(H * W * 3));
  for (int c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < H * W; ++i) {
      out[i * 3 + c] = frame_value_to_byte(p[(c * T + t) * H * W + i]);
    }
  }
  return out;
}

// ---- a small decoder, for the checks ------------------------------------------------------------

void av_ok(int rc, const char* what) {
  if (rc >= 0) return;
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(rc, text, sizeof text);
  throw std::runtime_error(std::string(what) + ": " + text);
}

struct DecodedVideo {
  AVCodecID codec = AV_CODEC_ID_NONE;
  int width = 0, height = 0;
  AVRational avg_frame_rate{0, 1}, r_frame_rate{0, 1}, time_base{0, 1};
  double stream_seconds = 0;     // the stream's duration
  double container_seconds = 0;  // the file's duration
  AVColorSpace colorspace = AVCOL_SPC_UNSPECIFIED;
  AVColorRange color_range = AVCOL_RANGE_UNSPECIFIED;
  std::vector<int64_t> pts;               // per decoded frame, in time_base
  std::vector<std::vector<uint8_t>> rgb;  // per decoded frame, packed RGB24, width × height
};

// Every frame of the first video stream as RGB24 (BT.601, limited range in: what the tags say).
DecodedVideo read_video(const std::string& path) {
  AVFormatContext* raw = nullptr;
  av_ok(avformat_open_input(&raw, path.c_str(), nullptr, nullptr), "avformat_open_input");
  av::InputPtr input(raw);
  av_ok(avformat_find_stream_info(input.get(), nullptr), "avformat_find_stream_info");
  const int index = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  av_ok(index, "av_find_best_stream");
  const AVStream* stream = input->streams[index];
  const AVCodec* codec = avcodec_find_decoder(stream->codecpar->codec_id);
  if (!codec) throw std::runtime_error("no decoder");
  av::CodecContextPtr decoder(avcodec_alloc_context3(codec));
  av_ok(avcodec_parameters_to_context(decoder.get(), stream->codecpar), "parameters_to_context");
  av_ok(avcodec_open2(decoder.get(), codec, nullptr), "avcodec_open2");

  DecodedVideo out;
  out.codec = stream->codecpar->codec_id;
  out.width = stream->codecpar->width;
  out.height = stream->codecpar->height;
  out.avg_frame_rate = stream->avg_frame_rate;
  out.r_frame_rate = stream->r_frame_rate;
  out.time_base = stream->time_base;
  out.stream_seconds = stream->duration > 0 ? stream->duration * av_q2d(stream->time_base) : 0;
  out.container_seconds = input->duration > 0 ? input->duration / double(AV_TIME_BASE) : 0;
  out.colorspace = stream->codecpar->color_space;
  out.color_range = stream->codecpar->color_range;

  av::FramePtr frame(av_frame_alloc());
  av::PacketPtr packet(av_packet_alloc());
  av::SwsPtr sws;
  auto take_frames = [&] {
    for (;;) {
      const int rc = avcodec_receive_frame(decoder.get(), frame.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      av_ok(rc, "avcodec_receive_frame");
      const int w = frame->width, h = frame->height;
      std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
      if (frame->format == AV_PIX_FMT_RGB24) {
        for (int y = 0; y < h; ++y) {
          std::copy_n(frame->data[0] + y * frame->linesize[0], w * 3, rgb.data() + y * w * 3);
        }
      } else {
        if (!sws) {
          sws.reset(sws_getContext(
              w, h, static_cast<AVPixelFormat>(frame->format), w, h, AV_PIX_FMT_RGB24,
              SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr));
          if (!sws) throw std::runtime_error("sws_getContext");
          const int* bt601 = sws_getCoefficients(SWS_CS_ITU601);
          av_ok(sws_setColorspaceDetails(sws.get(), bt601, 0, bt601, 1, 0, 1 << 16, 1 << 16),
                "sws_setColorspaceDetails");
        }
        uint8_t* dst[4] = {rgb.data(), nullptr, nullptr, nullptr};
        const int dst_stride[4] = {w * 3, 0, 0, 0};
        av_ok(sws_scale(sws.get(), frame->data, frame->linesize, 0, h, dst, dst_stride),
              "sws_scale");
      }
      out.pts.push_back(frame->best_effort_timestamp);
      out.rgb.push_back(std::move(rgb));
    }
  };
  while (av_read_frame(input.get(), packet.get()) >= 0) {
    if (packet->stream_index == index) {
      av_ok(avcodec_send_packet(decoder.get(), packet.get()), "avcodec_send_packet");
      take_frames();
    }
    av_packet_unref(packet.get());
  }
  av_ok(avcodec_send_packet(decoder.get(), nullptr), "flush");
  take_frames();
  return out;
}

// PSNR in dB over the item's W × H (the stored frame may be wider/taller, padded).
double psnr(const std::vector<uint8_t>& expected, int W, int H, const std::vector<uint8_t>& got,
            int stored_width) {
  double sum = 0;
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W * 3; ++x) {
      const double d = double(expected[y * W * 3 + x]) - got[y * stored_width * 3 + x];
      sum += d * d;
    }
  }
  const double mse = sum / (double(W) * H * 3);
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

// The lowest PSNR over the frames; prints each so the test log records what was measured.
double min_psnr(const Tensor& frames, const DecodedVideo& video, const char* label) {
  const int T = static_cast<int>(frames.dim(1)), H = static_cast<int>(frames.dim(2)),
            W = static_cast<int>(frames.dim(3));
  double lowest = 1e9, sum = 0;
  for (int t = 0; t < T && t < static_cast<int>(video.rgb.size()); ++t) {
    const double p = psnr(expected_rgb(frames, t), W, H, video.rgb[t], video.width);
    lowest = std::min(lowest, p);
    sum += p;
  }
  std::printf("[   PSNR   ] %s %dx%d: min %.2f dB, mean %.2f dB over %d frames\n", label, W, H,
              lowest, sum / T, T);
  return lowest;
}

// Captures warnings for the fallback test; the sink is a plain function pointer.
std::vector<std::string>& captured_warnings() {
  static std::vector<std::string> lines;
  return lines;
}
void capture_sink(log::Level level, const std::string& message) {
  if (level >= log::Level::warning) captured_warnings().push_back(message);
}

// ---- the video ----------------------------------------------------------------------------------

// At the default CRF 10: 35 dB is well below what it gives here (~39-40 dB on these small,
// edge-heavy frames, ~48 dB at 832×480) and above what a broken conversion gets (a wrong matrix,
// range or chroma siting: under 30 dB).
constexpr double kMinPsnrDefault = 35.0;

TEST_F(VideoWriterTest, H264KeepsFrameCountSizeFpsDurationAndQuality) {
  const Tensor frames = test_pattern(17, 48, 64);
  const std::string path = (dir_ / "item.mp4").string();
  write_video(path, frames);

  const DecodedVideo v = read_video(path);
  EXPECT_EQ(v.codec, AV_CODEC_ID_H264);
  EXPECT_EQ(v.width, 64);
  EXPECT_EQ(v.height, 48);
  ASSERT_EQ(v.rgb.size(), 17u);
  EXPECT_EQ(av_cmp_q(v.avg_frame_rate, AVRational{16, 1}), 0)
      << v.avg_frame_rate.num << "/" << v.avg_frame_rate.den;
  EXPECT_EQ(av_cmp_q(v.r_frame_rate, AVRational{16, 1}), 0)
      << v.r_frame_rate.num << "/" << v.r_frame_rate.den;
  // 17 frames of 1/16 s each; MP4 time scales make this exact to well under a millisecond.
  EXPECT_NEAR(v.stream_seconds, 17.0 / 16, 1e-3);
  EXPECT_NEAR(v.container_seconds, 17.0 / 16, 1e-3);
  // Presentation timestamps are the frame indices.
  for (size_t t = 0; t < v.pts.size(); ++t) {
    EXPECT_EQ(av_rescale_q(v.pts[t], v.time_base, AVRational{1, 16}), static_cast<int64_t>(t));
  }
  EXPECT_EQ(v.colorspace, AVCOL_SPC_SMPTE170M);
  EXPECT_EQ(v.color_range, AVCOL_RANGE_MPEG);
  EXPECT_GT(min_psnr(frames, v, "libx264 crf 10"), kMinPsnrDefault);
  EXPECT_EQ(entries(), std::vector<std::string>{"item.mp4"});
  // movflags +faststart: the index (moov) comes before the media data (mdat), for streaming.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_NE(bytes.find("mdat"), std::string::npos);
  EXPECT_LT(bytes.find("moov"), bytes.find("mdat"));
}

TEST_F(VideoWriterTest, OddSizeIsPaddedByRepeatingTheLastRowAndColumn) {
  // Small, and odd in both directions (so is the 4:2:0 chroma plane of the padded frame: 33 × 19).
  // Smaller still (33 × 17) the pattern is all edges and 4:2:0 alone caps it near 36 dB.
  const Tensor frames = test_pattern(17, 37, 65);
  const std::string path = (dir_ / "odd.mp4").string();
  write_video(path, frames);

  const DecodedVideo v = read_video(path);
  EXPECT_EQ(v.width, 66);
  EXPECT_EQ(v.height, 38);
  ASSERT_EQ(v.rgb.size(), 17u);
  EXPECT_GT(min_psnr(frames, v, "libx264 crf 10, odd size"), kMinPsnrDefault);
  // The padding repeats the edge: compare the stored 66 × 38 frame with the item padded so.
  for (int t = 0; t < 17; ++t) {
    const std::vector<uint8_t> item = expected_rgb(frames, t);
    std::vector<uint8_t> padded(66 * 38 * 3);
    for (int y = 0; y < 38; ++y) {
      for (int x = 0; x < 66; ++x) {
        for (int c = 0; c < 3; ++c) {
          padded[(y * 66 + x) * 3 + c] = item[(std::min(y, 36) * 65 + std::min(x, 64)) * 3 + c];
        }
      }
    }
    EXPECT_GT(psnr(padded, 66, 38, v.rgb[t], 66), kMinPsnrDefault) << "frame " << t;
  }
}

TEST_F(VideoWriterTest, StoresTheRequestedFps) {
  const Tensor frames = test_pattern(9, 32, 32);
  const std::string path = (dir_ / "ti2v.mp4").string();
  VideoOptions options;
  options.fps = 24;  // Wan2.2 TI2V-5B
  write_video(path, frames, options);
  const DecodedVideo v = read_video(path);
  ASSERT_EQ(v.rgb.size(), 9u);
  EXPECT_EQ(av_cmp_q(v.avg_frame_rate, AVRational{24, 1}), 0);
  EXPECT_EQ(av_cmp_q(v.r_frame_rate, AVRational{24, 1}), 0);
  EXPECT_NEAR(v.container_seconds, 9.0 / 24, 1e-3);
}

TEST_F(VideoWriterTest, SingleFrameAndBf16InputWork) {
  const Tensor frames = test_pattern(1, 48, 64).to(core::DType::BF16);
  const std::string path = (dir_ / "one.mp4").string();
  write_video(path, frames);
  const DecodedVideo v = read_video(path);
  ASSERT_EQ(v.rgb.size(), 1u);
  EXPECT_GT(min_psnr(frames.to(core::DType::F32), v, "libx264 crf 10, bf16, 1 frame"),
            kMinPsnrDefault);
}

// MPEG-4 Part 2 at qscale 6 (imageio's for quality 8) is blockier than x264: 30 dB still rules
// out a wrong conversion while leaving room for the codec.
constexpr double kMinPsnrMpeg4 = 30.0;

TEST_F(VideoWriterTest, Mpeg4WhenAskedForWithoutWarning) {
  captured_warnings().clear();
  log::set_sink(capture_sink);
  const Tensor frames = test_pattern(17, 48, 64);
  const std::string path = (dir_ / "mpeg4.mp4").string();
  VideoOptions options;
  options.codec = "mpeg4";
  write_video(path, frames, options);
  log::set_sink(nullptr);
  EXPECT_TRUE(captured_warnings().empty()) << captured_warnings().front();

  const DecodedVideo v = read_video(path);
  EXPECT_EQ(v.codec, AV_CODEC_ID_MPEG4);
  ASSERT_EQ(v.rgb.size(), 17u);
  EXPECT_EQ(av_cmp_q(v.avg_frame_rate, AVRational{16, 1}), 0);
  EXPECT_NEAR(v.container_seconds, 17.0 / 16, 1e-3);
  EXPECT_GT(min_psnr(frames, v, "mpeg4 qscale 6"), kMinPsnrMpeg4);
}

TEST_F(VideoWriterTest, MissingEncoderFallsBackToMpeg4WithAWarning) {
  captured_warnings().clear();
  log::set_sink(capture_sink);
  const Tensor frames = test_pattern(5, 18, 34);
  const std::string path = (dir_ / "fallback.mp4").string();
  VideoOptions options;
  options.codec = "no-such-encoder";
  write_video(path, frames, options);
  log::set_sink(nullptr);
  ASSERT_EQ(captured_warnings().size(), 1u) << captured_warnings().back();
  EXPECT_NE(captured_warnings()[0].find("'no-such-encoder' is not available"), std::string::npos)
      << captured_warnings()[0];
  EXPECT_NE(captured_warnings()[0].find("mpeg4"), std::string::npos);

  const DecodedVideo v = read_video(path);
  EXPECT_EQ(v.codec, AV_CODEC_ID_MPEG4);
  ASSERT_EQ(v.rgb.size(), 5u);
  EXPECT_GT(min_psnr(frames, v, "mpeg4 fallback"), kMinPsnrMpeg4);
}

TEST_F(VideoWriterTest, ReplacesAnExistingFile) {
  const std::string path = (dir_ / "item.mp4").string();
  std::ofstream(path) << "old";
  write_video(path, test_pattern(3, 16, 16));
  EXPECT_EQ(read_video(path).rgb.size(), 3u);
  EXPECT_EQ(entries(), std::vector<std::string>{"item.mp4"});
}

// ---- PNG frames ---------------------------------------------------------------------------------

TEST_F(VideoWriterTest, PngFramesReadBackExactly) {
  const Tensor frames = test_pattern(3, 17, 33);
  const fs::path out = dir_ / "frames";  // created by the writer
  write_png_frames(out.string(), frames);

  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names,
            (std::vector<std::string>{"frame_00000.png", "frame_00001.png", "frame_00002.png"}));
  for (int t = 0; t < 3; ++t) {
    const DecodedVideo png = read_video((out / names[t]).string());
    EXPECT_EQ(png.codec, AV_CODEC_ID_PNG);
    EXPECT_EQ(png.width, 33);
    EXPECT_EQ(png.height, 17);
    ASSERT_EQ(png.rgb.size(), 1u);
    EXPECT_EQ(png.rgb[0], expected_rgb(frames, t)) << names[t];
  }
}

// ---- errors -------------------------------------------------------------------------------------

// Runs `write`, expects an Error of one line containing `needle`, and nothing left in the folder.
template <typename Write>
void expect_clean_failure(const fs::path& dir, Write&& write, const std::string& needle) {
  try {
    write();
    ADD_FAILURE() << "no error; expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_TRUE(is_one_line(e.what())) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename());
  EXPECT_TRUE(left.empty()) << "left behind: " << left.front();
}

TEST_F(VideoWriterTest, RejectsFramesThatAreNotRgbVideo) {
  const std::string path = (dir_ / "bad.mp4").string();
  const Tensor good = test_pattern(2, 8, 8);
  const Tensor rank3 = good.reshape({3, 16, 8});
  const Tensor gray = Tensor::zeros({1, 2, 8, 8}, core::DType::F32);
  const Tensor tiny = Tensor::zeros({3, 2, 1, 8}, core::DType::F32);
  const Tensor empty = Tensor::zeros({3, 0, 8, 8}, core::DType::F32);
  const Tensor ints = Tensor::zeros({3, 2, 8, 8}, core::DType::I32);
  for (const Tensor* bad : {&rank3, &gray}) {
    expect_clean_failure(
        dir_, [&] { write_video(path, *bad); }, "must be [3, T, H, W] RGB");
    expect_clean_failure(
        dir_, [&] { write_png_frames((dir_ / "png").string(), *bad); }, "must be [3, T, H, W] RGB");
  }
  expect_clean_failure(
      dir_, [&] { write_video(path, tiny); }, "at least 2x2");
  expect_clean_failure(
      dir_, [&] { write_video(path, empty); }, "no frames");
  expect_clean_failure(
      dir_, [&] { write_video(path, ints); }, "must be f32, bf16 or f16");
}

TEST_F(VideoWriterTest, RejectsBadOptions) {
  const std::string path = (dir_ / "bad.mp4").string();
  const Tensor frames = test_pattern(2, 8, 8);
  VideoOptions fps0;
  fps0.fps = 0;
  VideoOptions crf;
  crf.crf = 52;
  VideoOptions preset;
  preset.preset = "warp";
  VideoOptions audio;
  audio.codec = "aac";
  expect_clean_failure(
      dir_, [&] { write_video(path, frames, fps0); }, "fps must be");
  expect_clean_failure(
      dir_, [&] { write_video(path, frames, crf); }, "crf must be 0 to 51");
  expect_clean_failure(
      dir_, [&] { write_video(path, frames, preset); }, "preset 'warp'");
  expect_clean_failure(
      dir_, [&] { write_video(path, frames, audio); }, "not a video encoder");
}

TEST_F(VideoWriterTest, UnwritableFolderFailsNamingTheFile) {
  const Tensor frames = test_pattern(2, 8, 8);
  // A folder that does not exist fails for everyone, root included.
  const std::string missing = (dir_ / "missing" / "item.mp4").string();
  expect_clean_failure(
      dir_, [&] { write_video(missing, frames); }, missing);
  // A read-only folder stops everyone but root.
  if (::geteuid() != 0) {
    const fs::path locked = dir_ / "locked";
    fs::create_directory(locked);
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
    const std::string path = (locked / "item.mp4").string();
    expect_clean_failure(
        locked, [&] { write_video(path, frames); }, path);
    expect_clean_failure(
        locked, [&] { write_png_frames(locked.string(), frames); },
        (locked / "frame_00000.png").string());
    fs::permissions(locked, fs::perms::owner_all);
  }
}

// A write that fails half-way (here: the file-size limit, standing in for a full disk) throws,
// removes its temporary and leaves the previous file at the path as it was. Run in a child
// process so that the limit does not outlive the test.
using VideoWriterDeathTest = VideoWriterTest;

// In the child: writes under a 4 KiB file-size limit and exits 0 when the write threw and the
// folder holds only the old file, unchanged.
[[noreturn]] void write_under_size_limit(const fs::path& dir, const std::string& path,
                                         const Tensor& frames) {
  const rlimit limit{4096, 4096};
  ::setrlimit(RLIMIT_FSIZE, &limit);
  std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG
  int code = 3;
  try {
    write_video(path, frames);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::ifstream in(path);
    const std::string content((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename());
    code = left == std::vector<std::string>{"item.mp4"} && content == "old" ? 0 : 2;
  }
  // The threadsafe style runs the whole test again in a fresh process, with a folder of its own
  // that no TearDown will remove.
  fs::remove_all(dir);
  std::exit(code);
}

TEST_F(VideoWriterDeathTest, FailedWriteLeavesNoTemporaryAndKeepsTheOldFile) {
  // Not a plain fork: OpenBLAS (linked through wanbatch_core) has threads running already.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = (dir_ / "item.mp4").string();
  std::ofstream(path) << "old";
  const Tensor frames = test_pattern(17, 96, 128);
  EXPECT_EXIT(write_under_size_limit(dir_, path, frames), ::testing::ExitedWithCode(0),
              "cannot write .*item\\.mp4: av_write_trailer failed: File too large");
}

#else  // !WANBATCH_TEST_VIDEO

// The files themselves cannot be checked without FFmpeg; say so in the test report.
TEST(VideoWriter, ReadBackChecksNeedFfmpeg) {
  GTEST_SKIP() << "wanbatch was built without FFmpeg (WANBATCH_VIDEO=OFF or libav not found)";
}

TEST(VideoWriterDisabled, SaysOnlyLatentsCanBeWritten) {
  const Tensor frames = Tensor::zeros({3, 1, 2, 2}, core::DType::F32);
  try {
    write_video("/tmp/never.mp4", frames);
    FAIL() << "write_video worked in a build without FFmpeg";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(is_one_line(what)) << what;
    EXPECT_NE(what.find("/tmp/never.mp4"), std::string::npos) << what;
    EXPECT_NE(what.find("built without FFmpeg (WANBATCH_VIDEO=OFF or libav not found): only "
                        "latents can be written"),
              std::string::npos)
        << what;
  }
  EXPECT_THROW(write_png_frames("/tmp/never", frames), Error);
  EXPECT_FALSE(video_built());
}

#endif

}  // namespace
}  // namespace wanbatch::io
