// Slices: a large response fetched (and cached) in pieces of `slice` bytes. $slice_range names the
// piece a request asks its upstream for ("Range: $slice_range"). The first piece is the main
// request's own answer; each next one is a clone subrequest made when the previous has gone out,
// until the client's range (or the whole file) is covered. Each piece must be a 206 whose
// Content-Range is the one asked and whose ETag is the first piece's; its 206 becomes a 200 of the
// complete length at the piece's content_offset, and the range filter cuts the pieces to the
// client's range (subrequest_ranges). nginx: src/http/modules/ngx_http_slice_filter_module.c
#include <cinttypes>
#include <cstdio>
#include <optional>

#include "http/core_module.h"
#include "http/subrequest.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_slice_filter_module;

namespace {

struct SliceLocConf {
  static constexpr Module* kModule = &http_slice_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<size_t> size;  // 0: off
};

// Shared by the main request and every piece's subrequest.
struct SliceCtx {
  static constexpr Module* kModule = &http_slice_filter_module;
  off_t start = 0;  // the next piece's first byte
  off_t end = 0;    // where the client's answer ends
  char range_buf[sizeof "bytes=-" + 2 * 20];
  std::string_view range;  // $slice_range: "bytes=start-(start+size-1)"
  std::string_view etag;   // the first piece's: every piece must be of the same file
  bool last = false;       // the main request's own piece has gone out
  bool active = false;     // the current piece's header arrived and was as asked
  Request* sr = nullptr;   // the current piece's subrequest
};

off_t slice_size(const Request& r) {
  return static_cast<off_t>(*r.loc<SliceLocConf>().size);
}

void set_range(SliceCtx& ctx, off_t size) {
  int n =
      std::snprintf(ctx.range_buf, sizeof ctx.range_buf, "bytes=%" PRId64 "-%" PRId64,
                    static_cast<int64_t>(ctx.start), static_cast<int64_t>(ctx.start + size - 1));
  ctx.range = {ctx.range_buf, static_cast<size_t>(n)};
}

// Where the client's one open-ended or bounded range begins ("bytes=N-..."); 0 for anything else
// (several ranges, a suffix, If-Range: the whole file is then fetched from its first piece).
off_t client_start(const Request& r) {
  if (r.headers_in.if_range != nullptr) return 0;
  const Header* h = r.headers_in.range;
  if (h == nullptr || h->value.size() < 7 || !istarts_with(h->value, "bytes=")) return 0;
  std::string_view v = h->value.substr(6);
  if (v.find(',') != std::string_view::npos) return 0;
  size_t i = v.find_first_not_of(' ');
  if (i == std::string_view::npos) return 0;
  return take_int(v, i).value_or(0);
}

// $slice_range: made on the main request's first use, before its response; a piece's subrequest
// shares the main request's context.
void var_slice_range(Request& r, VariableValue& v, uintptr_t) {
  auto* ctx = r.get_ctx<SliceCtx>();
  if (ctx == nullptr) {
    off_t size = slice_size(r);
    if (!r.is_main() || r.headers_out.status != 0 || size == 0) return v.set_not_found();
    ctx = r.pool->make<SliceCtx>();
    r.set_ctx(ctx);
    ctx->start = size * (client_start(r) / size);
    set_range(*ctx, size);
  }
  v.set(ctx->range);
  v.no_cacheable = true;
}

struct ContentRange {
  off_t start = 0;
  off_t end = 0;               // exclusive
  off_t complete_length = -1;  // "*": unknown
};

// "bytes S-E/T" or "bytes S-E/*", spaces allowed between the parts as nginx allows them.
bool parse_content_range(std::string_view v, ContentRange& cr) {
  if (v.size() < 7 || v.substr(0, 6) != "bytes ") return false;
  size_t i = 6;
  auto spaces = [&] {
    while (i < v.size() && v[i] == ' ') i++;
  };
  auto expect = [&](char c) { return i < v.size() && v[i++] == c; };
  spaces();
  std::optional<int64_t> start = take_int(v, i);
  spaces();
  if (!start || !expect('-')) return false;
  spaces();
  std::optional<int64_t> last = take_int(v, i);
  spaces();
  if (!last || !expect('/')) return false;
  spaces();
  std::optional<int64_t> complete = -1;  // "*": unknown
  if (i < v.size() && v[i] == '*') {
    i++;
  } else {
    complete = take_int(v, i);
    if (!complete) return false;
  }
  spaces();
  if (i != v.size() || *last == INT64_MAX) return false;
  cr = {*start, *last + 1, *complete};
  return true;
}

Code slice_header_filter(Request& r, HeaderNext next) {
  auto* ctx = r.get_ctx<SliceCtx>();
  if (ctx == nullptr) return next(r);
  if (r.headers_out.status != 206) {
    if (r.is_main()) {
      // The upstream ignored the range: its whole answer goes out as it is.
      r.set_ctx<SliceCtx>(nullptr);
      return next(r);
    }
    log_error(LogLevel::Error, r.log(), 0, "unexpected status code %d in slice response",
              r.headers_out.status);
    return Rc::Error;
  }
  const Header* etag = r.headers_out.etag;
  if (!ctx->etag.empty() && (etag == nullptr || etag->value != ctx->etag)) {
    log_error(LogLevel::Error, r.log(), 0, "etag mismatch in slice response");
    return Rc::Error;
  }
  if (etag != nullptr) ctx->etag = etag->value;
  ContentRange cr;
  if (r.headers_out.content_range == nullptr ||
      !parse_content_range(r.headers_out.content_range->value, cr)) {
    log_error(LogLevel::Error, r.log(), 0, "invalid range in slice response");
    return Rc::Error;
  }
  if (cr.complete_length == -1) {
    log_error(LogLevel::Error, r.log(), 0, "no complete length in slice response");
    return Rc::Error;
  }
  WEIR_DEBUG(r.log(), "http slice response range: %" PRId64 "-%" PRId64 "/%" PRId64,
             static_cast<int64_t>(cr.start), static_cast<int64_t>(cr.end),
             static_cast<int64_t>(cr.complete_length));
  off_t size = slice_size(r);
  off_t end = std::min(cr.start + size, cr.complete_length);
  if (cr.start != ctx->start || cr.end != end) {
    log_error(LogLevel::Error, r.log(), 0,
              "unexpected range in slice response: %" PRId64 "-%" PRId64,
              static_cast<int64_t>(cr.start), static_cast<int64_t>(cr.end));
    return Rc::Error;
  }
  ctx->start = end;
  ctx->active = true;
  // The piece as the complete response seen from its offset: the range filter cuts it.
  r.headers_out.status = 200;
  r.headers_out.status_line = {};
  r.headers_out.content_length_n = cr.complete_length;
  r.headers_out.content_offset = cr.start;
  r.headers_out.content_range->hash = 0;
  r.headers_out.content_range = nullptr;
  if (r.headers_out.accept_ranges != nullptr) {
    r.headers_out.accept_ranges->hash = 0;
    r.headers_out.accept_ranges = nullptr;
  }
  r.allow_ranges = true;
  r.subrequest_ranges = true;
  r.single_range = true;
  Code rc = next(r);
  if (!r.is_main()) return rc;
  r.preserve_body = true;  // every piece's subrequest sends the request's body again
  if (r.headers_out.status == 206) {
    // The client asked for a range: the pieces run from the one it begins in to where it ends.
    if (ctx->start + size <= r.headers_out.content_offset) {
      ctx->start = size * (r.headers_out.content_offset / size);
    }
    ctx->end = r.headers_out.content_offset + r.headers_out.content_length_n;
  } else {
    ctx->end = cr.complete_length;
  }
  return rc;
}

Rc slice_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<SliceCtx>();
  if (ctx == nullptr || !r.is_main()) return next(r, in);
  // The main request's own piece does not end the response: the next pieces follow it.
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    if (cl->buf->last_buf) {
      cl->buf->last_buf = false;
      cl->buf->last_in_chain = true;
      cl->buf->sync = true;
      ctx->last = true;
    }
  }
  Rc rc = next(r, in);
  if (rc == Rc::Error || !ctx->last) return rc;
  if (ctx->sr != nullptr && !ctx->sr->done) return rc;
  if (!ctx->active) {
    log_error(LogLevel::Error, r.log(), 0, "missing slice response");
    return Rc::Error;
  }
  if (ctx->start >= ctx->end) {
    r.set_ctx<SliceCtx>(nullptr);
    (void)send_special(r, true, false);
    return rc;
  }
  if (r.buffered != 0) return rc;
  ctx->sr = create_subrequest(r, r.uri, r.args, {.waited = true, .clone = true});
  if (ctx->sr == nullptr) return Rc::Error;
  ctx->sr->set_ctx(ctx);
  set_range(*ctx, slice_size(r));
  ctx->active = false;
  WEIR_DEBUG(r.log(), "http slice subrequest: \"%.*s\"", static_cast<int>(ctx->range.size()),
             ctx->range.data());
  return rc;
}

constexpr VariableDef kVars[] = {
    {"slice_range", var_slice_range, nullptr, kVarNoCacheable},
};

SliceLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<SliceLocConf>();
}

Status merge_loc_conf(ConfContext&, const SliceLocConf& prev, SliceLocConf& conf) {
  conf.size.merge(prev.size, 0);
  return {};
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_slice_filter_module)) return {};
  register_header_filter(cf, FilterId::Slice, slice_header_filter);
  register_body_filter(cf, FilterId::Slice, slice_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::size<&SliceLocConf::size>>("slice", kHttpMainSrvLoc | kTake1),
};

}  // namespace

Module http_slice_filter_module{
    .name = "http_slice_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
