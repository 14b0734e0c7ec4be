// The zstd filter (weir's, with the directives of the zstd-nginx-module): responses of zstd_types
// (text/html always) the gzip filter would take go out in zstd to clients whose Accept-Encoding
// prefers "zstd" (content_coding.h), streaming through the codec engine in at most zstd_buffers
// output buffers. A flushed input buffer is a flushed zstd block; the last ends the frame. The
// worker keeps ended compression contexts and reuses them (zstd's advice: a context is large and
// resetting it is cheap), so no response allocates one once the worker is warm.
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_c_srcSizeHint
#include <zstd.h>

#include <string>
#include <vector>

#include "http/codec_stream.h"
#include "http/content_coding.h"
#include "http/core_module.h"

namespace weir::http {

extern Module http_zstd_filter_module;

namespace {

struct ZstdLocConf {
  static constexpr Module* kModule = &http_zstd_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  Setting<bool> enable;
  Setting<Bufs> bufs;
  Setting<int> level;
  Setting<off_t> min_length;
  Setting<std::vector<std::string>> types;
};

struct ZstdCtx {
  static constexpr Module* kModule = &http_zstd_filter_module;
  CodecStream s;
  ZSTD_CCtx* cctx = nullptr;
  uint64_t in = 0;
  uint64_t out = 0;
};

// The worker's idle contexts (freed when the process exits).
constexpr size_t kIdleMax = 16;
struct IdleContexts {
  std::vector<ZSTD_CCtx*> list;
  ~IdleContexts() {
    for (ZSTD_CCtx* c : list) ZSTD_freeCCtx(c);
  }
};
IdleContexts g_idle;

void release(void* data) {
  auto& ctx = *static_cast<ZstdCtx*>(data);
  if (ctx.cctx == nullptr) return;
  if (g_idle.list.size() < kIdleMax &&
      !ZSTD_isError(ZSTD_CCtx_reset(ctx.cctx, ZSTD_reset_session_and_parameters))) {
    g_idle.list.push_back(ctx.cctx);
  } else {
    ZSTD_freeCCtx(ctx.cctx);
  }
  ctx.cctx = nullptr;
}

bool zstd_eligible(Request& r) {
  const auto& conf = r.loc<ZstdLocConf>();
  return compressible(r, *conf.enable, *conf.min_length, *conf.types) && compression_allowed(r);
}

Code zstd_header_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<ZstdLocConf>();
  if (!take_coding(r, Coding::Zstd, compressible(r, *conf.enable, *conf.min_length, *conf.types))) {
    return next(r);
  }
  auto* ctx = r.pool->make<ZstdCtx>();
  ctx->s.init(r, &http_zstd_filter_module, *conf.bufs);
  r.set_ctx(ctx);
  set_encoded_headers(r, coding_token(Coding::Zstd));
  return next(r);
}

Rc start(Request& r, ZstdCtx& ctx, const ZstdLocConf& conf) {
  if (!g_idle.list.empty()) {
    ctx.cctx = g_idle.list.back();
    g_idle.list.pop_back();
  } else {
    ctx.cctx = ZSTD_createCCtx();
  }
  if (ctx.cctx == nullptr) {
    log_error(LogLevel::Alert, r.log(), 0, "ZSTD_createCCtx() failed");
    return Rc::Error;
  }
  r.pool->add_cleanup(release, &ctx);
  size_t rc = ZSTD_CCtx_setParameter(ctx.cctx, ZSTD_c_compressionLevel, *conf.level);
  off_t len = r.headers_out.content_length_n;
  if (!ZSTD_isError(rc) && len > 0) {
    // Tables no larger than the response needs.
    rc = ZSTD_CCtx_setParameter(ctx.cctx, ZSTD_c_srcSizeHint,
                                static_cast<int>(std::min<off_t>(len, 1 << 30)));
  }
  if (ZSTD_isError(rc)) {
    log_error(LogLevel::Alert, r.log(), 0, "ZSTD_CCtx_setParameter() failed: %s",
              ZSTD_getErrorName(rc));
    return Rc::Error;
  }
  ctx.s.started = true;
  return Rc::Ok;
}

ZSTD_EndDirective zstd_directive(CodecFlush f) {
  switch (f) {
    case CodecFlush::None:
      return ZSTD_e_continue;
    case CodecFlush::Sync:
      return ZSTD_e_flush;
    case CodecFlush::Finish:
      return ZSTD_e_end;
  }
  return ZSTD_e_continue;
}

// One ZSTD_compressStream2 call and what it made of the output buffer.
CodecStep zstd_step(CodecStream& s, void* data) {
  auto& ctx = *static_cast<ZstdCtx*>(data);
  ZSTD_inBuffer in{s.next_in, s.avail_in, 0};
  ZSTD_outBuffer out{s.next_out, s.avail_out, 0};
  size_t left = ZSTD_compressStream2(ctx.cctx, &out, &in, zstd_directive(s.flush));
  if (ZSTD_isError(left)) {
    log_error(LogLevel::Alert, s.r->log(), 0, "ZSTD_compressStream2() failed: %s",
              ZSTD_getErrorName(left));
    return CodecStep::Error;
  }
  s.next_in += in.pos;
  s.avail_in -= in.pos;
  s.next_out += out.pos;
  s.avail_out -= out.pos;
  ctx.in += in.pos;
  ctx.out += out.pos;
  s.after_call();
  // For a flush or the end, `left` is what zstd still has to write; 0: it is all out.
  bool all_out = left == 0 && s.avail_in == 0;
  if (s.flush == CodecFlush::Finish && all_out) {
    release(&ctx);
    return s.pass_last();
  }
  if (s.avail_out == 0) return s.pass_full();
  s.redo = false;
  if (s.flush == CodecFlush::Sync && all_out) return s.pass_flush();
  return CodecStep::More;
}

Rc zstd_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<ZstdCtx>();
  if (ctx == nullptr || ctx->s.done || r.header_only) return next(r, in);
  if (!ctx->s.started && start(r, *ctx, r.loc<ZstdLocConf>()) != Rc::Ok) {
    ctx->s.done = true;
    return Rc::Error;
  }
  ctx->s.add_input(in);
  Rc rc = run_codec_stream(ctx->s, next, zstd_step, ctx);
  if (rc == Rc::Error) {
    release(ctx);
    ctx->s.done = true;
  }
  return rc;
}

