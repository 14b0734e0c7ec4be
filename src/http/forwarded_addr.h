// The client's address as trusted proxies pass it on in a header (X-Forwarded-For, X-Real-IP ...):
// read from the right, each address replaces the one at hand while that one is a trusted proxy -
// past every trusted proxy with recursive, else only the last. realip and geoip take the client's
// address this way. nginx: ngx_http_get_forwarded_addr (src/http/ngx_http_core_module.c)
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <vector>

#include "conf/conf_context.h"
#include "core/cidr.h"
#include "core/inet.h"
#include "http/headers.h"

namespace weir::http {

struct Request;

struct TrustedProxies {
  std::span<const Cidr> blocks;
  bool unix_peers = false;  // "unix:": a peer on a unix socket is trusted
  bool contains(const sockaddr* sa) const;
};

enum class Forwarded : uint8_t {
  Declined,  // the peer is not trusted, or named no address: addr is unchanged
  Ok,        // addr is the address the header's lines name
  Done,      // ... an untrusted one was met before the lines ended
};

// lines: the header's lines in the request's order; addr: the peer's, replaced by what they name.
Forwarded forwarded_addr(const TrustedProxies& proxies, bool recursive, SockAddr& addr,
                         std::span<Header* const> lines);

// The request's lines of a header, in order (X-Forwarded-For may come more than once).
std::vector<Header*> header_lines(const HeaderList& headers, std::string_view name);

// The client's address, or the one the trusted proxies name in X-Forwarded-For (geoip's and
// geoip2's lookups).
SockAddr client_address(Request& r, std::span<const Cidr> proxies, bool recursive);

// A `*_proxy` directive's network (geoip_proxy, geoip2_proxy), added to proxies: nginx's "invalid
// network" error, and its warning for host bits set.
Status add_trusted_network(ConfContext& cf, const std::string& text, std::vector<Cidr>& proxies);

}  // namespace weir::http
