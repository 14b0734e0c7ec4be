// proxy's request: the method, the URI after proxy_pass's replacement rules, proxy_set_header's
// fields and the client's others (less hop-by-hop ones), the body read by the foundation or
// streamed in chunks; and the proxy_pass URL taken apart. nginx: ngx_http_proxy_create_request,
// ngx_http_proxy_parse_url
#include <cstdio>
#include <cstring>

#include "core/escape.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "modules/proxy/proxy.h"
#include "upstream/upstream_cache.h"

namespace weir::http::proxy {

namespace {

bool hop_by_hop(std::string_view lowcase) {
  return lowcase == "connection" || lowcase == "keep-alive" || lowcase == "te" ||
         lowcase == "upgrade" || lowcase == "transfer-encoding" || lowcase == "expect" ||
         lowcase == "content-length" || lowcase == "host";
}

// Whether the client's Connection header names this field (a hop-by-hop field of its own).
bool listed_in_connection(Request& r, std::string_view lowcase) {
  Header* c = r.headers_in.connection;
  if (c == nullptr) return false;
  std::string_view v = c->value;
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view token = trim_ows(v.substr(0, comma));
    if (iequals(token, lowcase)) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

// The URI the upstream gets: the client's as it came when proxy_pass has no URI part (and nothing
// rewrote it); else the location's prefix replaced by the URI part (dropped when rewrite changed
// the URI inside the location), the rest escaped where the URI had been decoded, and the args.
std::string_view upstream_uri(Request& r, ProxyLocConf& plcf) {
  if (plcf.url_value != nullptr) {
    // With variables, a URI part is sent as it is (nginx); without one, the client's.
    if (!proxy_ctx(r).uri.empty()) return proxy_ctx(r).uri;
    if (r.valid_unparsed_uri) return r.unparsed_uri;
  } else if (!plcf.has_uri && r.valid_unparsed_uri) {
    return r.unparsed_uri;
  }
  bool replace = plcf.has_uri && r.valid_location && plcf.url_value == nullptr;
  size_t loc_len = replace ? std::min(plcf.location.size(), r.uri.size()) : 0;
  std::string_view prefix = replace ? std::string_view(plcf.uri) : std::string_view("");
  std::string_view rest = r.uri.substr(loc_len);
  bool escape = r.quoted_uri || r.internal;
  size_t rest_len = escape ? escape_uri(nullptr, rest, Escape::Uri) : rest.size();
  size_t len = prefix.size() + rest_len + (r.args.empty() ? 0 : 1 + r.args.size());
  char* buf = r.pool->alloc_bytes(len);
  char* p = buf;
  std::memcpy(p, prefix.data(), prefix.size());
  p += prefix.size();
  if (escape) {
    p += escape_uri(p, rest, Escape::Uri);
  } else {
    std::memcpy(p, rest.data(), rest.size());
    p += rest.size();
  }
  if (!r.args.empty()) {
    *p++ = '?';
    std::memcpy(p, r.args.data(), r.args.size());
    p += r.args.size();
  }
  return {buf, static_cast<size_t>(p - buf)};
}

// The pieces of the request header, gathered before one buffer of their total size is made (values
// with variables are evaluated once). Sized for the most the request can need.
struct HeaderPieces {
  std::string_view* parts;
  size_t n = 0;
  size_t total = 0;
  void add(std::string_view s) {
    parts[n++] = s;
    total += s.size();
  }
};

}  // namespace

Result<ProxyUrl> parse_proxy_url(std::string_view url) {
  ProxyUrl pu;
  pu.ssl = istarts_with(url, "https://");
  if (!pu.ssl && !istarts_with(url, "http://")) {
    return Status::errorf("invalid URL prefix in \"%.*s\"", static_cast<int>(url.size()),
                          url.data());
  }
  uint16_t default_port = pu.ssl ? 443 : 80;
  std::string_view rest = url.substr(pu.ssl ? 8 : 7);
  std::string_view hostport;
  if (istarts_with(rest, "unix:")) {
    size_t colon = rest.find(':', 5);
    hostport = rest.substr(0, colon);
    if (colon != std::string_view::npos) pu.uri = rest.substr(colon + 1);
    if (hostport.size() <= 5) return Status::error("no path in the unix domain socket");
    pu.host = hostport;
    pu.host_header = "localhost";
    return pu;
  }
  size_t slash = rest.find('/');
  hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) pu.uri = rest.substr(slash);
  if (hostport.empty()) {
    return Status::errorf("no host in upstream \"%.*s\"", static_cast<int>(rest.size()),
                          rest.data());
  }
  pu.host = hostport;
  pu.port_text = pu.ssl ? "443" : "80";
  size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos && hostport.find(']', colon) == std::string_view::npos) {
    pu.host = hostport.substr(0, colon);
    pu.port_text = hostport.substr(colon + 1);
    auto v = parse_int(pu.port_text);
    if (!v || *v < 1 || *v > 65535) {
      return Status::errorf("invalid port in upstream \"%.*s\"", static_cast<int>(hostport.size()),
                            hostport.data());
    }
    pu.port = static_cast<uint16_t>(*v);
  }
  pu.host_header = pu.port != 0 && pu.port != default_port ? hostport : pu.host;
  return pu;
}

std::string_view cache_key(Request& r) {
  ProxyLocConf& plcf = proxy_conf(r);
  std::string_view url = plcf.url;
  if (plcf.url_value != nullptr) {
    url = plcf.url_value->eval(r);
    url.remove_suffix(std::min(url.size(), proxy_ctx(r).uri.size()));
  }
  std::string_view uri = upstream_uri(r, plcf);
  char* key = r.pool->alloc_bytes(url.size() + uri.size());
  std::memcpy(key, url.data(), url.size());
  std::memcpy(key + url.size(), uri.data(), uri.size());
  return {key, url.size() + uri.size()};
}

