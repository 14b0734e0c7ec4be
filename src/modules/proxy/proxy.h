// What the proxy module's files share: its location configuration, its per-request state, the
// proxy_pass URL's parts, and the request side of its protocol (proxy_request.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/setting.h"
#include "http/script.h"
#include "modules/proxy/proxy_cookie.h"
#include "upstream/http1_response.h"
#include "upstream/set_headers.h"
#include "upstream/upstream.h"
#include "upstream/upstream_settings.h"
#include "upstream/upstream_ssl.h"

namespace weir::http {

extern Module http_proxy_module;

namespace proxy {

// One proxy_redirect rule: a prefix of the upstream's Location (with variables: evaluated per
// request), or a regex over the whole value (~, ~*: the replacement may use its captures).
struct Redirect {
  std::string from;
  ComplexValue* from_value = nullptr;
  std::shared_ptr<HttpRegex> regex;
  ComplexValue to;
};

enum class RedirectMode : uint8_t { Unset, Default, Off, Custom };

struct ProxyLocConf {
  static constexpr Module* kModule = &http_proxy_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  // proxy_pass
  bool pass_set = false;
  std::string url;          // "http://host:port", as written (without the URI part)
  std::string host_header;  // $proxy_host: host[:port], the port only when not 80
  std::string port_text;    // $proxy_port
  std::string uri;          // the URI part ("" when none)
  bool has_uri = false;
  std::string location;  // the location's name, replaced by uri
  UpstreamGroup* group = nullptr;
  ComplexValue* url_value = nullptr;  // proxy_pass with variables

  UpstreamSettings up;  // proxy_buffers, proxy_connect_timeout ... (upstream_settings)
  Setting<size_t> headers_hash_max_size, headers_hash_bucket_size;
  Setting<int> http_version;    // 1000 or 1001
  Setting<bool> pass_trailers;  // nginx 1.27's proxy_pass_trailers
  // proxy_pass https:// and the proxy_ssl_* directives.
  bool ssl = false;
  std::string ssl_host;      // the proxy_pass host (the default proxy_ssl_name)
  UpstreamSsl ssl_settings;  // proxy_ssl_* (upstream_ssl)

  std::vector<SetHeader>* set_headers = nullptr;  // as written at this level (nullptr: inherit)
  std::vector<SetHeader>* headers = nullptr;      // merged: written + defaults
  // With proxy_cache: written + the cache's defaults, for a request whose response may be kept.
  std::vector<SetHeader>* headers_cache = nullptr;
  ComplexValue* method = nullptr;
  ComplexValue* body = nullptr;  // proxy_set_body

  CookieRules cookies;  // proxy_cookie_domain, _path, _flags

  RedirectMode redirect_mode = RedirectMode::Unset;
  std::vector<Redirect>* redirects = nullptr;

  UpstreamConf upstream;
};

// Per request: the response parser's state, and what the request was.
struct ProxyCtx {
  static constexpr Module* kModule = &http_proxy_module;
  Http1Response response;
  bool chunked_body = false;  // the request body goes chunked (no buffering, length unknown)
  // $proxy_internal_body_length: proxy_set_body's length, else the client's body's (-1: none
  // known, not found), as nginx's.
  off_t internal_body_length = -1;
  // proxy_pass with variables: this request's $proxy_host, $proxy_port and URI part.
  std::string_view host_header;
  std::string_view port_text;
  std::string_view uri;
};

inline ProxyLocConf& proxy_conf(Request& r) {
  return r.loc<ProxyLocConf>();
}

inline ProxyCtx& proxy_ctx(Request& r) {
  return *r.get_ctx<ProxyCtx>();
}

// A proxy_pass URL taken apart: "http://host[:port][/uri]" or "http://unix:/path[:/uri]". Views
// into the text.
struct ProxyUrl {
  std::string_view host;         // "unix:/path" for a socket
  uint16_t port = 0;             // 0: none written (80)
  std::string_view host_header;  // $proxy_host: host[:port], the port only when not 80
  std::string_view port_text;    // $proxy_port
  std::string_view uri;          // "" when none
  bool ssl = false;              // https://
};
Result<ProxyUrl> parse_proxy_url(std::string_view url);

// The protocol's request side: the request as the upstream gets it (method, URI, header, body), a
// streamed body's chunks, and the start over before a retry.
// proxy_cache_key's default: the proxy_pass URL up to its URI part, then the URI the upstream
// gets ("http://127.0.0.1:8080/a?b").
std::string_view cache_key(Request& r);
Code create_request(Request& r);
ChainLink* body_filter(Request& r, ChainLink* in, bool last);
Code reinit_request(Request& r);

}  // namespace proxy
}  // namespace weir::http
