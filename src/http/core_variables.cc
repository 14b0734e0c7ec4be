// nginx's core variables ($uri, $args, $remote_addr, $http_*, $cookie_*, $arg_*, ...): their
// getters and setters, and the table add_core_variables registers. nginx:
// src/http/ngx_http_variables.c
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "conf/conf_context.h"
#include "conf/cycle.h"
#include "core/base64.h"
#include "core/inet.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/http_connection.h"
#include "http/request.h"
#include "http/request_body.h"
#include "http/variables.h"  // add_core_variables, find_header_value

namespace weir::http {

namespace {

std::string_view pool_number(Request& r, uint64_t v) {
  char* p = r.pool->alloc_bytes(20);
  char* e = put_uint(p, v);
  return {p, static_cast<size_t>(e - p)};
}

// --- getters
// ---------------------------------------------------------------------------------------

template <Header* HeadersIn::*Slot>
void var_in_header(Request& r, VariableValue& v, uintptr_t) {
  Header* h = r.headers_in.*Slot;
  if (h == nullptr) {
    v.set_not_found();
    return;
  }
  v.set(h->value);
}

// Several headers of one name joined (X-Forwarded-For with ",", Cookie with ";").
void var_joined_header(Request& r, VariableValue& v, std::string_view name, char sep) {
  size_t len = 0;
  int n = 0;
  for (Header* h : r.headers_in.headers) {
    if (h->hash == 0 || !iequals(h->key, name)) continue;
    len += h->value.size() + (n > 0 ? 2 : 0);
    n++;
  }
  if (n == 0) {
    v.set_not_found();
    return;
  }
  char* p = r.pool->alloc_bytes(len);
  char* e = p;
  int i = 0;
  for (Header* h : r.headers_in.headers) {
    if (h->hash == 0 || !iequals(h->key, name)) continue;
    if (i++ > 0) {
      *e++ = sep;
      *e++ = ' ';
    }
    e = put(e, h->value);
  }
  v.set({p, len});
}

void var_x_forwarded_for(Request& r, VariableValue& v, uintptr_t) {
  var_joined_header(r, v, "X-Forwarded-For", ',');
}
void var_cookies(Request& r, VariableValue& v, uintptr_t) {
  var_joined_header(r, v, "Cookie", ';');
}

void var_unknown_header(Request& r, VariableValue& v, std::string_view var,
                        const HeaderList& list) {
  for (Header* h : list) {
    if (h->hash == 0 || h->key.size() != var.size()) continue;
    bool match = true;
    for (size_t n = 0; n < var.size(); n++) {
      char ch = h->key[n];
      if (ch >= 'A' && ch <= 'Z') {
        ch = static_cast<char>(ch | 0x20);
      } else if (ch == '-') {
        ch = '_';
      }
      if (var[n] != ch) {
        match = false;
        break;
      }
    }
    if (match) {
      v.set(h->value);
      return;
    }
  }
  v.set_not_found();
}

void var_http_prefix(Request& r, VariableValue& v, uintptr_t data) {
  auto* name = reinterpret_cast<const std::string*>(data);
  var_unknown_header(r, v, std::string_view(*name).substr(5), r.headers_in.headers);
}

void var_sent_http_prefix(Request& r, VariableValue& v, uintptr_t data) {
  auto* name = reinterpret_cast<const std::string*>(data);
  var_unknown_header(r, v, std::string_view(*name).substr(10), r.headers_out.headers);
}

// Finds "name=value" pairs separated by sep in s (case-insensitive names).
bool find_pair(std::string_view s, std::string_view name, char sep, bool trim,
               std::string_view& out) {
  size_t i = 0;
  while (i <= s.size()) {
    size_t end = s.find(sep, i);
    if (end == std::string_view::npos) end = s.size();
    std::string_view item = s.substr(i, end - i);
    if (trim) {
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    }
    size_t eq = item.find('=');
    std::string_view key = eq == std::string_view::npos ? item : item.substr(0, eq);
    if (iequals(key, name) && eq != std::string_view::npos) {
      out = item.substr(eq + 1);
      return true;
    }
    if (end == s.size()) break;
    i = end + 1;
  }
  return false;
}

}  // namespace

bool find_arg(std::string_view args, std::string_view name, std::string_view& value) {
  return find_pair(args, name, '&', false, value);
}

bool find_cookie(Request& r, std::string_view name, std::string_view& value, const Header** line) {
  for (Header* h : r.headers_in.headers) {
    if (h->hash == 0 || !iequals(h->key, "Cookie")) continue;
    if (find_pair(h->value, name, ';', true, value)) {
      if (line != nullptr) *line = h;
      return true;
    }
  }
  return false;
}

SockAddr local_sockaddr(Request& r) {
  SockAddr a;
  const HttpAddr* addr = r.http_connection->addr_conf;
  if (addr != nullptr && !addr->addr.is_wildcard()) return addr->addr;
  local_address(r.connection->fd, a);
  return a;
}

namespace {

void var_cookie_prefix(Request& r, VariableValue& v, uintptr_t data) {
  auto* name = reinterpret_cast<const std::string*>(data);
  std::string_view val;
  if (find_cookie(r, std::string_view(*name).substr(7), val)) {
    v.set(val);
  } else {
    v.set_not_found();
  }
}

void var_arg_prefix(Request& r, VariableValue& v, uintptr_t data) {
  auto* name = reinterpret_cast<const std::string*>(data);
  std::string_view val;
  if (find_pair(r.args, std::string_view(*name).substr(4), '&', false, val)) {
    v.set(val);
  } else {
    v.set_not_found();
  }
}

void var_host(Request& r, VariableValue& v, uintptr_t) {
  if (!r.headers_in.server.empty()) {
    v.set(r.headers_in.server);
  } else {
    v.set(core_srv(r).server_name);
  }
}

void var_remote_addr(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.http_connection->addr_text(*r.connection));
}

void var_binary_remote_addr(Request& r, VariableValue& v, uintptr_t) {
  Connection& c = *r.connection;
  if (c.peer.sa.sa_family == AF_INET) {
    v.set({reinterpret_cast<const char*>(&c.peer.in.sin_addr), 4});
  } else if (c.peer.sa.sa_family == AF_INET6) {
    v.set({reinterpret_cast<const char*>(&c.peer.in6.sin6_addr), 16});
  } else {
    v.set({});
  }
}

void var_remote_port(Request& r, VariableValue& v, uintptr_t) {
  uint16_t port = r.connection->peer_port();
  v.set(port != 0 ? pool_number(r, port) : std::string_view());
}

// $tcpinfo_rtt, _rttvar, _snd_cwnd, _rcv_space: the client connection's TCP_INFO now (not found
// where the kernel has none: a unix socket). nginx: ngx_http_variable_tcpinfo
enum TcpInfoField : uintptr_t { kTcpRtt, kTcpRttVar, kTcpSndCwnd, kTcpRcvSpace };

void var_tcpinfo(Request& r, VariableValue& v, uintptr_t field) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(r.connection->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1) {
    v.set_not_found();
    return;
  }
  uint32_t value = 0;
  switch (field) {
    case kTcpRtt:
      value = ti.tcpi_rtt;
      break;
    case kTcpRttVar:
      value = ti.tcpi_rttvar;
      break;
    case kTcpSndCwnd:
      value = ti.tcpi_snd_cwnd;
      break;
    case kTcpRcvSpace:
      value = ti.tcpi_rcv_space;
      break;
    default:
      break;
  }
  v.set(pool_number(r, value));
}