Code create_request(Request& r) {
  ProxyLocConf& plcf = proxy_conf(r);
  Upstream& u = *r.upstream;
  ProxyCtx& ctx = proxy_ctx(r);
  std::string_view method = plcf.method != nullptr ? plcf.method->eval(r) : r.method_name;
  // proxy_cache_convert_head: the cache keeps a HEAD's answer fetched whole.
  if (u.cache != nullptr && u.cache->convert_head && method == "HEAD") method = "GET";
  ctx.response.head = method == "HEAD";
  std::string_view uri = upstream_uri(r, plcf);
  u.uri = uri;

  // The body: what proxy_set_body makes, or the client's as the foundation read it.
  ChainLink* body = nullptr;
  ChainLink** body_tail = &body;
  off_t body_len = -1;
  if (plcf.body != nullptr) {
    std::string_view b = plcf.body->eval(r);
    body_len = static_cast<off_t>(b.size());
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = Buffer::create_memory(*r.pool, b);
    cl->next = nullptr;
    *body_tail = cl;
  } else if (r.request_body_no_buffering) {
    // The body follows as it comes (the lifecycle takes it through body_filter): its length is
    // the client's, or unknown and chunked to the upstream while it is still being read (a chunked
    // body read whole already has its length, as nginx sends it).
    ctx.chunked_body = r.headers_in.chunked && r.reading_body;
    body_len = ctx.chunked_body ? -1 : r.headers_in.content_length_n;
  } else if (*plcf.up.pass_request_body && r.request_body != nullptr &&
             (r.headers_in.content_length_n >= 0 || r.headers_in.chunked)) {
    body_len = append_request_body(r, body_tail);
  }

  ctx.internal_body_length =
      plcf.body != nullptr ? body_len : (ctx.chunked_body ? -1 : r.headers_in.content_length_n);

  // A response the cache may keep is asked for whole (nginx's headers_cache).
  const std::vector<SetHeader>& headers =
      u.cache != nullptr && u.cache->may_store && plcf.headers_cache != nullptr
          ? *plcf.headers_cache
          : *plcf.headers;
  // Four pieces per header line, four for the request line, three for Content-Length, one for the
  // blank line.
  size_t lines = headers.size();
  for ([[maybe_unused]] Header* h : r.headers_in.headers) lines++;
  size_t max_parts = 4 * lines + 8;
  HeaderPieces w{static_cast<std::string_view*>(
      r.pool->alloc(sizeof(std::string_view) * max_parts, alignof(std::string_view)))};
  w.add(method);
  w.add(" ");
  w.add(uri);
  w.add(*plcf.http_version == 1001 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  for (const SetHeader& h : headers) {
    std::string_view v = h.value.eval(r);
    if (v.empty()) continue;  // an empty value removes the field
    w.add(h.key);
    w.add(": ");
    w.add(v);
    w.add("\r\n");
  }
  if (body_len >= 0) {
    char* n = r.pool->alloc_bytes(24);
    char* e = put_uint(n, static_cast<uint64_t>(body_len));
    w.add("Content-Length: ");
    w.add({n, static_cast<size_t>(e - n)});
    w.add("\r\n");
  } else if (ctx.chunked_body) {
    w.add("Transfer-Encoding: chunked\r\n");
  }
  if (*plcf.up.pass_request_headers) {
    for (Header* h : r.headers_in.headers) {
      if (h->hash == 0) continue;
      std::string_view lc = h->lowcase_key;
      if (hop_by_hop(lc) || listed_in_connection(r, lc)) continue;
      bool overridden = false;
      for (const SetHeader& s : headers) {
        if (s.lowcase_key == lc) {
          overridden = true;
          break;
        }
      }
      if (overridden) continue;
      w.add(h->key);
      w.add(": ");
      w.add(h->value);
      w.add("\r\n");
    }
  }
  w.add("\r\n");
  Buffer* head = Buffer::create_temp(*r.pool, w.total);
  for (size_t i = 0; i < w.n; i++) {
    std::memcpy(head->last, w.parts[i].data(), w.parts[i].size());
    head->last += w.parts[i].size();
  }
  WEIR_DEBUG(r.log(), "http proxy header:\n\"%.*s\"", static_cast<int>(head->size()), head->pos);
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = head;
  cl->next = body;
  u.request_bufs = cl;
  return Rc::Ok;
}

// No request buffering: with the length unknown each piece of the body is a chunk, and the last
// chunk ends it.
ChainLink* body_filter(Request& r, ChainLink* in, bool last) {
  if (!proxy_ctx(r).chunked_body) return in;
  off_t size = 0;
  ChainLink** tail = &in;
  for (; *tail != nullptr; tail = &(*tail)->next) size += (*tail)->buf->size();
  auto link = [&](std::string_view text) {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = Buffer::create_memory(*r.pool, text);
    cl->next = nullptr;
    return cl;
  };
  if (size > 0) {
    char* p = r.pool->alloc_bytes(20);
    int n = std::snprintf(p, 20, "%llx\r\n", static_cast<unsigned long long>(size));
    ChainLink* head = link({p, static_cast<size_t>(n)});
    head->next = in;
    *tail = link("\r\n");
    tail = &(*tail)->next;
    in = head;
  }
  if (last) *tail = link("0\r\n\r\n");
  return in;
}

// Another peer: the parser starts over (the lifecycle rewinds the request's buffers).
// Before a retry: the response parser starts over (the request, its $proxy_host and the rest stay).
Code reinit_request(Request& r) {
  proxy_ctx(r).response.reset();
  return Rc::Ok;
}

}  // namespace weir::http::proxy
