// image_filter (ngx_http_image_filter_module, Debian's libnginx-mod-http-image-filter): JPEG, GIF,
// PNG and WebP responses transformed with libgd - `image_filter resize W H` (fit inside), `crop W
// H` (fill, then cut the middle), `rotate 90|180|270`, `size` (a JSON of the dimensions), `test`
// (415 unless the body is an image) - with image_filter_jpeg_quality, _webp_quality, _sharpen,
// _transparency, _interlace and _buffer. Sizes, angle and qualities may hold variables ("-": no
// limit). The response's header is held back until the whole image is read (up to
// image_filter_buffer), then goes with the new image, its length, and a weak ETag; a body that is
// no image, or too big, is answered 415. nginx: src/http/modules/ngx_http_image_filter_module.c
#include <gd.h>

#include <cstring>
#include <limits>
#include <string>

#include "core/str.h"
#include "http/core_module.h"
#include "http/filter.h"
#include "http/script.h"
#include "http/special_response.h"

namespace weir::http {

extern Module http_image_filter_module;

namespace {

enum class Filter : uint8_t { Off, Test, Size, Resize, Crop, Rotate };
enum class ImageType : uint8_t { None, Jpeg, Gif, Png, Webp };
enum class Phase : uint8_t { Start, Read, Process, Pass, Done };

constexpr std::string_view kTypes[] = {"", "image/jpeg", "image/gif", "image/png", "image/webp"};
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();  // "-"

// A number the directive gives as it is, or with variables (evaluated per request).
struct Value {
  uint64_t fixed = 0;
  ComplexValue* cv = nullptr;
};

struct ImageLocConf {
  static constexpr Module* kModule = &http_image_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<Filter> filter;
  Value width, height, angle;
  Setting<uint64_t> jpeg_quality, webp_quality, sharpen;
  ComplexValue* jpeg_quality_cv = nullptr;
  ComplexValue* webp_quality_cv = nullptr;
  ComplexValue* sharpen_cv = nullptr;
  Setting<bool> transparency, interlace;
  Setting<size_t> buffer_size;
};

struct ImageCtx {
  static constexpr Module* kModule = &http_image_filter_module;
  char* image = nullptr;
  char* last = nullptr;
  size_t length = 0;  // the response's length, or the buffer's
  // What was read: parsed and decoded (nginx takes the whole buffer, uninitialised bytes too, when
  // the length was not known; its 5% rule for JPEG's application data still counts length).
  size_t size() const { return static_cast<size_t>(last - image); }
  uint64_t width = 0, height = 0;
  uint64_t max_width = 0, max_height = 0;
  uint64_t angle = 0;
  Phase phase = Phase::Start;
  ImageType type = ImageType::None;
  bool force = false;        // application data over 5% of a JPEG: converted whatever its size
  HeaderNext header_next{};  // where the held-back header goes on
};

// "-" is no limit; a positive number is itself; anything else is 0. nginx:
// ngx_http_image_filter_value
uint64_t number_of(std::string_view s) {
  if (s == "-") return kNoLimit;
  std::optional<int64_t> n = parse_int(s);
  return n && *n > 0 ? static_cast<uint64_t>(*n) : 0;
}

uint64_t value_of(Request& r, const ComplexValue* cv, uint64_t fixed) {
  return cv == nullptr ? fixed : number_of(cv->eval(r));
}

// --- the header, held back -------------------------------------------------------------------

Code image_header_filter(Request& r, HeaderNext next) {
  if (r.headers_out.status == 304) return next(r);
  if (r.get_ctx<ImageCtx>() != nullptr) {
    // The image, or an error answered from the body filter, goes out now.
    r.set_ctx<ImageCtx>(nullptr);
    return next(r);
  }
  const auto& conf = r.loc<ImageLocConf>();
  if (*conf.filter == Filter::Off) return next(r);
  if (istarts_with(r.headers_out.content_type, "multipart/x-mixed-replace")) {
    log_error(LogLevel::Error, r.log(), 0, "image filter: multipart/x-mixed-replace response");
    return Rc::Error;
  }
  auto* ctx = r.pool->make<ImageCtx>();
  r.set_ctx(ctx);
  ctx->header_next = next;
  off_t len = r.headers_out.content_length_n;
  if (len != -1 && len > static_cast<off_t>(*conf.buffer_size)) {
    log_error(LogLevel::Error, r.log(), 0, "image filter: too big response: %lld",
              static_cast<long long>(len));
    return Code::status(415);
  }
  ctx->length = len == -1 ? *conf.buffer_size : static_cast<size_t>(len);
  if (r.headers_out.refresh != nullptr) r.headers_out.refresh->hash = 0;
  r.main_filter_need_in_memory = true;
  r.allow_ranges = false;
  return Rc::Ok;
}

// --- reading -----------------------------------------------------------------------------------

// What the first buffer's first bytes say the body is.
ImageType image_type(const ChainLink* in) {
  const auto* p = reinterpret_cast<const unsigned char*>(in->buf->pos);
  if (in->buf->last - in->buf->pos < 16) return ImageType::None;
  if (p[0] == 0xff && p[1] == 0xd8) return ImageType::Jpeg;
  if (std::memcmp(p, "GIF8", 4) == 0 && p[5] == 'a') {
    return p[4] == '9' || p[4] == '7' ? ImageType::Gif : ImageType::None;
  }
  if (std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageType::Png;
  if (std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    return ImageType::Webp;
  }
  return ImageType::None;
}

// Copies the body into the image buffer: Ok once the last buffer is in, Again before, Error when
// it does not fit.
Rc read_image(Request& r, ImageCtx& ctx, ChainLink* in) {
  if (ctx.image == nullptr) {
    ctx.image = r.pool->alloc_bytes(ctx.length);
    ctx.last = ctx.image;
  }
  char* p = ctx.last;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    Buffer* b = cl->buf;
    auto size = static_cast<size_t>(b->last - b->pos);
    if (size > static_cast<size_t>(ctx.image + ctx.length - p)) {
      log_error(LogLevel::Error, r.log(), 0, "image filter: too big response");
      return Rc::Error;
    }
    if (size != 0) std::memcpy(p, b->pos, size);
    p += size;
    b->pos += size;
    if (b->last_buf) {
      ctx.last = p;
      return Rc::Ok;
    }
  }
  ctx.last = p;
  r.buffered |= kImageBuffered;
  return Rc::Again;
}

// The image's dimensions from its header (a JPEG's SOF segment); false when they cannot be read.
bool image_size(ImageCtx& ctx) {
  const auto* p = reinterpret_cast<const unsigned char*>(ctx.image);
  uint64_t width = 0, height = 0;
  switch (ctx.type) {
    case ImageType::Jpeg: {
      // Up to ten bytes before the end: a segment header read there stays inside.
      const unsigned char* last = p + ctx.size() - 10;
      size_t app = 0;
      for (p += 2; p < last;) {
        if (p[0] == 0xff && p[1] != 0xff) {
          p++;
          if ((*p == 0xc0 || *p == 0xc1 || *p == 0xc2 || *p == 0xc3 || *p == 0xc9 || *p == 0xca ||
               *p == 0xcb) &&
              (width == 0 || height == 0)) {
            width = p[6] * 256 + p[7];
            height = p[4] * 256 + p[5];
          }
          size_t len = p[1] * 256 + p[2];
          if (*p >= 0xe1 && *p <= 0xef) app += len;  // EXIF, XMP ...
          p += len;
          continue;
        }
        p++;
      }
      if (width == 0 || height == 0) return false;
      if (ctx.length / 20 < app) ctx.force = true;
      break;
    }
    case ImageType::Gif:
      if (ctx.size() < 10) return false;
      width = p[7] * 256 + p[6];
      height = p[9] * 256 + p[8];
      break;
    case ImageType::Png:
      if (ctx.size() < 24) return false;
      width = p[18] * 256 + p[19];
      height = p[22] * 256 + p[23];
      break;
    case ImageType::Webp:
      if (ctx.size() < 30 || p[12] != 'V' || p[13] != 'P' || p[14] != '8') return false;
      switch (p[15]) {
        case ' ':
          if ((p[20] & 1) != 0) return false;  // not a key frame
          if (p[23] != 0x9d || p[24] != 0x01 || p[25] != 0x2a) return false;
          width = (p[26] | p[27] << 8) & 0x3fff;
          height = (p[28] | p[29] << 8) & 0x3fff;
          break;
        case 'L':
          if (p[20] != 0x2f) return false;
          width = ((p[21] | p[22] << 8) & 0x3fff) + 1;
          height = ((p[22] >> 6 | p[23] << 2 | p[24] << 10) & 0x3fff) + 1;
          break;
        case 'X':
          width = (p[24] | p[25] << 8 | p[26] << 16) + 1;
          height = (p[27] | p[28] << 8 | p[29] << 16) + 1;
          break;
        default:
          return false;
      }
      break;
    case ImageType::None:
      return false;
  }
  ctx.width = width;
  ctx.height = height;
  return true;
}

// --- the answer --------------------------------------------------------------------------------

void set_length(Request& r, size_t length) {
  clear_content_length(r);  // the header line the response had
  r.headers_out.content_length_n = static_cast<off_t>(length);
}

Buffer* memory_answer(Request& r, std::string_view body) {
  Buffer* b = Buffer::create_memory(*r.pool, body);
  b->last_buf = true;
  set_length(r, body.size());
  return b;
}

// image_filter size: the dimensions as JSON, or "{}" for what is no image; a new header.
Buffer* json_answer(Request& r, const ImageCtx* ctx) {
  r.headers_out = HeadersOut{};
  r.headers_out.status = 200;
  r.headers_out.content_type = "application/json";
  r.headers_out.content_type_len = r.headers_out.content_type.size();
  if (ctx == nullptr) return memory_answer(r, "{}\r\n");
  std::string json = "{ \"img\" : { \"width\": " + std::to_string(ctx->width) +
                     ", \"height\": " + std::to_string(ctx->height) + ", \"type\": \"" +
                     std::string(kTypes[static_cast<int>(ctx->type)].substr(6)) + "\" } }\r\n";
  return memory_answer(r, r.pool->dup(json));
}

struct GdDelete {
  void operator()(gdImage* img) const { gdImageDestroy(img); }
};
using Image = std::unique_ptr<gdImage, GdDelete>;

Image decode(Request& r, const ImageCtx& ctx) {
  auto size = static_cast<int>(ctx.size());
  gdImagePtr img = nullptr;
  const char* failed = "unknown image type";
  switch (ctx.type) {
    case ImageType::Jpeg:
      img = gdImageCreateFromJpegPtr(size, ctx.image);
      failed = "gdImageCreateFromJpegPtr() failed";
      break;
    case ImageType::Gif:
      img = gdImageCreateFromGifPtr(size, ctx.image);
      failed = "gdImageCreateFromGifPtr() failed";
      break;
    case ImageType::Png:
      img = gdImageCreateFromPngPtr(size, ctx.image);
      failed = "gdImageCreateFromPngPtr() failed";
      break;
    case ImageType::Webp:
      img = gdImageCreateFromWebpPtr(size, ctx.image);
      failed = "gdImageCreateFromWebpPtr() failed";
      break;
    case ImageType::None:
      break;
  }
  if (img == nullptr) log_error(LogLevel::Error, r.log(), 0, "%s", failed);
  return Image(img);
}

Image new_image(Request& r, int w, int h, int colors) {
  gdImagePtr img = colors == 0 ? gdImageCreateTrueColor(w, h) : gdImageCreate(w, h);
  if (img == nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "%s",
              colors == 0 ? "gdImageCreateTrueColor() failed" : "gdImageCreate() failed");
  }
  return Image(img);
}

// The image encoded in its type; nullptr (logged) when that fails or a quality is not positive.
void* encode(Request& r, const ImageCtx& ctx, gdImagePtr img, int& size) {
  const auto& conf = r.loc<ImageLocConf>();
  void* out = nullptr;
  const char* failed = "unknown image type";
  switch (ctx.type) {
    case ImageType::Jpeg: {
      auto q = static_cast<int64_t>(value_of(r, conf.jpeg_quality_cv, *conf.jpeg_quality));
      if (q <= 0) return nullptr;
      out = gdImageJpegPtr(img, &size, static_cast<int>(q));
      failed = "gdImageJpegPtr() failed";
      break;
    }
    case ImageType::Gif:
      out = gdImageGifPtr(img, &size);
      failed = "gdImageGifPtr() failed";
      break;
    case ImageType::Png:
      out = gdImagePngPtr(img, &size);
      failed = "gdImagePngPtr() failed";
      break;
    case ImageType::Webp: {
      auto q = static_cast<int64_t>(value_of(r, conf.webp_quality_cv, *conf.webp_quality));
      if (q <= 0) return nullptr;
      out = gdImageWebpPtrEx(img, &size, static_cast<int>(q));
      failed = "gdImageWebpPtrEx() failed";
      break;
    }
    case ImageType::None:
      break;
  }
  if (out == nullptr) log_error(LogLevel::Error, r.log(), 0, "%s", failed);
  return out;
}

// Fits (resize, crop) and turns (rotate) the image, keeping a palette image's transparent colour;
// nullptr when libgd fails. nginx: ngx_http_image_resize
Buffer* transform(Request& r, ImageCtx& ctx) {
  const auto& conf = r.loc<ImageLocConf>();
  Image src = decode(r, ctx);
  if (src == nullptr) return nullptr;
  int sx = gdImageSX(src.get());
  int sy = gdImageSY(src.get());
  if (!ctx.force && ctx.angle == 0 && static_cast<uint64_t>(sx) <= ctx.max_width &&
      static_cast<uint64_t>(sy) <= ctx.max_height) {
    return memory_answer(r, {ctx.image, ctx.size()});
  }
  int colors = gdImageColorsTotal(src.get());
  int palette = 0, transparent = -1, red = 0, green = 0, blue = 0;
  if (colors != 0 && *conf.transparency) {
    int t = gdImageGetTransparent(src.get());
    if (t != -1) {
      palette = colors;
      transparent = t;
      red = gdImageRed(src.get(), t);
      green = gdImageGreen(src.get(), t);
      blue = gdImageBlue(src.get(), t);
    }
  }
  gdImageColorTransparent(src.get(), -1);
  int dx = sx, dy = sy;
  // Shrinks (dx, dy) to the width, then to the height, keeping the aspect (never to 0).
  auto fit_width = [&] {
    dy = static_cast<int>(static_cast<uint64_t>(dy) * ctx.max_width / static_cast<uint64_t>(dx));
    dy = dy != 0 ? dy : 1;
    dx = static_cast<int>(ctx.max_width);
  };
  auto fit_height = [&] {
    dx = static_cast<int>(static_cast<uint64_t>(dx) * ctx.max_height / static_cast<uint64_t>(dy));
    dx = dx != 0 ? dx : 1;
    dy = static_cast<int>(ctx.max_height);
  };
  bool resize = false;
  if (*conf.filter == Filter::Resize) {
    if (static_cast<uint64_t>(dx) > ctx.max_width) fit_width();
    if (static_cast<uint64_t>(dy) > ctx.max_height) fit_height();
    resize = true;
  } else if (*conf.filter == Filter::Crop) {
    if (static_cast<double>(dx) / dy <
        static_cast<double>(ctx.max_width) / static_cast<double>(ctx.max_height)) {
      if (static_cast<uint64_t>(dx) > ctx.max_width) {
        fit_width();
        resize = true;
      }
    } else if (static_cast<uint64_t>(dy) > ctx.max_height) {
      fit_height();
      resize = true;
    }
  }
  Image dst;
  if (resize) {
    dst = new_image(r, dx, dy, palette);
    if (dst == nullptr) return nullptr;
    if (colors == 0) {
      gdImageSaveAlpha(dst.get(), 1);
      gdImageAlphaBlending(dst.get(), 0);
    }
    gdImageCopyResampled(dst.get(), src.get(), 0, 0, 0, 0, dx, dy, sx, sy);
    if (colors != 0) gdImageTrueColorToPalette(dst.get(), 1, 256);
    src.reset();
  } else {
    dst = std::move(src);
  }
  if (ctx.angle != 0) {
    src = std::move(dst);
    int ax = dx % 2 == 0 ? 1 : 0;
    int ay = dy % 2 == 0 ? 1 : 0;
    auto angle = static_cast<int>(ctx.angle);
    if (angle == 90 || angle == 270) {
      dst = new_image(r, dy, dx, palette);
      if (dst == nullptr) return nullptr;
      int ox = angle == 90 ? dy / 2 + ay : dy / 2 - ay;
      int oy = angle == 90 ? dx / 2 - ax : dx / 2 + ax;
      gdImageCopyRotated(dst.get(), src.get(), ox, oy, 0, 0, dx + ax, dy + ay, angle);
      std::swap(dx, dy);
    } else if (angle == 180) {
      dst = new_image(r, dx, dy, palette);
      if (dst == nullptr) return nullptr;
      int ox = dx / 2 - ax;  // whole pixels, as nginx passes them
      int oy = dy / 2 - ay;
      gdImageCopyRotated(dst.get(), src.get(), ox, oy, 0, 0, dx + ax, dy + ay, angle);
    } else {
      dst = std::move(src);  // another angle turns nothing (nginx's too)
    }
    src.reset();
  }
  if (*conf.filter == Filter::Crop) {
    int ox = static_cast<uint64_t>(dx) > ctx.max_width ? dx - static_cast<int>(ctx.max_width) : 0;
    int oy = static_cast<uint64_t>(dy) > ctx.max_height ? dy - static_cast<int>(ctx.max_height) : 0;
    if (ox != 0 || oy != 0) {
      src = std::move(dst);
      dst = new_image(r, dx - ox, dy - oy, colors);
      if (dst == nullptr) return nullptr;
      ox /= 2;
      oy /= 2;
      if (colors == 0) {
        gdImageSaveAlpha(dst.get(), 1);
        gdImageAlphaBlending(dst.get(), 0);
      }
      gdImageCopy(dst.get(), src.get(), 0, 0, ox, oy, dx - ox, dy - oy);
      if (colors != 0) gdImageTrueColorToPalette(dst.get(), 1, 256);
      src.reset();
    }
  }
  if (transparent != -1 && colors != 0) {
    gdImageColorTransparent(dst.get(), gdImageColorExact(dst.get(), red, green, blue));
  }
  auto sharpen = static_cast<int>(value_of(r, conf.sharpen_cv, *conf.sharpen));
  if (sharpen > 0) gdImageSharpen(dst.get(), sharpen);
  gdImageInterlace(dst.get(), *conf.interlace ? 1 : 0);
  int size = 0;
  void* out = encode(r, ctx, dst.get(), size);
  if (out == nullptr) return nullptr;
  r.pool->add_cleanup([](void* p) { gdFree(p); }, out);
  Buffer* b = memory_answer(r, {static_cast<const char*>(out), static_cast<size_t>(size)});
  weak_etag(r);
  return b;
}

// The whole image is in: the answer it gets (nullptr: 415). nginx: ngx_http_image_process
Buffer* process(Request& r, ImageCtx& ctx) {
  r.buffered &= ~kImageBuffered;
  const auto& conf = r.loc<ImageLocConf>();
  bool sized = image_size(ctx);
  if (*conf.filter == Filter::Size) return json_answer(r, sized ? &ctx : nullptr);
  ctx.angle = value_of(r, conf.angle.cv, conf.angle.fixed);
  if (*conf.filter == Filter::Rotate) {
    if (ctx.angle != 90 && ctx.angle != 180 && ctx.angle != 270) return nullptr;
    return transform(r, ctx);
  }
  ctx.max_width = value_of(r, conf.width.cv, conf.width.fixed);
  if (ctx.max_width == 0) return nullptr;
  ctx.max_height = value_of(r, conf.height.cv, conf.height.fixed);
  if (ctx.max_height == 0) return nullptr;
  if (sized && ctx.width <= ctx.max_width && ctx.height <= ctx.max_height && ctx.angle == 0 &&
      !ctx.force) {
    return memory_answer(r, {ctx.image, ctx.size()});
  }
  return transform(r, ctx);
}

// The held-back header, then the body. After "{}" for what is no image, the response ends
// there: Error drops whatever else the handler sends.
Rc send(Request& r, ImageCtx& ctx, ChainLink* in, BodyNext next) {
  Code rc = ctx.header_next(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return Rc::Error;
  Rc body = next(r, in);
  if (ctx.phase == Phase::Done) return body == Rc::Ok ? Rc::Error : body;
  return body;
}

Rc image_body_filter(Request& r, ChainLink* in, BodyNext next) {
  if (in == nullptr) return next(r, in);
  auto* ctx = r.get_ctx<ImageCtx>();
  if (ctx == nullptr) return next(r, in);
  const auto& conf = r.loc<ImageLocConf>();
  switch (ctx->phase) {
    case Phase::Start: {
      ctx->type = image_type(in);
      if (ctx->type == ImageType::None) {
        if (*conf.filter == Filter::Size) {
          ChainLink out{json_answer(r, nullptr), nullptr};
          ctx->phase = Phase::Done;
          return send(r, *ctx, &out, next);
        }
        return filter_finalize_request(r, &http_image_filter_module, 415);
      }
      r.headers_out.content_type = kTypes[static_cast<int>(ctx->type)];
      r.headers_out.content_type_len = r.headers_out.content_type.size();
      r.headers_out.content_type_lowcase = {};
      if (*conf.filter == Filter::Test) {
        ctx->phase = Phase::Pass;
        return send(r, *ctx, in, next);
      }
      ctx->phase = Phase::Read;
      [[fallthrough]];
    }
    case Phase::Read: {
      Rc rc = read_image(r, *ctx, in);
      if (rc == Rc::Again) return Rc::Ok;
      if (rc == Rc::Error) return filter_finalize_request(r, &http_image_filter_module, 415);
      [[fallthrough]];
    }
    case Phase::Process: {
      Buffer* b = process(r, *ctx);
      if (b == nullptr) return filter_finalize_request(r, &http_image_filter_module, 415);
      ctx->phase = Phase::Pass;
      ChainLink out{b, nullptr};
      return send(r, *ctx, &out, next);
    }
    case Phase::Pass:
      return next(r, in);
    case Phase::Done: {
      Rc rc = next(r, nullptr);
      return rc == Rc::Ok ? Rc::Error : rc;
    }
  }
  return Rc::Error;
}

// --- configuration -----------------------------------------------------------------------------

// A size or angle argument: a number now, or variables for each request.
Status compile_value(ConfContext& cf, const std::string& arg, Value& v, bool& invalid) {
  auto* cv = cf.pool.make<ComplexValue>();
  if (Status s = cv->compile(cf, arg); !s.ok()) return s;
  if (cv->is_static()) {
    v.fixed = number_of(arg);
    invalid = v.fixed == 0;
  } else {
    v.cv = cv;
  }
  return {};
}

Status image_filter_directive(ConfContext& cf, const ConfNode& n, ImageLocConf& conf) {
  const auto& args = n.args;
  size_t i = 1;
  auto failed = [&] { return cf.error("invalid parameter \"" + args[i] + "\""); };
  if (args.size() == 2) {
    if (args[1] == "off") {
      conf.filter = Filter::Off;
    } else if (args[1] == "test") {
      conf.filter = Filter::Test;
    } else if (args[1] == "size") {
      conf.filter = Filter::Size;
    } else {
      return failed();
    }
    return {};
  }
  if (args.size() == 3) {
    if (args[1] != "rotate") return failed();
    // rotate beside resize or crop adds a turn to them.
    if (*conf.filter != Filter::Resize && *conf.filter != Filter::Crop) {
      conf.filter = Filter::Rotate;
    }
    bool invalid = false;
    if (Status s = compile_value(cf, args[++i], conf.angle, invalid); !s.ok()) return s;
    if (conf.angle.cv == nullptr && conf.angle.fixed != 90 && conf.angle.fixed != 180 &&
        conf.angle.fixed != 270) {
      return failed();
    }
    return {};
  }
  if (args[1] == "resize") {
    conf.filter = Filter::Resize;
  } else if (args[1] == "crop") {
    conf.filter = Filter::Crop;
  } else {
    return failed();
  }
  for (Value* v : {&conf.width, &conf.height}) {
    bool invalid = false;
    if (Status s = compile_value(cf, args[++i], *v, invalid); !s.ok()) return s;
    if (invalid) return failed();
  }
  return {};
}

// image_filter_jpeg_quality, _webp_quality (positive) and _sharpen (any number).
template <Setting<uint64_t> ImageLocConf::*Fixed, ComplexValue* ImageLocConf::*Cv, bool kPositive>
Status quality_directive(ConfContext& cf, const ConfNode& n, ImageLocConf& conf) {
  const std::string& arg = n.args[1];
  auto* cv = cf.pool.make<ComplexValue>();
  if (Status s = cv->compile(cf, arg); !s.ok()) return s;
  if (!cv->is_static()) {
    conf.*Cv = cv;
    return {};
  }
  // nginx reads the number as a signed one: "-" (no limit) is -1 there, and refused.
  uint64_t v = number_of(arg);
  if (v == kNoLimit || (kPositive && v == 0)) return cf.error("invalid value \"" + arg + "\"");
  conf.*Fixed = v;
  return {};
}

ImageLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<ImageLocConf>();
}

Status merge_loc_conf(ConfContext&, const ImageLocConf& prev, ImageLocConf& conf) {
  if (!conf.filter.set) {
    if (!prev.filter.set) {
      conf.filter = Filter::Off;
    } else {
      conf.filter = *prev.filter;
      conf.width = prev.width;
      conf.height = prev.height;
      conf.angle = prev.angle;
    }
  }
  // A level without the setting takes the outer one, fixed or with variables.
  auto merge_value = [](Setting<uint64_t>& v, ComplexValue*& cv, const Setting<uint64_t>& pv,
                        ComplexValue* pcv, uint64_t def) {
    if (v.set || cv != nullptr) return;
    v.merge(pv, def);
    if (cv == nullptr) cv = pcv;
  };
  merge_value(conf.jpeg_quality, conf.jpeg_quality_cv, prev.jpeg_quality, prev.jpeg_quality_cv,
              75);  // libjpeg's default
  merge_value(conf.webp_quality, conf.webp_quality_cv, prev.webp_quality, prev.webp_quality_cv,
              80);  // libwebp's
  merge_value(conf.sharpen, conf.sharpen_cv, prev.sharpen, prev.sharpen_cv, 0);
  conf.transparency.merge(prev.transparency, true);
  conf.interlace.merge(prev.interlace, false);
  conf.buffer_size.merge(prev.buffer_size, 1024 * 1024);
  return {};
}

Status init(ConfContext& cf) {
  if (cf.configured(http_image_filter_module)) {
    register_header_filter(cf, FilterId::Image, image_header_filter);
    register_body_filter(cf, FilterId::Image, image_body_filter);
  }
  return {};
}

constexpr Directive kDirectives[] = {
    directive<image_filter_directive>("image_filter", kHttpLocConf | kTake123),
    directive<quality_directive<&ImageLocConf::jpeg_quality, &ImageLocConf::jpeg_quality_cv, true>>(
        "image_filter_jpeg_quality", kHttpMainSrvLoc | kTake1),
    directive<quality_directive<&ImageLocConf::webp_quality, &ImageLocConf::webp_quality_cv, true>>(
        "image_filter_webp_quality", kHttpMainSrvLoc | kTake1),
    directive<quality_directive<&ImageLocConf::sharpen, &ImageLocConf::sharpen_cv, false>>(
        "image_filter_sharpen", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&ImageLocConf::transparency>>("image_filter_transparency",
                                                       kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&ImageLocConf::interlace>>("image_filter_interlace",
                                                    kHttpMainSrvLoc | kFlag),
    directive<slot::size<&ImageLocConf::buffer_size>>("image_filter_buffer",
                                                      kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_image_filter_module));

}  // namespace

Module http_image_filter_module{
    .name = "http_image_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