void var_zstd_ratio(Request& r, VariableValue& v, uintptr_t) {
  auto* ctx = r.get_ctx<ZstdCtx>();
  if (ctx == nullptr || !ctx->s.done) return v.set_not_found();
  ratio_variable(r, v, ctx->in, ctx->out);
}

constexpr VariableDef kVars[] = {
    {"zstd_ratio", var_zstd_ratio, nullptr, kVarNoCacheable},
};

// --- configuration ---------------------------------------------------------------------------

Status set_level(ConfContext& cf, const ConfNode& n, ZstdLocConf& conf) {
  if (conf.level.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  if (*v < 1 || *v > ZSTD_maxCLevel()) {
    return cf.errorf("value must be between 1 and %d", ZSTD_maxCLevel());
  }
  conf.level = static_cast<int>(*v);
  return {};
}

ZstdLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<ZstdLocConf>();
}

Status merge_loc_conf(ConfContext&, const ZstdLocConf& prev, ZstdLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.bufs.merge(prev.bufs, Bufs{32, 4096});
  conf.level.merge(prev.level, 1);
  conf.min_length.merge(prev.min_length, 20);
  conf.types.merge(prev.types, {"text/html"});
  return {};
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_zstd_filter_module)) return {};
  register_header_filter(cf, FilterId::Zstd, zstd_header_filter);
  register_body_filter(cf, FilterId::Zstd, zstd_body_filter);
  offer_coding(cf, Coding::Zstd, zstd_eligible);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&ZstdLocConf::enable>>("zstd", kHttpMainSrvLocLif | kFlag),
    directive<slot::bufs<&ZstdLocConf::bufs>>("zstd_buffers", kHttpMainSrvLoc | kTake2),
    directive<slot::mime_types<&ZstdLocConf::types>>("zstd_types", kHttpMainSrvLoc | kOneMore),
    directive<set_level>("zstd_comp_level", kHttpMainSrvLoc | kTake1),
    directive<slot::offset<&ZstdLocConf::min_length>>("zstd_min_length", kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_zstd_filter_module));

}  // namespace

Module http_zstd_filter_module{
    .name = "http_zstd_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
