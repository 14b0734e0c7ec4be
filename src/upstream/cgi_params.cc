#include "upstream/cgi_params.h"

#include <algorithm>

#include "core/str.h"
#include "http/core_module.h"
#include "http/request.h"
#include "http/request_body.h"
#include "upstream/upstream_cache.h"
#include "upstream/upstream_module.h"
#include "upstream/upstream_ssl.h"

namespace weir::http {

namespace {

// Whether a param names the field (HTTP_X_CUSTOM for X-Custom): nginx matches the names
// case-insensitively.
bool named_by_param(const CgiParams& params, std::string_view key) {
  for (const std::string& name : params.header_params) {
    if (name.size() != key.size() + 5) continue;
    bool same = true;
    for (size_t i = 0; i < key.size() && same; i++) {
      char c = key[i] == '-' ? '_' : to_upper(key[i]);
      same = to_upper(name[i + 5]) == c;
    }
    if (same) return true;
  }
  return false;
}

bool is_cache_condition(std::string_view lowcase_key) {
  return lowcase_key == "if-modified-since" || lowcase_key == "if-unmodified-since" ||
         lowcase_key == "if-none-match" || lowcase_key == "if-match" || lowcase_key == "range" ||
         lowcase_key == "if-range";
}

// The Status field: "404" or "404 Not Found".
bool set_status(Upstream& u, std::string_view value) {
  if (value.size() < 3) return false;
  auto code = parse_int(value.substr(0, 3));
  if (!code || *code < 100 || *code > 999 || (value.size() > 3 && value[3] != ' ')) return false;
  u.headers_in.status = static_cast<int>(*code);
  if (value.size() > 4) u.headers_in.status_line = value;
  return true;
}

}  // namespace

Status add_cgi_param(ConfContext& cf, const ConfNode& n, CgiParams& params) {
  if (n.nargs() == 3 && n.args[3] != "if_not_empty") {
    return cf.errorf("invalid parameter \"%s\"", n.args[3].c_str());
  }
  if (params.written == nullptr) params.written = cf.pool.make<std::vector<CgiParam>>();
  CgiParam p;
  p.key = n.args[1];
  p.if_not_empty = n.nargs() == 3;
  if (Status s = p.value.compile(cf, n.args[2]); !s.ok()) return s;
  params.written->push_back(std::move(p));
  return {};
}

void merge_cgi_params(const CgiParams& prev, CgiParams& conf) {
  if (conf.written == nullptr) conf.written = prev.written;
  conf.header_params.clear();
  if (conf.written == nullptr) return;
  for (const CgiParam& p : *conf.written) {
    if (p.key.starts_with("HTTP_")) conf.header_params.push_back(p.key);
  }
}

char* CgiPair::put_key(char* p) const {
  if (!header) return put(p, key);
  p = put(p, "HTTP_");
  for (char c : key) *p++ = c == '-' ? '_' : to_upper(c);
  return p;
}

std::span<const CgiPair> cgi_pairs(Request& r, const CgiParams& params, bool pass_headers) {
  size_t count = params.written != nullptr ? params.written->size() : 0;
  if (pass_headers) {
    for ([[maybe_unused]] Header* h : r.headers_in.headers) count++;
  }
  auto* pairs =
      static_cast<CgiPair*>(r.pool->alloc(sizeof(CgiPair) * (count + 1), alignof(CgiPair)));
  size_t n = 0;
  if (params.written != nullptr) {
    for (const CgiParam& p : *params.written) {
      std::string_view v = p.value.eval(r);
      if (p.if_not_empty && v.empty()) continue;
      pairs[n++] = CgiPair{p.key, v, false};
    }
  }
  // With the cache, the upstream is asked for the whole response, unconditionally (nginx's
  // ngx_http_fastcgi_cache_headers and its twins).
  bool caching =
      r.upstream != nullptr && r.upstream->cache != nullptr && r.upstream->cache->may_store;
  if (pass_headers) {
    for (Header* h : r.headers_in.headers) {
      if (h->hash == 0 || named_by_param(params, h->key)) continue;
      if (caching && is_cache_condition(h->lowcase_key)) continue;
      pairs[n++] = CgiPair{h->key, h->value, true};
    }
  }
  return {pairs, n};
}

namespace {

// url without its scheme; ssl set when it is the TLS one.
std::string_view strip_scheme(std::string_view url, CgiSchemes schemes, bool& ssl) {
  ssl = false;
  if (!schemes.ssl.empty() && istarts_with(url, schemes.ssl)) {
    ssl = true;
    return url.substr(schemes.ssl.size());
  }
  if (!schemes.plain.empty() && istarts_with(url, schemes.plain)) {
    return url.substr(schemes.plain.size());
  }
  return url;
}

}  // namespace

Status set_cgi_pass(ConfContext& cf, const ConfNode& n, CgiPass& pass, Code (*handler)(Request&),
                    CgiSchemes schemes) {
  if (pass.set) return Status::error("is duplicate");
  std::string_view url = n.args[1];
  CoreLocConf& clcf = conf_of<CoreLocConf>(cf.http->loc_conf);
  pass.set = true;
  set_location_handler(cf, handler);
  if (!clcf.name.empty() && clcf.name.back() == '/') clcf.auto_redirect = true;
  if (url.find('$') != std::string_view::npos) {
    pass.value = cf.pool.make<ComplexValue>();
    return pass.value->compile(cf, url);
  }
  url = strip_scheme(url, schemes, pass.ssl);
  Result<PassAddress> parsed = parse_pass_address(url);
  if (!parsed.ok()) return parsed.status();
  pass.ssl_host = std::string(parsed->host);
  pass.group = add_upstream_group(cf, parsed->host, parsed->port, 0);
  return {};
}

void merge_cgi_pass(const CgiPass& prev, CgiPass& conf) {
  if (!conf.set && prev.set && conf.group == nullptr) {
    conf.group = prev.group;
    conf.value = prev.value;
    conf.ssl = prev.ssl;
    conf.ssl_host = prev.ssl_host;
  }
}

Code cgi_pass_peer(Request& r, Upstream& u, const CgiPass& pass, CgiSchemes schemes,
                   std::string_view& host) {
  u.ssl = pass.ssl;
  host = pass.ssl_host;
  if (pass.value == nullptr) return Rc::Ok;
  bool ssl;
  std::string_view url = strip_scheme(pass.value->eval(r), schemes, ssl);
  u.ssl = ssl;
  host = url.substr(0, url.find('/'));  // its port is cut off with the TLS name's
  return set_pass_peer(r, u, url);
}

Code start_cgi_upstream(Request& r, const CgiStart& start, const CgiPass& pass, bool stream_body) {
  Upstream* u = create_upstream(r);
  u->conf = start.conf;
  u->protocol = start.protocol;
  u->schema = start.schema;
  std::string_view host;
  if (Code rc = cgi_pass_peer(r, *u, pass, start.pass_schemes, host); rc != Rc::Ok) return rc;
  if (u->ssl) {
    u->schema = start.pass_schemes.ssl;
    u->ssl_name = start.ssl->name != nullptr ? start.ssl->name->eval(r) : host;
  }
  r.request_body_no_buffering = stream_body;
  Code rc = read_client_request_body(r, init_upstream);
  if (rc.is_status() && rc.http_status() >= kHttpSpecialResponse) return rc;
  return Rc::Done;
}

HeaderResult cgi_header_field(Request& r, const HeaderLineState& hs, const char* protocol) {
  Upstream& u = *r.upstream;
  // The buffer is reused for the body: the field is kept in the pool.
  std::string_view key =
      r.pool->dup({hs.name_start, static_cast<size_t>(hs.name_end - hs.name_start)});
  std::string_view value =
      r.pool->dup({hs.value_start, static_cast<size_t>(hs.value_end - hs.value_start)});
  WEIR_DEBUG(r.log(), "http %s header: \"%.*s: %.*s\"", protocol, static_cast<int>(key.size()),
             key.data(), static_cast<int>(value.size()), value.data());
  Header* h = u.headers_in.headers.push(*r.pool, key, value);
  h->lowcase_key = header_lowcase_key(hs, key, *r.pool);
  if (h->lowcase_key == "status") {
    if (!set_status(u, value)) {
      log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid status \"%.*s\"",
                static_cast<int>(value.size()), value.data());
      return HeaderResult::Invalid;
    }
  } else if (h->lowcase_key == "location") {
    u.headers_in.location = h;
  } else if (h->lowcase_key == "content-length") {
    // The client is told the length, and the body is bounded by it (as nginx).
    auto n = parse_int(value);
    if (!n || *n < 0 ||
        (u.headers_in.content_length_n >= 0 && *n != u.headers_in.content_length_n)) {
      log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid \"Content-Length\" header");
      return HeaderResult::Invalid;
    }
    u.headers_in.content_length_n = *n;
  }
  return HeaderResult::Again;
}

void cgi_header_done(Upstream& u) {
  if (u.headers_in.status != 0) return;
  bool redirect = u.headers_in.location != nullptr;
  u.headers_in.status = redirect ? 302 : 200;
  u.headers_in.status_line = redirect ? "302 Moved Temporarily" : "200 OK";
}

}  // namespace weir::http