void var_server_addr(Request& r, VariableValue& v, uintptr_t) {
  SockAddr a = local_sockaddr(r);
  char* p = r.pool->alloc_bytes(128);
  size_t n = format_addr_text(a.sa(), p, 128);
  v.set({p, n});
}

void var_server_port(Request& r, VariableValue& v, uintptr_t) {
  SockAddr a = local_sockaddr(r);
  uint16_t port = a.port();
  v.set(port != 0 ? pool_number(r, port) : std::string_view());
}

// $proxy_protocol_addr / _server_addr (data: 0 the client's, 1 the one it connected to): not found
// without a PROXY protocol header that names addresses.
const ProxyProtocolAddrs::Addr* proxy_protocol_addr(Request& r, uintptr_t which) {
  const ProxyProtocolAddrs* pp = r.http_connection->proxy_protocol.get();
  if (pp == nullptr || !pp->known()) return nullptr;
  return which == 0 ? &pp->src : &pp->dst;
}

void var_proxy_protocol_addr(Request& r, VariableValue& v, uintptr_t which) {
  const ProxyProtocolAddrs::Addr* a = proxy_protocol_addr(r, which);
  if (a == nullptr) {
    v.set_not_found();
    return;
  }
  char* p = r.pool->alloc_bytes(INET6_ADDRSTRLEN);
  v.set({p, format_addr_text(&a->sa, p, INET6_ADDRSTRLEN)});
}

