// The gunzip filter: a gzipped response (an upstream's, a gzip_static "always" file) goes out
// decompressed to a client that may not have gzip (gzip_ok), as it streams, in at most
// gunzip_buffers output buffers (CodecStream). Content-Encoding, Content-Length and Accept-Ranges
// go, the ETag turns weak; a body of several gzip members is decompressed whole; a body that is not
// gzip, or ends before its stream does, breaks the response with nginx's log line.
// nginx: src/http/modules/ngx_http_gunzip_filter_module.c
#include "core/str.h"
#include "http/core_module.h"
#include "modules/gzip/gzip.h"
#include "modules/gzip/zlib_codec.h"

namespace weir::http {

extern Module http_gunzip_filter_module;

namespace {

struct GunzipLocConf {
  static constexpr Module* kModule = &http_gunzip_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<bool> enable;
  Setting<Bufs> bufs;
};

struct GunzipCtx {
  static constexpr Module* kModule = &http_gunzip_filter_module;
  CodecStream s;
  z_stream z{};
};

Code gunzip_header_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<GunzipLocConf>();
  Header* ce = r.headers_out.content_encoding;
  if (!*conf.enable || ce == nullptr || !iequals(ce->value, "gzip")) return next(r);
  r.gzip_vary = true;
  if (gzip_ok(r)) return next(r);  // the client takes it as it is
  auto* ctx = r.pool->make<GunzipCtx>();
  ctx->s.init(r, &http_gunzip_filter_module, *conf.bufs);
  r.set_ctx(ctx);
  r.filter_need_in_memory = true;
  ce->hash = 0;
  r.headers_out.content_encoding = nullptr;
  clear_content_length(r);
  clear_accept_ranges(r);
  weak_etag(r);
  return next(r);
}

// One inflate call and what it made of the output buffer.
CodecStep inflate_step(CodecStream& s, void* data) {
  z_stream& z = static_cast<GunzipCtx*>(data)->z;
  Request& r = *s.r;
  int rc = zlib_call(s, z, inflate);
  if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
    log_error(LogLevel::Error, r.log(), 0, "inflate() failed: %d, %d", zlib_flush(s.flush), rc);
    return CodecStep::Error;
  }
  s.after_call();
  if (s.avail_out == 0) return s.pass_full();
  s.redo = false;
  if (s.flush == CodecFlush::Sync) return s.pass_flush();
  if (s.flush == CodecFlush::Finish && s.avail_in == 0) {
    if (rc != Z_STREAM_END) {
      log_error(LogLevel::Error, r.log(), 0, "inflate() returned %d on response end", rc);
      return CodecStep::Error;
    }
    (void)inflateEnd(&z);
    return s.pass_last();
  }
  if (rc == Z_STREAM_END && s.avail_in > 0) {
    // Another gzip member follows.
    if (int reset = inflateReset(&z); reset != Z_OK) {
      log_error(LogLevel::Alert, r.log(), 0, "inflateReset() failed: %d", reset);
      return CodecStep::Error;
    }
    s.redo = true;
    return CodecStep::More;
  }
  if (s.in == nullptr) return s.pass_partial();
  return CodecStep::More;
}

Rc gunzip_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<GunzipCtx>();
  if (ctx == nullptr || ctx->s.done) return next(r, in);
  CodecStream& s = ctx->s;
  if (!s.started) {
    zlib_use_pool(ctx->z, *r.pool);
    if (int rc = inflateInit2(&ctx->z, MAX_WBITS + 16); rc != Z_OK) {
      log_error(LogLevel::Alert, r.log(), 0, "inflateInit2() failed: %d", rc);
      s.done = true;
      return Rc::Error;
    }
    s.started = true;
  }
  s.add_input(in);
  Rc rc = run_codec_stream(s, next, inflate_step, ctx);
  if (rc == Rc::Error) {
    if (!s.done) (void)inflateEnd(&ctx->z);
    s.done = true;
  }
  return rc;
}

GunzipLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<GunzipLocConf>();
}

Status merge_loc_conf(ConfContext&, const GunzipLocConf& prev, GunzipLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.bufs.merge(prev.bufs, Bufs{32, 4096});
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_gunzip_filter_module)) return {};
  register_header_filter(cf, FilterId::Gunzip, gunzip_header_filter);
  register_body_filter(cf, FilterId::Gunzip, gunzip_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&GunzipLocConf::enable>>("gunzip", kHttpMainSrvLoc | kFlag),
    directive<slot::bufs<&GunzipLocConf::bufs>>("gunzip_buffers", kHttpMainSrvLoc | kTake2),
};
static_assert(directives_of(kDirectives, &http_gunzip_filter_module));

}  // namespace

Module http_gunzip_filter_module{
    .name = "http_gunzip_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
