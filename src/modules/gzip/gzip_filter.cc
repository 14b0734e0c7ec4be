// The gzip filter: responses of gzip_types (text/html always) with status 200, 403 or 404, at least
// gzip_min_length long, not already encoded, go out gzipped to clients that accept it (gzip_ok).
// Streaming: zlib reads each input buffer as it comes and writes into at most gzip_buffers output
// buffers; when all of them wait for the client the filter stops taking input (the buffers before
// it are held, not copied), so a response of any size passes in bounded memory. A flushed input
// buffer becomes a flushed deflate block; the last one ends the gzip stream. Content-Length and
// Accept-Ranges go, the ETag turns weak. zlib's memory comes from the request's pool (per-process
// cached blocks: no malloc per response) and goes back as soon as the stream ends.
// nginx: src/http/modules/ngx_http_gzip_filter_module.c
#include <zlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/str.h"
#include "http/content_coding.h"
#include "http/core_module.h"
#include "http/variables.h"
#include "modules/gzip/gzip.h"
#include "modules/gzip/zlib_codec.h"

namespace weir::http {

extern Module http_gzip_filter_module;

namespace {

struct GzipLocConf {
  static constexpr Module* kModule = &http_gzip_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  Setting<bool> enable;
  Setting<bool> no_buffer;
  Setting<Bufs> bufs;
  Setting<int> level;
  Setting<int> wbits;     // gzip_window, as a power of two
  Setting<int> memlevel;  // gzip_hash, as zlib's memLevel
  Setting<size_t> postpone;
  Setting<off_t> min_length;
  Setting<std::vector<std::string>> types;  // lower case; "*": any
};

struct GzipCtx {
  static constexpr Module* kModule = &http_gzip_filter_module;
  CodecStream s;
  z_stream z{};
  int wbits = 15;
  int memlevel = 8;
  size_t buffered = 0;         // bytes copied while postponing
  bool buffering : 1 = false;  // postpone_gzipping: input is copied until there is enough
  bool no_buffer : 1 = false;  // gzip_no_buffer
  uint64_t zin = 0;
  uint64_t zout = 0;
};

// Deflate's window and hash for a response of known size: no larger than it needs.
void size_memory(const Request& r, const GzipLocConf& conf, GzipCtx& ctx) {
  int wbits = *conf.wbits;
  int memlevel = *conf.memlevel;
  off_t len = r.headers_out.content_length_n;
  if (len > 0) {
    while (wbits > 9 && len < (off_t{1} << (wbits - 1)) - 262) {  // zlib's window is 262 short
      wbits--;
      memlevel--;
    }
    if (memlevel < 1) memlevel = 1;
  }
  ctx.wbits = wbits;
  ctx.memlevel = memlevel;
}

bool gzip_eligible(Request& r) {
  const auto& conf = r.loc<GzipLocConf>();
  return compressible(r, *conf.enable, *conf.min_length, *conf.types) && gzip_ok(r);
}

Code gzip_header_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<GzipLocConf>();
  if (!compressible(r, *conf.enable, *conf.min_length, *conf.types)) return next(r);
  r.gzip_vary = true;
  if (!gzip_ok(r) || !coding_chosen(r, Coding::Gzip)) return next(r);
  auto* ctx = r.pool->make<GzipCtx>();
  ctx->s.init(r, &http_gzip_filter_module, *conf.bufs);
  ctx->buffering = *conf.postpone != 0;
  ctx->no_buffer = *conf.no_buffer;
  size_memory(r, conf, *ctx);
  r.set_ctx(ctx);
  set_encoded_headers(r, "gzip");
  return next(r);
}

Rc start(Request& r, GzipCtx& ctx, const GzipLocConf& conf) {
  zlib_use_pool(ctx.z, *r.pool);
  // 16 + window bits: zlib writes the gzip header and trailer (CRC-32, length) itself.
  int rc = deflateInit2(&ctx.z, *conf.level, Z_DEFLATED, ctx.wbits + 16, ctx.memlevel,
                        Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    log_error(LogLevel::Alert, r.log(), 0, "deflateInit2() failed: %d", rc);
    return Rc::Error;
  }
  ctx.s.started = true;
  return Rc::Ok;
}

// postpone_gzipping: the input is copied (and the original given back) until more than the
// postponed size, a flush or the last buffer came, so that a small response is compressed in one
// go. Ok: keep waiting.
Rc postpone_input(GzipCtx& ctx, ChainLink* in, const GzipLocConf& conf) {
  Request& r = *ctx.s.r;
  for (; in != nullptr; in = in->next) {
    Buffer* b = in->buf;
    size_t size = static_cast<size_t>(b->size());
    ctx.buffered += size;
    if (b->flush || b->last_buf || ctx.buffered > *conf.postpone) ctx.buffering = false;
    Buffer* take = b;
    if (ctx.buffering && size > 0) {
      take = Buffer::create_temp(*r.pool, size);
      take->last = put(take->last, {b->pos, size});
      take->last_buf = b->last_buf;
      take->tag = &http_gzip_filter_module;
      b->pos = b->last;
    }
    ChainLink one{take, nullptr};
    ctx.s.add_input(&one);
  }
  return Rc::Ok;
}

// One deflate call and what it made of the output buffer.
CodecStep deflate_step(CodecStream& s, void* data) {
  auto& ctx = *static_cast<GzipCtx*>(data);
  Request& r = *s.r;
  int rc = zlib_call(s, ctx.z, deflate);
  if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
    log_error(LogLevel::Alert, r.log(), 0, "deflate() failed: %d, %d", zlib_flush(s.flush), rc);
    return CodecStep::Error;
  }
  s.after_call();
  if (s.avail_out == 0 && rc != Z_STREAM_END) return s.pass_full();
  s.redo = false;
  if (s.flush == CodecFlush::Sync) return s.pass_flush();
  if (rc == Z_STREAM_END) {
    ctx.zin = ctx.z.total_in;
    ctx.zout = ctx.z.total_out;
    if (int end = deflateEnd(&ctx.z); end != Z_OK) {
      log_error(LogLevel::Alert, r.log(), 0, "deflateEnd() failed: %d", end);
      return CodecStep::Error;
    }
    return s.pass_last();
  }
  if (ctx.no_buffer && s.in == nullptr) return s.pass_partial();  // gzip_no_buffer
  return CodecStep::More;
}