void var_proxy_protocol_port(Request& r, VariableValue& v, uintptr_t which) {
  const ProxyProtocolAddrs::Addr* a = proxy_protocol_addr(r, which);
  if (a == nullptr) {
    v.set_not_found();
    return;
  }
  uint16_t port = ntohs(a->sa.sa_family == AF_INET ? a->in.sin_port : a->in6.sin6_port);
  v.set(port != 0 ? pool_number(r, port) : std::string_view());
}

void var_server_protocol(Request& r, VariableValue& v, uintptr_t) {
  if (r.http_protocol.empty()) return v.set_not_found();  // HTTP/0.9 names none
  v.set(r.http_protocol);
}
void var_scheme(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.connection->ssl != nullptr ? "https" : "http");
}
void var_https(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.connection->ssl != nullptr ? "on" : "");
}
void var_request_uri(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.unparsed_uri);
}
void var_uri(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.uri);
}

void var_request_line(Request& r, VariableValue& v, uintptr_t) {
  std::string_view line = request_line_so_far(r);
  if (line.data() == nullptr) return v.set_not_found();  // nothing of a request line came
  v.set(line);
}

void var_document_root(Request& r, VariableValue& v, uintptr_t) {
  v.set(location_root(r));
}

void var_realpath_root(Request& r, VariableValue& v, uintptr_t) {
  std::string root(location_root(r));
  char real[PATH_MAX];
  if (::realpath(root.c_str(), real) == nullptr) {
    log_error(LogLevel::Crit, r.log(), errno, "realpath() \"%s\" failed", root.c_str());
    v.set_not_found();
    return;
  }
  v.set(r.pool->dup(real));
}

void var_request_filename(Request& r, VariableValue& v, uintptr_t) {
  size_t root;
  std::string_view path = map_uri_to_path(r, &root, 0);
  if (path.empty()) {
    v.set_not_found();
    return;
  }
  v.set(path);
}

void var_server_name(Request& r, VariableValue& v, uintptr_t) {
  v.set(core_srv(r).server_name);
}
void var_request_method(Request& r, VariableValue& v, uintptr_t) {
  if (r.main->method_name.empty()) {
    v.set_not_found();
    return;
  }
  v.set(r.main->method_name);
}

void var_args(Request& r, VariableValue& v, uintptr_t) {
  if (r.args.data() == nullptr) return v.set_not_found();  // no "?" at all
  v.set(r.args);
}
void set_args(Request& r, std::string_view value, uintptr_t) {
  r.args = value;
}
void var_is_args(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.args.empty() ? "" : "?");
}

void var_bytes_sent(Request& r, VariableValue& v, uintptr_t) {
  v.set(pool_number(r, static_cast<uint64_t>(r.connection->io.sent)));
}

void var_body_bytes_sent(Request& r, VariableValue& v, uintptr_t) {
  off_t sent = r.connection->io.sent - r.header_size;
  v.set(pool_number(r, static_cast<uint64_t>(sent < 0 ? 0 : sent)));
}

void var_status(Request& r, VariableValue& v, uintptr_t) {
  int status = r.err_status != 0 ? r.err_status : r.headers_out.status;
  char* p = r.pool->alloc_bytes(3);
  put_uint_pad(p, static_cast<uint64_t>(status % 1000), 3);
  v.set({p, 3});
}

