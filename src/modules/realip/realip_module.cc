// realip: behind a balancer, the client's address is the one a trusted peer (set_real_ip_from)
// names in real_ip_header (X-Real-IP, X-Forwarded-For - walked from the right, past trusted
// addresses with real_ip_recursive - or any header, or the PROXY protocol header of a connection on
// `listen ... proxy_protocol`). For the rest of the request $remote_addr,
// $remote_port, allow/deny, the logs and the upstream headers see it; the connection gets its own
// address back when the request ends. $realip_remote_addr and $realip_remote_port keep the
// peer's. Runs at post_read (server-level settings) and again at preaccess (location-level ones).
// nginx: src/http/modules/ngx_http_realip_module.c, ngx_http_get_forwarded_addr
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/cidr.h"
#include "core/inet.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/forwarded_addr.h"
#include "http/http_connection.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_realip_module;

namespace {

enum class RealipFrom : uint8_t { XRealIp, XForwardedFor, Header, ProxyProtocol };

struct RealipLocConf {
  static constexpr Module* kModule = &http_realip_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  std::vector<Cidr>* from = nullptr;  // trusted peers; nullptr: realip is off here
  bool from_unix = false;             // "unix:": unix-socket peers are trusted
  Setting<RealipFrom> type;
  std::string header;  // real_ip_header <name>
  Setting<bool> recursive;
};

// The peer's own address, kept while the request uses the real one.
struct RealipCtx {
  static constexpr Module* kModule = &http_realip_module;
  Connection* c = nullptr;
  decltype(Connection::peer) peer{};
  socklen_t peer_len = 0;
  uint8_t addr_len = 0;
  char addr_buf[sizeof(HttpConnection::addr_buf)]{};
};

TrustedProxies trusted(const RealipLocConf& conf) {
  return {*conf.from, conf.from_unix};
}

void restore(void* data) {
  auto& ctx = *static_cast<RealipCtx*>(data);
  Connection& c = *ctx.c;
  c.peer = ctx.peer;
  c.peer_len = ctx.peer_len;
  if (HttpConnection* hc = http_connection_of(c)) {
    std::memcpy(hc->addr_buf, ctx.addr_buf, ctx.addr_len);
    hc->addr_len = ctx.addr_len;
  }
}

// The address the trusted peer names: in the request's header lines, or in the PROXY protocol
// header the connection began with (with its port).
bool real_address(Request& r, const RealipLocConf& conf, SockAddr& addr) {
  Connection& c = *r.connection;
  std::memcpy(addr.sa(), &c.peer, sizeof c.peer);
  addr.len = c.peer_len;
  if (*conf.type == RealipFrom::ProxyProtocol) {
    const ProxyProtocolAddrs* pp = r.http_connection->proxy_protocol.get();
    if (pp == nullptr || !pp->known() || !trusted(conf).contains(addr.sa())) return false;
    addr = SockAddr{};
    std::memcpy(addr.sa(), &pp->src, ProxyProtocolAddrs::len(pp->src));
    addr.len = ProxyProtocolAddrs::len(pp->src);
    return true;
  }
  std::string_view name = conf.header;
  if (*conf.type == RealipFrom::XRealIp) name = "X-Real-IP";
  if (*conf.type == RealipFrom::XForwardedFor) name = "X-Forwarded-For";
  std::vector<Header*> all = header_lines(r.headers_in.headers, name);
  std::span<Header* const> lines = all;
  if (*conf.type != RealipFrom::XForwardedFor && !lines.empty()) {
    lines = lines.first(1);  // the first line of any other header
  }
  return !lines.empty() &&
         forwarded_addr(trusted(conf), *conf.recursive, addr, lines) != Forwarded::Declined;
}

Code realip_handler(Request& r) {
  const auto& conf = r.loc<RealipLocConf>();
  if (conf.from == nullptr || r.get_ctx<RealipCtx>() != nullptr) return Rc::Declined;
  SockAddr addr;
  if (!real_address(r, conf, addr)) return Rc::Declined;

  Connection& c = *r.connection;
  HttpConnection& hc = *r.http_connection;
  auto* ctx = r.pool->make<RealipCtx>();
  ctx->c = &c;
  ctx->peer = c.peer;
  ctx->peer_len = c.peer_len;
  std::string_view original = hc.addr_text(c);  // $realip_remote_addr
  ctx->addr_len = static_cast<uint8_t>(original.size());
  std::memcpy(ctx->addr_buf, original.data(), original.size());
  r.set_ctx(ctx);
  // The peer's address comes back when the request's pool goes, after the access log.
  r.pool->add_cleanup(restore, ctx);
  std::memcpy(&c.peer, addr.sa(), std::min<size_t>(addr.len, sizeof c.peer));
  c.peer_len = addr.len;
  hc.set_addr_text(addr.sa());
  return Rc::Declined;
}

void var_realip_addr(Request& r, VariableValue& v, uintptr_t) {
  auto* ctx = r.main->get_ctx<RealipCtx>();
  if (ctx == nullptr) {
    v.set(r.http_connection->addr_text(*r.connection));
    return;
  }
  v.set(r.pool->dup({ctx->addr_buf, ctx->addr_len}));
}

void var_realip_port(Request& r, VariableValue& v, uintptr_t) {
  auto* ctx = r.main->get_ctx<RealipCtx>();
  uint16_t port = r.connection->peer_port();
  if (ctx != nullptr) {
    const sockaddr* sa = reinterpret_cast<const sockaddr*>(&ctx->peer);
    port = sa->sa_family == AF_INET    ? ntohs(ctx->peer.in.sin_port)
           : sa->sa_family == AF_INET6 ? ntohs(ctx->peer.in6.sin6_port)
                                       : 0;
  }
  if (port == 0) {
    v.set({});
    return;
  }
  char* p = r.pool->alloc_bytes(8);
  v.set({p, static_cast<size_t>(put_uint(p, port) - p)});
}

constexpr VariableDef kVars[] = {
    {"realip_remote_addr", var_realip_addr, nullptr, 0},
    {"realip_remote_port", var_realip_port, nullptr, 0},
};

// --- configuration ---------------------------------------------------------------------------

Status from_directive(ConfContext& cf, const ConfNode& n, RealipLocConf& conf) {
  if (conf.from == nullptr) conf.from = cf.pool.make<std::vector<Cidr>>();
  const std::string& v = n.args[1];
  if (v == "unix:") {
    conf.from_unix = true;
    return {};
  }
  CidrParse rc = parse_cidr_or_name(v, *conf.from);
  if (rc == CidrParse::Invalid) {
    return cf.errorf("host not found in set_real_ip_from \"%s\"", v.c_str());
  }
  if (rc == CidrParse::LowBits) {
    cf.warn(LogLevel::Warn, "low address bits of %s are meaningless", v.c_str());
  }
  return {};
}

Status header_directive(ConfContext&, const ConfNode& n, RealipLocConf& conf) {
  const std::string& v = n.args[1];
  if (v == "X-Real-IP") {
    conf.type = RealipFrom::XRealIp;
  } else if (v == "X-Forwarded-For") {
    conf.type = RealipFrom::XForwardedFor;
  } else if (v == "proxy_protocol") {
    conf.type = RealipFrom::ProxyProtocol;
  } else {
    conf.type = RealipFrom::Header;
    conf.header = v;
  }
  return {};
}

RealipLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<RealipLocConf>();
}

Status merge_loc_conf(ConfContext&, const RealipLocConf& prev, RealipLocConf& conf) {
  if (conf.from == nullptr && !conf.from_unix) {
    conf.from = prev.from;
    conf.from_unix = prev.from_unix;
  }
  if (!conf.type.set) {
    conf.type.merge(prev.type, RealipFrom::XRealIp);
    conf.header = prev.header;
  }
  conf.recursive.merge(prev.recursive, false);
  return {};
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_realip_module)) return {};
  add_phase_handler(cf, Phase::PostRead, realip_handler);
  add_phase_handler(cf, Phase::Preaccess, realip_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<from_directive>("set_real_ip_from", kHttpMainSrvLoc | kTake1),
    directive<header_directive>("real_ip_header", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&RealipLocConf::recursive>>("real_ip_recursive", kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_realip_module));

}  // namespace

Module http_realip_module{
    .name = "http_realip",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
    .ctx_survives_redirect = true,
};

}  // namespace weir::http
