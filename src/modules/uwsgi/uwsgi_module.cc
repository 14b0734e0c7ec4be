// uwsgi: requests to a uwsgi application server (Python's uWSGI ...) on the upstream lifecycle, as
// nginx's ngx_http_uwsgi_module. The request is one uwsgi packet (a 4-byte header: modifier1, the
// vars' size in little endian, modifier2; then each uwsgi_param and header field as two
// length-prefixed strings), uwsgi_string, then the body as it is. The answer is HTTP/1.x, read by
// the HTTP/1 response codec proxy uses. nginx: src/http/modules/ngx_http_uwsgi_module.c
#include <string>

#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "upstream/cgi_params.h"
#include "upstream/http1_response.h"
#include "upstream/upstream.h"
#include "upstream/upstream_module.h"
#include "upstream/upstream_settings.h"
#include "upstream/upstream_ssl.h"

namespace weir::http {

extern Module http_uwsgi_module;

namespace {

struct UwsgiLocConf {
  static constexpr Module* kModule = &http_uwsgi_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  CgiPass pass;
  UpstreamSettings up;
  UpstreamSsl ssl;  // uwsgi_ssl_*, for suwsgi://
  CgiParams params;
  Setting<std::string> string;  // uwsgi_string
  Setting<int64_t> modifier1, modifier2;
  UpstreamConf upstream;
};

// uwsgi_pass's schemes: uwsgi, and uwsgi over TLS.
constexpr CgiSchemes kSchemes{"uwsgi://", "suwsgi://"};

struct UwsgiCtx {
  static constexpr Module* kModule = &http_uwsgi_module;
  Http1Response response;
};

UwsgiLocConf& uwsgi_conf(Request& r) {
  return r.loc<UwsgiLocConf>();
}
Http1Response& response(Request& r) {
  return r.get_ctx<UwsgiCtx>()->response;
}

char* put_le16(char* p, size_t n) {
  *p++ = static_cast<char>(n & 0xff);
  *p++ = static_cast<char>((n >> 8) & 0xff);
  return p;
}

Code create_request(Request& r) {
  UwsgiLocConf& conf = uwsgi_conf(r);
  Upstream& u = *r.upstream;
  std::span<const CgiPair> pairs = cgi_pairs(r, conf.params, *conf.up.pass_request_headers);
  size_t len = 0;
  for (const CgiPair& p : pairs) {
    if (p.key_size() > 0xffff || p.value.size() > 0xffff) {
      log_error(LogLevel::Error, r.log(), 0, "uwsgi request is too long");
      return Code::status(500);
    }
    len += 2 + p.key_size() + 2 + p.value.size();
  }
  if (len > 0xffff) {
    log_error(LogLevel::Error, r.log(), 0, "uwsgi request is too long: %zu", len);
    return Code::status(500);
  }
  const std::string& extra = *conf.string;
  Buffer* head = Buffer::create_temp(*r.pool, 4 + len + extra.size());
  char* p = head->last;
  *p++ = static_cast<char>(*conf.modifier1);
  p = put_le16(p, len);
  *p++ = static_cast<char>(*conf.modifier2);
  for (const CgiPair& pair : pairs) {
    p = put_le16(p, pair.key_size());
    p = pair.put_key(p);
    p = put_le16(p, pair.value.size());
    p = put(p, pair.value);
  }
  p = put(p, extra);
  head->last = p;
  head->start = head->pos;
  ChainLink* out = r.pool->alloc_link();
  out->buf = head;
  out->next = nullptr;
  ChainLink** tail = &out->next;
  // The body as the foundation read it (without request buffering it follows as it comes).
  if (*conf.up.pass_request_body && r.request_body != nullptr && !r.request_body_no_buffering) {
    append_request_body(r, tail);
  }
  u.request_bufs = out;
  return Rc::Ok;
}

Code reinit_request(Request& r) {
  response(r).reset();
  return Rc::Ok;
}

HeaderResult process_header(Request& r) {
  return http1_process_header(r, response(r));
}
Rc input_filter_init(Request& r) {
  return http1_input_filter_init(r, response(r));
}
Rc input_filter(Request& r, size_t bytes) {
  return http1_input_filter(r, response(r), bytes);
}
Rc pipe_filter(EventPipe& p, Buffer* raw, char* from) {
  return http1_pipe_filter(p, raw, from, response(*static_cast<Request*>(p.input_ctx)));
}

constexpr UpstreamProtocol kUwsgiProtocol{
    .create_request = create_request,
    .reinit_request = reinit_request,
    .process_header = process_header,
    .input_filter_init = input_filter_init,
    .input_filter = input_filter,
    .pipe_input_filter = pipe_filter,
};

Code uwsgi_handler(Request& r) {
  UwsgiLocConf& conf = uwsgi_conf(r);
  auto* ctx = r.pool->make<UwsgiCtx>();
  ctx->response.head = r.method & kHead;
  ctx->response.protocol = "uwsgi";
  r.set_ctx(ctx);
  return start_cgi_upstream(r, {&conf.upstream, &kUwsgiProtocol, "uwsgi://", kSchemes, &conf.ssl},
                            conf.pass, !*conf.up.request_buffering && *conf.up.pass_request_body);
}

// --- directives ------------------------------------------------------------------------------

Status set_pass(ConfContext& cf, const ConfNode& n, UwsgiLocConf& conf) {
  return set_cgi_pass(cf, n, conf.pass, uwsgi_handler, kSchemes);
}

Status add_param(ConfContext& cf, const ConfNode& n, UwsgiLocConf& conf) {
  return add_cgi_param(cf, n, conf.params);
}

UwsgiLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<UwsgiLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const UwsgiLocConf& prev, UwsgiLocConf& conf) {
  merge_cgi_pass(prev.pass, conf.pass);
  if (Status st = merge_upstream_settings(cf, "uwsgi", SettingsKind::Full, prev.up, conf.up,
                                          kCgiHiddenHeaders, conf.upstream);
      !st.ok()) {
    return st;
  }
  conf.string.merge(prev.string, std::string());
  conf.modifier1.merge(prev.modifier1, 0);
  conf.modifier2.merge(prev.modifier2, 0);
  for (int64_t m : {*conf.modifier1, *conf.modifier2}) {
    if (m < 0 || m > 255) return cf.error("invalid value");
  }
  merge_cgi_params(prev.params, conf.params);
  if (Status st =
          merge_upstream_ssl(cf, "uwsgi", prev.ssl, conf.ssl,
                             conf.pass.ssl || conf.pass.value != nullptr, "", conf.upstream);
      !st.ok()) {
    return st;
  }
  conf.upstream.group = conf.pass.group;
  conf.upstream.tag = &http_uwsgi_module;
  return {};
}

using U = UwsgiLocConf;
constexpr Directive kOwnDirectives[] = {
    directive<set_pass>("uwsgi_pass", kHttpLocConf | kHttpLifConf | kTake1),
    directive<add_param>("uwsgi_param", kHttpMainSrvLoc | kTake23),
    directive<slot::str<&U::string>>("uwsgi_string", kHttpMainSrvLoc | kTake1),
    directive<slot::num<&U::modifier1>>("uwsgi_modifier1", kHttpMainSrvLoc | kTake1),
    directive<slot::num<&U::modifier2>>("uwsgi_modifier2", kHttpMainSrvLoc | kTake1),
};
constexpr auto kDirectives =
    join_directives(join_directives(std::to_array(kOwnDirectives),
                                    upstream_directives<U, &U::up, "uwsgi", SettingsKind::Full>()),
                    upstream_ssl_directives<U, &U::ssl, "uwsgi">());
static_assert(directives_of(kDirectives, &http_uwsgi_module));

}  // namespace

Module http_uwsgi_module{
    .name = "http_uwsgi",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