void var_request_length(Request& r, VariableValue& v, uintptr_t) {
  v.set(pool_number(r, static_cast<uint64_t>(r.request_length)));
}

void var_request_time(Request& r, VariableValue& v, uintptr_t) {
  uint64_t now = clock::wall_msec();
  uint64_t ms = now > r.start_msec ? now - r.start_msec : 0;
  char* p = r.pool->alloc_bytes(24);
  char* e = put_uint(p, ms / 1000);
  *e++ = '.';
  e = put_uint_pad(e, ms % 1000, 3);
  v.set({p, static_cast<size_t>(e - p)});
  v.no_cacheable = true;
}

void var_msec(Request& r, VariableValue& v, uintptr_t) {
  uint64_t now = clock::wall_msec();
  char* p = r.pool->alloc_bytes(24);
  char* e = put_uint(p, now / 1000);
  *e++ = '.';
  e = put_uint_pad(e, now % 1000, 3);
  v.set({p, static_cast<size_t>(e - p)});
  v.no_cacheable = true;
}

void var_time_local(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.pool->dup(clock::http_log_time()));
  v.no_cacheable = true;
}

void var_time_iso8601(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.pool->dup(clock::iso8601()));
  v.no_cacheable = true;
}

void var_content_length(Request& r, VariableValue& v, uintptr_t) {
  if (r.headers_in.content_length != nullptr) {
    v.set(r.headers_in.content_length->value);
  } else if (r.headers_in.content_length_n >= 0 && r.request_body != nullptr &&
             r.request_body->done) {
    v.set(pool_number(r, static_cast<uint64_t>(r.headers_in.content_length_n)));
  } else {
    v.set_not_found();
  }
}

void var_connection(Request& r, VariableValue& v, uintptr_t) {
  v.set(pool_number(r, r.connection->number));
}

void var_connection_requests(Request& r, VariableValue& v, uintptr_t) {
  v.set(pool_number(r, r.connection->requests));
}

void var_hostname(Request&, VariableValue& v, uintptr_t) {
  v.set(host_name());
}

void var_pid(Request& r, VariableValue& v, uintptr_t) {
  v.set(pool_number(r, static_cast<uint64_t>(log_pid())));
}

void var_version(Request&, VariableValue& v, uintptr_t) {
  v.set(WEIR_VERSION);
}

// $nginx_version: the nginx release whose behaviour weir gives, so that what tests it
// (fastcgi_params' SERVER_SOFTWARE "nginx/$nginx_version", an application gating a feature on a
// version) reads a version of nginx; $weir_version is weir's own.
void var_nginx_version(Request&, VariableValue& v, uintptr_t) {
  v.set("1.22.1");
}

void var_pipe(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.connection->requests > 1 ? "p" : ".");
}

void var_request_completion(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.request_complete ? "OK" : "");
}

void var_request_id(Request& r, VariableValue& v, uintptr_t) {
  static uint64_t s0 = 0, s1 = 0;
  if (s0 == 0 && s1 == 0) {
    if (::getrandom(&s0, sizeof s0, 0) != sizeof s0)
      s0 = static_cast<uint64_t>(::getpid()) * 2654435761u;
    if (::getrandom(&s1, sizeof s1, 0) != sizeof s1) s1 = clock::wall_msec() | 1;
  }
  char* p = r.pool->alloc_bytes(32);
  for (int half = 0; half < 2; half++) {
    // xorshift128+: fast, and good enough for an identifier (not a secret).
    uint64_t x = s0, y = s1;
    s0 = y;
    x ^= x << 23;
    s1 = x ^ y ^ (x >> 17) ^ (y >> 26);
    uint64_t out = s1 + y;
    for (int i = 0; i < 16; i++) p[half * 16 + i] = "0123456789abcdef"[(out >> (60 - 4 * i)) & 0xf];
  }
  v.set({p, 32});
}

