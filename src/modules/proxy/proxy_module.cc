// proxy: HTTP/1.x to an upstream on the upstream lifecycle (src/upstream/). It builds the request
// (proxy_request.cc: method, the URI after proxy_pass's replacement rules, proxy_set_header's
// fields and the client's others, the body read by the foundation), parses the status line and
// header strictly (a line that is not HTTP/1.x is a 502, never passed through as HTTP/0.9), and
// decodes the body: copy bounded by Content-Length (extra bytes dropped, the connection not
// reused), chunked (strict framing), or up to the upstream's close (upstream/http1_response).
// Location headers are rewritten by proxy_redirect. nginx: src/http/modules/ngx_http_proxy_module.c
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "conf/cycle.h"
#include "core/escape.h"
#include "core/str.h"
#include "event/ssl.h"
#include "http/core_module.h"
#include "http/http_connection.h"
#include "http/request_body.h"
#include "http/script.h"
#include "http/ssl_module.h"
#include "http/variables.h"
#include "modules/proxy/proxy.h"
#include "upstream/event_pipe.h"
#include "upstream/http1_response.h"
#include "upstream/upstream.h"
#include "upstream/upstream_module.h"
#include "upstream/upstream_settings.h"

namespace weir::http {

namespace {

using namespace proxy;

// --- the response: HTTP/1 (upstream/http1_response) -----------------------------------------

HeaderResult process_header(Request& r) {
  return http1_process_header(r, proxy_ctx(r).response);
}

// proxy_redirect's first rule that matches the URL in value from prefix on rewrites it (a regex
// replaces all of it, a prefix its start); the text before prefix stays. True when one did.
bool rewrite_redirect(Request& r, const std::vector<Redirect>& redirects, std::string_view& value,
                      size_t prefix) {
  std::string_view url = value.substr(prefix);
  for (const Redirect& rd : redirects) {
    std::string_view rest;
    if (rd.regex != nullptr) {
      if (!regex_exec(r, *rd.regex, url)) continue;  // replaces the whole URL
    } else {
      std::string_view from = rd.from_value != nullptr ? rd.from_value->eval(r) : rd.from;
      if (!url.starts_with(from)) continue;
      rest = url.substr(from.size());
    }
    std::string_view to = rd.to.eval(r);
    char* p = r.pool->alloc_bytes(prefix + to.size() + rest.size());
    // rest may be empty with no data: a regex replaced all
    char* e = put(put(put(p, value.substr(0, prefix)), to), rest);
    value = {p, static_cast<size_t>(e - p)};
    return true;
  }
  return false;
}

// proxy_redirect: the upstream's Location, rewritten; a rewritten one is the response's redirect
// (made absolute by the header filter when relative, as nginx). The URL of a Refresh header
// ("5; url=...") is rewritten alike, as nginx's.
void rewrite_location(Request& r) {
  ProxyLocConf& plcf = proxy_conf(r);
  if (plcf.redirects == nullptr) return;
  Header* loc = r.headers_out.location;  // absolute; a relative one is only in the list
  for (Header* h : r.headers_out.headers) {
    if (h->hash == 0) continue;
    if (loc == nullptr && h->lowcase_key == "location") loc = h;
    if (h->lowcase_key == "refresh") {
      size_t url = ifind(h->value, "url=");
      if (url != std::string_view::npos) rewrite_redirect(r, *plcf.redirects, h->value, url + 4);
    }
  }
  if (loc != nullptr && rewrite_redirect(r, *plcf.redirects, loc->value, 0)) {
    r.headers_out.location = loc;
  }
}

// proxy_cookie_*: the upstream's Set-Cookie headers, rewritten.
void rewrite_set_cookies(Request& r) {
  const CookieRules& rules = proxy_conf(r).cookies;
  if (!rules.any()) return;
  for (Header* h : r.headers_out.headers) {
    if (h->hash != 0 && h->lowcase_key == "set-cookie")
      h->value = rewrite_cookie(r, rules, h->value);
  }
}

void rewrite_headers(Request& r) {
  rewrite_location(r);
  rewrite_set_cookies(r);
}

Rc input_filter_init(Request& r) {
  return http1_input_filter_init(r, proxy_ctx(r).response);
}

Rc input_filter(Request& r, size_t bytes) {
  return http1_input_filter(r, proxy_ctx(r).response, bytes);
}

Rc pipe_filter(EventPipe& p, Buffer* raw, char* from) {
  return http1_pipe_filter(p, raw, from, proxy_ctx(*static_cast<Request*>(p.input_ctx)).response);
}

void finalize(Request&, Code) {}

// proxy_pass with variables: the URL of this request picks an upstream group of that name, or
// names a peer for the lifecycle (an address, or a name it resolves).
Code eval_url(Request& r, ProxyLocConf& plcf, Upstream& u) {
  std::string_view url = plcf.url_value->eval(r);
  Result<ProxyUrl> parsed = parse_proxy_url(url);
  if (!parsed.ok()) {
    log_error(LogLevel::Error, r.log(), 0, "%s", parsed.status().message().c_str());
    return Code::status(500);
  }
  const ProxyUrl& pu = *parsed;
  ProxyCtx& ctx = proxy_ctx(r);
  ctx.host_header = pu.host_header;
  ctx.port_text = pu.port_text;
  ctx.uri = pu.uri;
  u.ssl = pu.ssl;
  if (u.ssl) {
    if (plcf.upstream.ssl == nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "no TLS context for \"%.*s\"",
                static_cast<int>(url.size()), url.data());
      return Code::status(500);
    }
    u.ssl_name = plcf.ssl_settings.name != nullptr ? plcf.ssl_settings.name->eval(r) : pu.host;
  }
  if (UpstreamGroup* g = find_upstream_group(r, pu.host, pu.port)) {
    u.group = g;
    return Rc::Ok;
  }
  u.resolve_host = pu.host;
  u.resolve_port = pu.port != 0 ? pu.port : (pu.ssl ? 443 : 80);
  return Rc::Ok;
}

constexpr UpstreamProtocol kProxyProtocol{
    .cache_key = cache_key,
    .create_request = create_request,
    .reinit_request = reinit_request,
    .body_filter = body_filter,
    .process_header = process_header,
    .rewrite_headers = rewrite_headers,
    .input_filter_init = input_filter_init,
    .input_filter = input_filter,
    .pipe_input_filter = pipe_filter,
    .abort = nullptr,
    .finalize = finalize,
};

Code proxy_handler(Request& r) {
  ProxyLocConf& plcf = proxy_conf(r);
  Upstream* u = create_upstream(r);
  u->conf = &plcf.upstream;
  u->protocol = &kProxyProtocol;
  u->schema = "http://";
  r.set_ctx(r.pool->make<ProxyCtx>());
  if (plcf.ssl) {
    u->ssl = true;
    u->schema = "https://";
    u->ssl_name =
        plcf.ssl_settings.name != nullptr ? plcf.ssl_settings.name->eval(r) : plcf.ssl_host;
  }
  if (plcf.url_value != nullptr) {
    if (Code rc = eval_url(r, plcf, *u); rc != Rc::Ok) return rc;
  }
  // proxy_request_buffering off streams the body, except where it cannot go on as it comes: a
  // chunked body to an HTTP/1.0 upstream must be counted first (as nginx).
  r.request_body_no_buffering = !*plcf.up.request_buffering && plcf.body == nullptr &&
                                *plcf.up.pass_request_body &&
                                !(r.headers_in.chunked && *plcf.http_version == 1000);
  Code rc = read_client_request_body(r, init_upstream);
  if (rc.is_status() && rc.http_status() >= kHttpSpecialResponse) return rc;
  return Rc::Done;
}

// --- variables -------------------------------------------------------------------------------

void var_proxy_host(Request& r, VariableValue& v, uintptr_t) {
  ProxyLocConf& plcf = proxy_conf(r);
  if (!plcf.pass_set) {
    v.set_not_found();
    return;
  }
  v.set(plcf.url_value != nullptr ? proxy_ctx(r).host_header : plcf.host_header);
}

void var_proxy_port(Request& r, VariableValue& v, uintptr_t) {
  ProxyLocConf& plcf = proxy_conf(r);
  if (!plcf.pass_set) {
    v.set_not_found();
    return;
  }
  v.set(plcf.url_value != nullptr ? proxy_ctx(r).port_text : plcf.port_text);
}

void var_add_x_forwarded_for(Request& r, VariableValue& v, uintptr_t) {
  std::string_view addr = r.http_connection->addr_text(*r.connection);
  size_t len = 0;
  for (Header* h : r.headers_in.headers) {
    if (h->hash != 0 && h->lowcase_key == "x-forwarded-for") len += h->value.size() + 2;
  }
  if (len == 0) {
    v.set(addr);
    return;
  }
  char* buf = r.pool->alloc_bytes(len + addr.size());
  char* p = buf;
  for (Header* h : r.headers_in.headers) {
    if (h->hash == 0 || h->lowcase_key != "x-forwarded-for") continue;
    std::memcpy(p, h->value.data(), h->value.size());
    p += h->value.size();
    *p++ = ',';
    *p++ = ' ';
  }
  std::memcpy(p, addr.data(), addr.size());
  p += addr.size();
  v.set({buf, static_cast<size_t>(p - buf)});
}

void var_internal_body_length(Request& r, VariableValue& v, uintptr_t) {
  const ProxyCtx* ctx = r.get_ctx<ProxyCtx>();
  if (ctx == nullptr || ctx->internal_body_length < 0) {
    v.set_not_found();
    return;
  }
  char* p = r.pool->alloc_bytes(24);
  uint64_t n = static_cast<uint64_t>(ctx->internal_body_length);
  v.set({p, static_cast<size_t>(put_uint(p, n) - p)});
}

// "chunked" while the request body goes to the upstream chunked (nginx's own header line uses it).
void var_internal_chunked(Request& r, VariableValue& v, uintptr_t) {
  const ProxyCtx* ctx = r.get_ctx<ProxyCtx>();
  if (ctx == nullptr || !ctx->chunked_body) {
    v.set_not_found();
    return;
  }
  v.set("chunked");
}

constexpr VariableDef kVars[] = {
    {"proxy_host", var_proxy_host, nullptr, 0},
    {"proxy_port", var_proxy_port, nullptr, 0},
    {"proxy_add_x_forwarded_for", var_add_x_forwarded_for, nullptr, kVarNoCacheable},
    {"proxy_internal_body_length", var_internal_body_length, nullptr, kVarNoCacheable},
    {"proxy_internal_chunked", var_internal_chunked, nullptr, kVarNoCacheable},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

// --- directives ------------------------------------------------------------------------------

// health_check (NGINX Plus's): active checks of the group this location proxies to.
Status health_check(ConfContext& cf, const ConfNode& n, ProxyLocConf& conf) {
  return add_health_check(cf, n, conf.upstream);
}

Status set_pass(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  if (plcf.pass_set) return Status::error("is duplicate");
  std::string_view url = n.args[1];
  CoreLocConf& clcf = conf_of<CoreLocConf>(cf.http->loc_conf);
  if (url.find('$') != std::string_view::npos) {
    // Evaluated per request: an upstream group of that name, an address, or a name for the
    // resolver.
    plcf.url_value = cf.pool.make<ComplexValue>();
    if (Status s = plcf.url_value->compile(cf, url); !s.ok()) return s;
    plcf.pass_set = true;
    plcf.location = clcf.name;
    set_location_handler(cf, proxy_handler);
    if (!clcf.name.empty() && clcf.name.back() == '/') clcf.auto_redirect = true;
    return {};
  }
  Result<ProxyUrl> parsed = parse_proxy_url(url);
  if (!parsed.ok()) {
    // At load nginx names no URL for a wrong prefix (at run time, with variables, it does).
    std::string_view msg = parsed.status().message();
    return cf.error(msg.starts_with("invalid URL prefix") ? "invalid URL prefix" : msg);
  }
  const ProxyUrl& pu = *parsed;
  if (!pu.uri.empty() && (clcf.regex != nullptr || clcf.named || clcf.noname)) {
    return cf.error(
        "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside "
        "named location, or inside \"if\" statement, or inside \"limit_except\" block");
  }
  plcf.host_header = std::string(pu.host_header);
  plcf.port_text = std::string(pu.port_text);
  plcf.pass_set = true;
  plcf.url = std::string(url.substr(0, url.size() - pu.uri.size()));
  plcf.uri = std::string(pu.uri);
  plcf.has_uri = !pu.uri.empty();
  plcf.location = clcf.name;
  plcf.group = add_upstream_group(cf, pu.host, pu.port, pu.ssl ? 443 : 80);
  plcf.ssl = pu.ssl;
  plcf.ssl_host = std::string(pu.host);
  set_location_handler(cf, proxy_handler);
  if (!clcf.name.empty() && clcf.name.back() == '/') clcf.auto_redirect = true;
  return {};
}

Status set_header(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  return add_set_header(cf, n, plcf.set_headers);
}

Status set_method(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  if (plcf.method != nullptr) return Status::error("is duplicate");
  plcf.method = cf.pool.make<ComplexValue>();
  return plcf.method->compile(cf, n.args[1]);
}

Status set_body(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  if (plcf.body != nullptr) return Status::error("is duplicate");
  plcf.body = cf.pool.make<ComplexValue>();
  return plcf.body->compile(cf, n.args[1]);
}

Status set_http_version(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  if (plcf.http_version.set) return Status::error("is duplicate");
  if (n.args[1] == "1.0") {
    plcf.http_version = 1000;
  } else if (n.args[1] == "1.1") {
    plcf.http_version = 1001;
  } else {
    return cf.errorf("invalid value \"%s\"", n.args[1].c_str());
  }
  return {};
}

Status set_redirect(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  if (n.nargs() == 1) {
    if (n.args[1] == "off") {
      plcf.redirect_mode = RedirectMode::Off;
      plcf.redirects = nullptr;
      return {};
    }
    if (n.args[1] == "false") {
      plcf.redirect_mode = RedirectMode::Off;
      return {};
    }
    if (n.args[1] != "default") return cf.errorf("invalid parameter \"%s\"", n.args[1].c_str());
    if (plcf.redirect_mode == RedirectMode::Off) return Status::error("is duplicate");
    if (plcf.redirects == nullptr) plcf.redirects = cf.pool.make<std::vector<Redirect>>();
    plcf.redirect_mode = RedirectMode::Custom;
    Redirect rd;
    rd.from =
        "\x01"
        "default";  // filled in at merge, once proxy_pass is known
    plcf.redirects->push_back(std::move(rd));
    return {};
  }
  if (n.nargs() != 2) return Status::error("invalid number of arguments");
  if (plcf.redirect_mode == RedirectMode::Off) return Status::error("is duplicate");
  if (plcf.redirects == nullptr) plcf.redirects = cf.pool.make<std::vector<Redirect>>();
  plcf.redirect_mode = RedirectMode::Custom;
  Redirect rd;
  std::string_view from = n.args[1];
  if (from.starts_with('~')) {
    from.remove_prefix(1);
    bool caseless = from.starts_with('*');
    if (caseless) from.remove_prefix(1);
    rd.regex = std::make_shared<HttpRegex>();
    if (Status s = compile_http_regex(cf, *rd.regex, from, caseless); !s.ok()) return s;
  } else if (from.find('$') != std::string_view::npos) {
    rd.from_value = cf.pool.make<ComplexValue>();
    if (Status s = rd.from_value->compile(cf, from, false); !s.ok()) return s;
  }
  rd.from = n.args[1];
  if (Status s = rd.to.compile(cf, n.args[2]); !s.ok()) return s;
  plcf.redirects->push_back(std::move(rd));
  return {};
}

template <auto List>
Status set_cookie_rewrite(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  return add_cookie_rewrite(cf, n, plcf.cookies.*List);
}

Status set_cookie_flags(ConfContext& cf, const ConfNode& n, ProxyLocConf& plcf) {
  return add_cookie_flags(cf, n, plcf.cookies.flags);
}

ProxyLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<ProxyLocConf>();
}

constexpr const char* kHiddenByDefault[] = {
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
};

Status merge_loc_conf(ConfContext& cf, const ProxyLocConf& prev, ProxyLocConf& conf) {
  if (!conf.pass_set && prev.pass_set && conf.group == nullptr) {
    // proxy_pass is not inherited as a handler, but its values are (for `if` blocks and
    // nested locations without their own, as nginx's).
    conf.url = prev.url;
    conf.host_header = prev.host_header;
    conf.port_text = prev.port_text;
    conf.uri = prev.uri;
    conf.has_uri = prev.has_uri;
    conf.location = prev.location;
    conf.group = prev.group;
    conf.url_value = prev.url_value;
    conf.ssl = prev.ssl;
    conf.ssl_host = prev.ssl_host;
  }
  if (Status st = merge_upstream_settings(cf, "proxy", SettingsKind::Full, prev.up, conf.up,
                                          kHiddenByDefault, conf.upstream);
      !st.ok()) {
    return st;
  }
  conf.headers_hash_max_size.merge(prev.headers_hash_max_size, 512);
  conf.headers_hash_bucket_size.merge(prev.headers_hash_bucket_size, 64);
  conf.http_version.merge(prev.http_version, 1000);
  conf.pass_trailers.merge(prev.pass_trailers, false);
  merge_cookie_rules(prev.cookies, conf.cookies);
  if (conf.method == nullptr) conf.method = prev.method;
  if (conf.body == nullptr) conf.body = prev.body;

  // proxy_set_header: a level with its own lines does not inherit; the defaults come after them.
  // With the cache, the upstream is asked for the whole response, unconditionally but for the
  // expired entry's validators when it is revalidated: the cache answers the client's conditions
  // and ranges itself (nginx's ngx_http_proxy_cache_headers).
  static constexpr std::pair<const char*, const char*> kDefaults[] = {{"Host", "$proxy_host"},
                                                                      {"Connection", "close"}};
  static constexpr std::pair<const char*, const char*> kCacheDefaults[] = {
      {"Host", "$proxy_host"},
      {"Connection", "close"},
      {"If-Modified-Since", "$upstream_cache_last_modified"},
      {"If-Unmodified-Since", ""},
      {"If-None-Match", "$upstream_cache_etag"},
      {"If-Match", ""},
      {"Range", ""},
      {"If-Range", ""}};
  Result<std::vector<SetHeader>*> headers =
      merge_set_headers(cf, prev.set_headers, conf.set_headers, kDefaults);
  if (!headers.ok()) return headers.status();
  conf.headers = *headers;
  conf.headers_cache = nullptr;
  if (conf.upstream.cache != nullptr) {
    headers = merge_set_headers(cf, prev.set_headers, conf.set_headers, kCacheDefaults);
    if (!headers.ok()) return headers.status();
    conf.headers_cache = *headers;
  }

  // proxy_redirect default: the proxied URL (with its URI part) becomes the location.
  if (conf.redirect_mode == RedirectMode::Unset) {
    conf.redirect_mode =
        prev.redirect_mode == RedirectMode::Unset ? RedirectMode::Default : prev.redirect_mode;
    conf.redirects = prev.redirects;
  }
  auto default_rule = [&]() -> Status {
    Redirect rd;
    if (conf.has_uri) {
      rd.from = conf.url + conf.uri;
      return rd.to.compile(cf, conf.location).ok()
                 ? (conf.redirects->push_back(std::move(rd)), Status{})
                 : cf.error("invalid proxy_redirect");
    }
    rd.from = conf.url + "/";
    if (Status s = rd.to.compile(cf, "/"); !s.ok()) return s;
    conf.redirects->push_back(std::move(rd));
    return {};
  };
  if (conf.pass_set && conf.redirect_mode == RedirectMode::Default && conf.url_value == nullptr) {
    conf.redirects = cf.pool.make<std::vector<Redirect>>();
    if (Status s = default_rule(); !s.ok()) return s;
  } else if (conf.pass_set && conf.redirects != nullptr) {
    // "proxy_redirect default" among custom rules.
    auto* list = cf.pool.make<std::vector<Redirect>>();
    std::vector<Redirect>* saved = conf.redirects;
    conf.redirects = list;
    for (Redirect& rd : *saved) {
      if (rd.from ==
          "\x01"
          "default") {
        if (Status s = default_rule(); !s.ok()) return s;
      } else {
        list->push_back(rd);
      }
    }
  }
  if (conf.redirect_mode == RedirectMode::Off) conf.redirects = nullptr;

  conf.upstream.group = conf.group;
  conf.upstream.tag = &http_proxy_module;
  conf.upstream.pass_trailers = *conf.pass_trailers;
  // proxy_ssl_*: a client context where the location may speak TLS to its peer.
  if (Status st = merge_upstream_ssl(cf, "proxy", prev.ssl_settings, conf.ssl_settings,
                                     conf.ssl || conf.url_value != nullptr, "", conf.upstream);
      !st.ok()) {
    return st;
  }
  return {};
}

using P = ProxyLocConf;
constexpr Directive kOwnDirectives[] = {
    directive<set_pass>("proxy_pass", kHttpLocConf | kHttpLifConf | kHttpLmtConf | kTake1),
    directive<health_check>("health_check", kHttpLocConf | kAnyArgs),
    directive<set_header>("proxy_set_header", kHttpMainSrvLoc | kTake2),
    directive<
        settings_detail::on_settings<P, &P::up, slot::send_lowat<&UpstreamSettings::send_lowat>>>(
        "proxy_send_lowat", kHttpMainSrvLoc | kTake1),
    directive<set_method>("proxy_method", kHttpMainSrvLoc | kTake1),
    directive<set_body>("proxy_set_body", kHttpMainSrvLoc | kTake1),
    directive<set_http_version>("proxy_http_version", kHttpMainSrvLoc | kTake1),
    directive<set_redirect>("proxy_redirect", kHttpMainSrvLoc | kTake12),
    directive<set_cookie_rewrite<&CookieRules::domains>>("proxy_cookie_domain",
                                                         kHttpMainSrvLoc | kTake12),
    directive<set_cookie_rewrite<&CookieRules::paths>>("proxy_cookie_path",
                                                       kHttpMainSrvLoc | kTake12),
    directive<set_cookie_flags>("proxy_cookie_flags", kHttpMainSrvLoc | kTake1234),
    // Sizes of nginx's header hash: weir's lookups need none, the values are checked as nginx's.
    directive<slot::num<&P::headers_hash_max_size>>("proxy_headers_hash_max_size",
                                                    kHttpMainSrvLoc | kTake1),
    directive<slot::num<&P::headers_hash_bucket_size>>("proxy_headers_hash_bucket_size",
                                                       kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&P::pass_trailers>>("proxy_pass_trailers", kHttpMainSrvLoc | kFlag),
};
constexpr auto kDirectives =
    join_directives(join_directives(std::to_array(kOwnDirectives),
                                    upstream_directives<P, &P::up, "proxy", SettingsKind::Full>()),
                    upstream_ssl_directives<P, &P::ssl_settings, "proxy">());
static_assert(directives_of(kDirectives, &http_proxy_module));

}  // namespace

Module http_proxy_module{
    .name = "http_proxy",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