Rc fail(GzipCtx& ctx) {
  if (ctx.s.started && !ctx.s.done) (void)deflateEnd(&ctx.z);
  ctx.s.done = true;
  return Rc::Error;
}

Rc gzip_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<GzipCtx>();
  if (ctx == nullptr || ctx->s.done || r.header_only) return next(r, in);
  const auto& conf = r.loc<GzipLocConf>();
  if (ctx->buffering) {
    if (in == nullptr) {
      ctx->buffering = false;
    } else {
      (void)postpone_input(*ctx, in, conf);
      if (ctx->buffering) return Rc::Ok;
      in = nullptr;
    }
  }
  if (!ctx->s.started && start(r, *ctx, conf) != Rc::Ok) return fail(*ctx);
  ctx->s.add_input(in);
  Rc rc = run_codec_stream(ctx->s, next, deflate_step, ctx);
  return rc == Rc::Error ? fail(*ctx) : rc;
}

void var_gzip_ratio(Request& r, VariableValue& v, uintptr_t) {
  auto* ctx = r.get_ctx<GzipCtx>();
  if (ctx == nullptr) return v.set_not_found();
  ratio_variable(r, v, ctx->zin, ctx->zout);
}

constexpr VariableDef kVars[] = {
    {"gzip_ratio", var_gzip_ratio, nullptr, kVarNoCacheable},
};

// Whether an Accept-Encoding value accepts gzip: the token "gzip", and a q that is not zero if it
// has one. nginx: ngx_http_gzip_accept_encoding, ngx_http_gzip_quantity
bool accepts_gzip(std::string_view ae) {
  if (ae.size() < 4) return false;
  if (ae.starts_with("gzip,")) return true;
  size_t at = 0;
  for (;;) {
    at = ifind(ae, "gzip", at);
    if (at == std::string_view::npos) return false;
    if (at == 0 || ae[at - 1] == ',' || ae[at - 1] == ' ') break;
    at += 4;
  }
  std::string_view rest = ae.substr(at + 4);
  size_t i = 0;
  for (; i < rest.size(); i++) {
    char c = rest[i];
    if (c == ',') return true;
    if (c == ';') break;
    if (c != ' ') return false;
  }
  if (i == rest.size()) return true;
  for (i++; i < rest.size() && rest[i] == ' '; i++) {
  }
  if (i == rest.size()) return true;
  if (rest[i] != 'q' && rest[i] != 'Q') return false;
  i++;
  if (i + 2 > rest.size() || rest[i] != '=') return false;
  std::string_view q = rest.substr(i + 1);
  // The quantity: 0 or 1, then optionally '.' and up to three digits; zero refuses.
  if (q[0] != '0' && q[0] != '1') return false;
  int value = (q[0] - '0') * 100;
  if (q.size() == 1 || q[1] == ',' || q[1] == ' ') return value != 0;
  if (q[1] != '.') return false;
  int digits = 0;
  for (size_t k = 2; k < q.size() && q[k] != ',' && q[k] != ' '; k++) {
    if (q[k] < '0' || q[k] > '9') return false;
    value += q[k] - '0';  // nginx adds the digits as they come
    digits++;
  }
  return value <= 100 && digits <= 3 && value != 0;
}