void var_request_body(Request& r, VariableValue& v, uintptr_t) {
  RequestBody* rb = r.request_body;
  // What has been read so far, even if the body is incomplete (a timed-out request logs its part).
  if (rb == nullptr || rb->bufs == nullptr || rb->temp_file != nullptr) {
    v.set_not_found();
    return;
  }
  size_t len = 0;
  for (ChainLink* cl = rb->bufs; cl != nullptr; cl = cl->next) len += cl->buf->last - cl->buf->pos;
  char* p = r.pool->alloc_bytes(len ? len : 1);
  char* e = p;
  for (ChainLink* cl = rb->bufs; cl != nullptr; cl = cl->next) e = put(e, cl->buf->view());
  v.set({p, len});
}

void var_request_body_file(Request& r, VariableValue& v, uintptr_t) {
  RequestBody* rb = r.request_body;
  if (rb == nullptr || rb->temp_file == nullptr) {
    v.set_not_found();
    return;
  }
  v.set(rb->temp_file->file.name);
}

void var_remote_user(Request& r, VariableValue& v, uintptr_t) {
  Header* h = r.headers_in.authorization;
  if (h == nullptr || !istarts_with(h->value, "Basic ")) {
    v.set_not_found();
    return;
  }
  std::string_view enc = h->value.substr(6);
  while (!enc.empty() && enc.front() == ' ') enc.remove_prefix(1);
  // The credentials decoded, then the part before ':'.
  char* out = r.pool->alloc_bytes(base64_decoded_length(enc.size()));
  std::optional<size_t> n = base64_decode(out, enc);
  if (!n) {
    v.set_not_found();
    return;
  }
  std::string_view decoded(out, *n);
  size_t colon = decoded.find(':');
  if (colon == std::string_view::npos) {
    v.set_not_found();
    return;
  }
  v.set(decoded.substr(0, colon));
}

void var_content_type(Request& r, VariableValue& v, uintptr_t) {
  if (r.headers_in.content_type == nullptr) {
    v.set_not_found();
    return;
  }
  v.set(r.headers_in.content_type->value);
}

void var_sent_content_type(Request& r, VariableValue& v, uintptr_t) {
  if (r.headers_out.content_type.empty()) {
    v.set_not_found();
    return;
  }
  v.set(r.headers_out.content_type);
}

void var_sent_content_length(Request& r, VariableValue& v, uintptr_t) {
  if (r.headers_out.content_length != nullptr) {
    v.set(r.headers_out.content_length->value);
  } else if (r.headers_out.content_length_n >= 0) {
    v.set(pool_number(r, static_cast<uint64_t>(r.headers_out.content_length_n)));
  } else {
    v.set_not_found();
  }
}

void var_sent_location(Request& r, VariableValue& v, uintptr_t) {
  Header* h = r.headers_out.location;
  if (h != nullptr) {
    v.set(h->value);
    return;
  }
  var_unknown_header(r, v, "location", r.headers_out.headers);
}

void var_sent_last_modified(Request& r, VariableValue& v, uintptr_t) {
  if (r.headers_out.last_modified != nullptr) {
    v.set(r.headers_out.last_modified->value);
  } else if (r.headers_out.last_modified_time >= 0) {
    char* p = r.pool->alloc_bytes(clock::kHttpTimeLen);
    clock::format_http_time(p, r.headers_out.last_modified_time);
    v.set({p, clock::kHttpTimeLen});
  } else {
    v.set_not_found();
  }
}

// What the Connection header said, or would have: an HTTP/2 stream is never kept alive itself
// ("close" in nginx's logs too).
bool sent_keepalive(const Request& r) {
  return r.keepalive && r.http_version < 2000;
}

void var_sent_connection(Request& r, VariableValue& v, uintptr_t) {
  if (r.headers_out.status == 101) return v.set("upgrade");
  v.set(sent_keepalive(r) ? "keep-alive" : "close");
}

void var_sent_keep_alive(Request& r, VariableValue& v, uintptr_t) {
  time_t t = *core_loc(r).keepalive_header;
  if (!sent_keepalive(r) || t == 0) {
    v.set_not_found();
    return;
  }
  std::string_view n = pool_number(r, static_cast<uint64_t>(t));
  char* p = r.pool->alloc_bytes(8 + n.size());
  put(put(p, "timeout="), n);
  v.set({p, 8 + n.size()});
}

