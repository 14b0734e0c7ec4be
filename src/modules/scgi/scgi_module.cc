// scgi: requests to an SCGI application server on the upstream lifecycle, as nginx's
// ngx_http_scgi_module. The request is a netstring of NUL-separated names and values
// (CONTENT_LENGTH first, as the protocol wants and nginx writes it, then each scgi_param and header
// field) followed by the body as it is. The answer is a CGI header ("Status:") or an HTTP/1.x
// status line and header, then the body up to the close. nginx:
// src/http/modules/ngx_http_scgi_module.c
#include <string>

#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "upstream/cgi_params.h"
#include "upstream/upstream.h"
#include "upstream/upstream_module.h"
#include "upstream/upstream_settings.h"

namespace weir::http {

extern Module http_scgi_module;

namespace {

struct ScgiLocConf {
  static constexpr Module* kModule = &http_scgi_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  CgiPass pass;
  UpstreamSettings up;
  CgiParams params;
  UpstreamConf upstream;
};

struct ScgiCtx {
  static constexpr Module* kModule = &http_scgi_module;
  bool first_line = true;  // the answer may start with an HTTP/1.x status line
  StatusLine status;
  HeaderLineState header;
};

ScgiLocConf& scgi_conf(Request& r) {
  return r.loc<ScgiLocConf>();
}

Code create_request(Request& r) {
  ScgiLocConf& conf = scgi_conf(r);
  Upstream& u = *r.upstream;
  std::span<const CgiPair> pairs = cgi_pairs(r, conf.params, *conf.up.pass_request_headers);
  // The body's buffers first: CONTENT_LENGTH, which leads the netstring, is their size.
  bool send_body = *conf.up.pass_request_body && r.request_body != nullptr;
  ChainLink* body_bufs = nullptr;
  ChainLink** body_tail = &body_bufs;
  off_t body = 0;
  if (send_body && !r.request_body_no_buffering) {
    body = append_request_body(r, body_tail);
  } else if (send_body) {
    body = r.headers_in.content_length_n > 0 ? r.headers_in.content_length_n : 0;
  }
  char* length = r.pool->alloc_bytes(24);
  std::string_view content_length(length, static_cast<size_t>(put_uint(length, body) - length));
  size_t len = sizeof "CONTENT_LENGTH" + content_length.size() + 1;
  for (const CgiPair& p : pairs) len += p.key_size() + 1 + p.value.size() + 1;
  char* digits = r.pool->alloc_bytes(24);
  size_t ndigits = static_cast<size_t>(put_uint(digits, len) - digits);
  Buffer* head = Buffer::create_temp(*r.pool, ndigits + 1 + len + 1);
  char* p = put(head->last, {digits, ndigits});
  *p++ = ':';
  p = put(p, "CONTENT_LENGTH");
  *p++ = '\0';
  p = put(p, content_length);
  *p++ = '\0';
  for (const CgiPair& pair : pairs) {
    p = pair.put_key(p);
    *p++ = '\0';
    p = put(p, pair.value);
    *p++ = '\0';
  }
  *p++ = ',';
  head->last = p;
  head->start = head->pos;
  ChainLink* out = r.pool->alloc_link();
  out->buf = head;
  out->next = body_bufs;
  u.request_bufs = out;
  return Rc::Ok;
}

Code reinit_request(Request& r) {
  *r.get_ctx<ScgiCtx>() = ScgiCtx{};
  return Rc::Ok;
}

HeaderResult process_header(Request& r) {
  ScgiCtx& ctx = *r.get_ctx<ScgiCtx>();
  Upstream& u = *r.upstream;
  Buffer& b = u.buffer;
  if (ctx.first_line) {
    // "HTTP/1.x 200 OK" first, or straight into the CGI header.
    size_t n = std::min<size_t>(5, static_cast<size_t>(b.last - b.pos));
    if (std::string_view(b.pos, n) != std::string_view("HTTP/", n)) {
      ctx.first_line = false;
    } else if (n < 5) {
      return HeaderResult::Again;
    } else {
      ParseResult pr = parse_status_line(ctx.status, b);
      if (pr == ParseResult::Again) return HeaderResult::Again;
      if (pr != ParseResult::Ok || ctx.status.code < 100) {
        log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid status line");
        return HeaderResult::Invalid;
      }
      ctx.first_line = false;
      u.headers_in.status = ctx.status.code;
      u.headers_in.status_line =
          r.pool->dup({ctx.status.start, static_cast<size_t>(ctx.status.end - ctx.status.start)});
    }
  }
  for (;;) {
    ParseResult pr = parse_header_line(ctx.header, b, true);
    if (pr == ParseResult::Again) return HeaderResult::Again;
    if (pr == ParseResult::HeaderDone) {
      cgi_header_done(u);
      return HeaderResult::Done;
    }
    if (pr != ParseResult::Ok || ctx.header.invalid) {
      log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid header");
      return HeaderResult::Invalid;
    }
    if (cgi_header_field(r, ctx.header, "scgi") == HeaderResult::Invalid) {
      return HeaderResult::Invalid;
    }
  }
}

constexpr UpstreamProtocol kScgiProtocol{
    .create_request = create_request,
    .reinit_request = reinit_request,
    .process_header = process_header,
};

Code scgi_handler(Request& r) {
  ScgiLocConf& conf = scgi_conf(r);
  r.set_ctx(r.pool->make<ScgiCtx>());
  // CONTENT_LENGTH comes first: without request buffering only a body of known length streams.
  return start_cgi_upstream(
      r, {&conf.upstream, &kScgiProtocol, "scgi://", {}}, conf.pass,
      !*conf.up.request_buffering && *conf.up.pass_request_body && !r.headers_in.chunked);
}

// --- directives ------------------------------------------------------------------------------

Status set_pass(ConfContext& cf, const ConfNode& n, ScgiLocConf& conf) {
  return set_cgi_pass(cf, n, conf.pass, scgi_handler);
}

Status add_param(ConfContext& cf, const ConfNode& n, ScgiLocConf& conf) {
  return add_cgi_param(cf, n, conf.params);
}

ScgiLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<ScgiLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const ScgiLocConf& prev, ScgiLocConf& conf) {
  merge_cgi_pass(prev.pass, conf.pass);
  if (Status st = merge_upstream_settings(cf, "scgi", SettingsKind::Full, prev.up, conf.up,
                                          kCgiHiddenHeaders, conf.upstream);
      !st.ok()) {
    return st;
  }
  merge_cgi_params(prev.params, conf.params);
  conf.upstream.group = conf.pass.group;
  conf.upstream.tag = &http_scgi_module;
  return {};
}

using S = ScgiLocConf;
constexpr Directive kOwnDirectives[] = {
    directive<set_pass>("scgi_pass", kHttpLocConf | kHttpLifConf | kTake1),
    directive<add_param>("scgi_param", kHttpMainSrvLoc | kTake23),
};
constexpr auto kDirectives = join_directives(
    std::to_array(kOwnDirectives), upstream_directives<S, &S::up, "scgi", SettingsKind::Full>());
static_assert(directives_of(kDirectives, &http_scgi_module));

}  // namespace

Module http_scgi_module{
    .name = "http_scgi",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