// --- configuration ---------------------------------------------------------------------------

Status set_level(ConfContext& cf, const ConfNode& n, GzipLocConf& conf) {
  if (conf.level.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  if (*v < 1 || *v > 9) return cf.error("value must be between 1 and 9");  // nginx's bounds check
  conf.level = static_cast<int>(*v);
  return {};
}

// gzip_window and gzip_hash: a size that is a power of two within zlib's range, as its log2 less
// `base` (window bits; memLevel).
template <Setting<int> GzipLocConf::*kField, size_t kMin, size_t kMax, int kBase>
Status set_power(ConfContext&, const ConfNode& n, GzipLocConf& conf) {
  auto& f = conf.*kField;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_size(n.args[1]);
  if (!v) return Status::error("invalid value");
  size_t size = static_cast<size_t>(*v);
  for (int shift = 0; (size_t{1} << shift) <= kMax; shift++) {
    if ((size_t{1} << shift) == size && size >= kMin) {
      f = shift - kBase;
      return {};
    }
  }
  // nginx's words: "must be 512, 1k, 2k, 4k, 8k, 16k, or 32k".
  std::string sizes;
  for (size_t s = kMin; s <= kMax; s *= 2) {
    if (!sizes.empty()) sizes += s == kMax ? ", or " : ", ";
    sizes += s < 1024 ? std::to_string(s) : std::to_string(s / 1024) + "k";
  }
  return Status::errorf("must be %s", sizes.c_str());
}

GzipLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<GzipLocConf>();
}

Status merge_loc_conf(ConfContext&, const GzipLocConf& prev, GzipLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.no_buffer.merge(prev.no_buffer, false);
  conf.bufs.merge(prev.bufs, Bufs{32, 4096});
  conf.postpone.merge(prev.postpone, 0);
  conf.level.merge(prev.level, 1);
  conf.wbits.merge(prev.wbits, 15);
  conf.memlevel.merge(prev.memlevel, 8);
  conf.min_length.merge(prev.min_length, 20);
  conf.types.merge(prev.types, {"text/html"});
  return {};
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_gzip_filter_module)) return {};
  register_header_filter(cf, FilterId::Gzip, gzip_header_filter);
  offer_coding(cf, Coding::Gzip, gzip_eligible);
  register_body_filter(cf, FilterId::Gzip, gzip_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&GzipLocConf::enable>>("gzip", kHttpMainSrvLocLif | kFlag),
    directive<slot::bufs<&GzipLocConf::bufs>>("gzip_buffers", kHttpMainSrvLoc | kTake2),
    directive<slot::mime_types<&GzipLocConf::types>>("gzip_types", kHttpMainSrvLoc | kOneMore),
    directive<set_level>("gzip_comp_level", kHttpMainSrvLoc | kTake1),
    directive<set_power<&GzipLocConf::wbits, 512, 32768, 0>>("gzip_window",
                                                             kHttpMainSrvLoc | kTake1),
    directive<set_power<&GzipLocConf::memlevel, 512, 131072, 8>>("gzip_hash",
                                                                 kHttpMainSrvLoc | kTake1),
    directive<slot::size<&GzipLocConf::postpone>>("postpone_gzipping", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&GzipLocConf::no_buffer>>("gzip_no_buffer", kHttpMainSrvLoc | kFlag),
    directive<slot::size<&GzipLocConf::min_length>>("gzip_min_length", kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_gzip_filter_module));

}  // namespace

Module http_gzip_filter_module{
    .name = "http_gzip_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

// Whether this request may get gzip (tested once). nginx: ngx_http_gzip_ok
bool gzip_ok(Request& r) {
  if (r.gzip_tested) return r.gzip_ok;
  r.gzip_tested = true;
  const Header* ae = r.headers_in.accept_encoding;
  if (!r.is_main() || ae == nullptr || !accepts_gzip(ae->value)) return false;
  if (r.headers_in.msie6 && *core_loc(r).gzip_disable_msie6) return false;
  if (!compression_allowed(r)) return false;
  r.gzip_ok = true;
  return true;
}

}  // namespace weir::http