void var_sent_transfer_encoding(Request& r, VariableValue& v, uintptr_t) {
  if (r.chunked) {
    v.set("chunked");
  } else {
    v.set_not_found();
  }
}

void var_limit_rate(Request& r, VariableValue& v, uintptr_t) {
  v.set(pool_number(r, static_cast<uint64_t>(r.limit_rate)));
}

void set_limit_rate(Request& r, std::string_view value, uintptr_t) {
  auto n = parse_size(value);
  if (!n) {
    log_error(LogLevel::Error, r.log(), 0, "invalid $limit_rate \"%.*s\"",
              static_cast<int>(value.size()), value.data());
    return;
  }
  r.limit_rate = *n;
  r.limit_rate_set = true;
}

void var_connection_time(Request& r, VariableValue& v, uintptr_t) {
  uint64_t ms = clock::msec() - r.connection->start_msec;
  char* p = r.pool->alloc_bytes(24);
  char* e = put_uint(p, ms / 1000);
  *e++ = '.';
  e = put_uint_pad(e, ms % 1000, 3);
  v.set({p, static_cast<size_t>(e - p)});
  v.no_cacheable = true;
}

const VariableDef kCoreVars[] = {
    {"http_host", var_in_header<&HeadersIn::host>, nullptr, 0},
    {"http_user_agent", var_in_header<&HeadersIn::user_agent>, nullptr, 0},
    {"http_referer", var_in_header<&HeadersIn::referer>, nullptr, 0},
    {"http_via", var_in_header<&HeadersIn::via>, nullptr, 0},
    {"http_x_forwarded_for", var_x_forwarded_for, nullptr, 0},
    {"http_cookie", var_cookies, nullptr, 0},
    {"content_length", var_content_length, nullptr, kVarNoCacheable},
    {"content_type", var_content_type, nullptr, 0},
    {"host", var_host, nullptr, 0},
    {"binary_remote_addr", var_binary_remote_addr, nullptr, 0},
    {"remote_addr", var_remote_addr, nullptr, 0},
    {"remote_port", var_remote_port, nullptr, 0},
    {"tcpinfo_rtt", var_tcpinfo, nullptr, kVarNoCacheable, kTcpRtt},
    {"tcpinfo_rttvar", var_tcpinfo, nullptr, kVarNoCacheable, kTcpRttVar},
    {"tcpinfo_snd_cwnd", var_tcpinfo, nullptr, kVarNoCacheable, kTcpSndCwnd},
    {"tcpinfo_rcv_space", var_tcpinfo, nullptr, kVarNoCacheable, kTcpRcvSpace},
    {"server_addr", var_server_addr, nullptr, 0},
    {"server_port", var_server_port, nullptr, 0},
    {"proxy_protocol_addr", var_proxy_protocol_addr, nullptr, 0, 0},
    {"proxy_protocol_port", var_proxy_protocol_port, nullptr, 0, 0},
    {"proxy_protocol_server_addr", var_proxy_protocol_addr, nullptr, 0, 1},
    {"proxy_protocol_server_port", var_proxy_protocol_port, nullptr, 0, 1},
    {"server_protocol", var_server_protocol, nullptr, 0},
    {"scheme", var_scheme, nullptr, 0},
    {"https", var_https, nullptr, 0},
    {"request_uri", var_request_uri, nullptr, 0},
    {"uri", var_uri, nullptr, kVarNoCacheable},
    {"document_uri", var_uri, nullptr, kVarNoCacheable},
    {"request", var_request_line, nullptr, 0},
    {"document_root", var_document_root, nullptr, kVarNoCacheable},
    {"realpath_root", var_realpath_root, nullptr, kVarNoCacheable},
    {"query_string", var_args, nullptr, kVarNoCacheable},
    {"args", var_args, set_args, kVarChangeable | kVarNoCacheable},
    {"is_args", var_is_args, nullptr, kVarNoCacheable},
    {"request_filename", var_request_filename, nullptr, kVarNoCacheable},
    {"server_name", var_server_name, nullptr, 0},
    {"request_method", var_request_method, nullptr, kVarNoCacheable},
    {"remote_user", var_remote_user, nullptr, 0},
    {"bytes_sent", var_bytes_sent, nullptr, kVarNoCacheable},
    {"body_bytes_sent", var_body_bytes_sent, nullptr, kVarNoCacheable},
    {"pipe", var_pipe, nullptr, 0},
    {"request_completion", var_request_completion, nullptr, kVarNoCacheable},
    {"request_body", var_request_body, nullptr, kVarNoCacheable},
    {"request_body_file", var_request_body_file, nullptr, kVarNoCacheable},
    {"request_length", var_request_length, nullptr, kVarNoCacheable},
    {"request_time", var_request_time, nullptr, kVarNoCacheable},
    {"request_id", var_request_id, nullptr, 0},
    {"status", var_status, nullptr, kVarNoCacheable},
    {"sent_http_content_type", var_sent_content_type, nullptr, 0},
    {"sent_http_content_length", var_sent_content_length, nullptr, 0},
    {"sent_http_location", var_sent_location, nullptr, 0},
    {"sent_http_last_modified", var_sent_last_modified, nullptr, 0},
    {"sent_http_connection", var_sent_connection, nullptr, 0},
    {"sent_http_keep_alive", var_sent_keep_alive, nullptr, 0},
    {"sent_http_transfer_encoding", var_sent_transfer_encoding, nullptr, 0},
    {"limit_rate", var_limit_rate, set_limit_rate, kVarChangeable | kVarNoCacheable},
    {"connection", var_connection, nullptr, 0},
    {"connection_requests", var_connection_requests, nullptr, 0},
    {"connection_time", var_connection_time, nullptr, kVarNoCacheable},
    {"nginx_version", var_nginx_version, nullptr, 0},
    {"weir_version", var_version, nullptr, 0},
    {"hostname", var_hostname, nullptr, 0},
    {"pid", var_pid, nullptr, 0},
    {"msec", var_msec, nullptr, kVarNoCacheable},
    {"time_iso8601", var_time_iso8601, nullptr, kVarNoCacheable},
    {"time_local", var_time_local, nullptr, kVarNoCacheable},
};

}  // namespace

