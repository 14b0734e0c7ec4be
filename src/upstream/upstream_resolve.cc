// The peer a request names at run time (proxy_pass with variables): an address is used as it is, a
// unix: path too, a name goes to the resolver (its cache first); no resolver, or no answer, is a
// 502 as in nginx. nginx: ngx_http_upstream_init_request's resolve part,
// ngx_http_upstream_resolve_handler
#include <cstdio>

#include "core/inet.h"
#include "core/str.h"
#include "event/resolver.h"
#include "http/core_module.h"
#include "upstream/lifecycle.h"
#include "upstream/upstream_module.h"

namespace weir::http {

namespace {

void resolved(ResolveQuery& q);

void use_addresses(Request& r, Upstream& u, const std::vector<SockAddr>& found) {
  std::vector<SockAddr> addrs = found;
  for (SockAddr& a : addrs) {
    if (a.family() != AF_UNIX) a.set_port(u.resolve_port);
  }
  u.group = make_request_group(r, u.resolve_host, addrs);
  if (u.group == nullptr) {
    finalize_upstream(r, u, Code::status(500));
    return;
  }
  start_upstream(r, u);
}

void resolved(ResolveQuery& q) {
  auto& r = *static_cast<Request*>(q.data);
  Connection& client = *r.connection;
  Upstream& u = *r.upstream;
  u.resolving = nullptr;
  if (q.status != 0) {
    log_error(LogLevel::Error, r.log(), 0, "%s could not be resolved (%d: %s)", q.name.c_str(),
              q.status, q.error_text());
    finalize_upstream(r, u, Code::status(502));
  } else {
    use_addresses(r, u, q.addrs);
  }
  run_posted_requests(client);
}

}  // namespace

void resolve_peer(Request& r, Upstream& u) {
  u.phase = UpstreamPhase::Resolving;
  std::string_view host = u.resolve_host;
  if (istarts_with(host, "unix:")) {
    Result<std::vector<SockAddr>> a = parse_addresses(host, 0, false);
    if (!a.ok()) {
      log_error(LogLevel::Error, r.log(), 0, "invalid address \"%.*s\"",
                static_cast<int>(host.size()), host.data());
      finalize_upstream(r, u, Code::status(502));
      return;
    }
    use_addresses(r, u, *a);
    return;
  }
  bool literal = host.starts_with('[') ||
                 (!host.empty() && host.find_first_not_of("0123456789.") == host.npos);
  char text[300];
  if (literal && host.size() < sizeof text - 8) {
    // An address needs no resolver (a name must not reach parse_addresses: its getaddrinfo
    // would block the worker).
    int n = std::snprintf(text, sizeof text, "%.*s:%u", static_cast<int>(host.size()), host.data(),
                          u.resolve_port);
    Result<std::vector<SockAddr>> a = parse_addresses({text, static_cast<size_t>(n)}, 80, false);
    if (a.ok()) {
      use_addresses(r, u, *a);
      return;
    }
  }
  CoreLocConf& clcf = core_loc(r);
  if (clcf.resolver == nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "no resolver defined to resolve %.*s",
              static_cast<int>(host.size()), host.data());
    finalize_upstream(r, u, Code::status(502));
    return;
  }
  if (const std::vector<SockAddr>* cached = clcf.resolver->cached(host)) {
    use_addresses(r, u, *cached);
    return;
  }
  u.resolving = clcf.resolver->resolve(host, *clcf.resolver_timeout, resolved, &r, r.log());
  if (u.resolving == nullptr) finalize_upstream(r, u, Code::status(502));
}

}  // namespace weir::http