Status add_variable(ConfContext& cf, std::string_view name, uint32_t flags, VarGetter get,
                    uintptr_t data) {
  Result<Variable*> added = core_main_conf(cf).variables.add(cf, name, flags);
  if (!added.ok()) return added.status();
  (*added)->get = get;
  (*added)->data = data;
  return {};
}

Status add_variables(ConfContext& cf, std::span<const VariableDef> defs) {
  Variables& vars = core_main_conf(cf).variables;
  for (const VariableDef& d : defs) {
    Result<Variable*> added = vars.add(cf, d.name, d.flags);
    if (!added.ok()) return added.status();
    (*added)->get = d.get;
    (*added)->set = d.set;
    (*added)->data = d.data;
  }
  return {};
}

Status add_core_variables(ConfContext& cf) {
  if (Status s = add_variables(cf, kCoreVars); !s.ok()) return s;
  Variables& vars = core_main_conf(cf).variables;
  vars.add_prefix("http_", var_http_prefix, 0, 0);
  vars.add_prefix("sent_http_", var_sent_http_prefix, 0, 0);
  vars.add_prefix("cookie_", var_cookie_prefix, 0, 0);
  vars.add_prefix("arg_", var_arg_prefix, 0, kVarNoCacheable);
  core_main_conf(cf).prefix = cf.cycle.prefix;
  return {};
}

void unknown_header_variable(Request& r, VariableValue& v, std::string_view var_suffix,
                             const HeaderList& headers) {
  var_unknown_header(r, v, var_suffix, headers);
}

std::string_view find_header_value(Request& r, std::string_view var_suffix, bool) {
  VariableValue v;
  var_unknown_header(r, v, var_suffix, r.headers_in.headers);
  return v.valid ? v.view() : std::string_view();
}

}  // namespace weir::http
