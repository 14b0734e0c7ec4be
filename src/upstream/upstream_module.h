// The upstream module's interface for protocol modules: the group a proxy_pass (fastcgi_pass ...)
// names. nginx: ngx_http_upstream_add
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "conf/conf_context.h"
#include "conf/module.h"
#include "upstream/upstream.h"
#include "upstream/upstream_group.h"

namespace weir::http {

extern Module http_upstream_module;

// The group named host (an upstream block, defined before or after) when port is 0, else the
// implicit group of host:port; made if new, and resolved once the http block is read.
UpstreamGroup* add_upstream_group(ConfContext& cf, std::string_view host, uint16_t port,
                                  uint16_t default_port = 80);

// health_check in a location whose upstream settings are upstream (proxy's, ...): parsed and kept
// for the workers (upstream/health_check.h).
Status add_health_check(ConfContext& cf, const ConfNode& n, const UpstreamConf& upstream);

// Every group of the configuration being read (blocks and implicit ones), in the order first named;
// their peers are built once the http block's main confs are initialised (postconfiguration on).
std::span<UpstreamGroup* const> upstream_groups(ConfContext& cf);

// At request time: the upstream block named host (port 0), or the implicit group of host:port that
// a proxy_pass made; nullptr when none.
UpstreamGroup* find_upstream_group(Request& r, std::string_view host, uint16_t port);
// A group of one server made for a request: the addresses a name resolved to (or one address),
// round robin over them.
UpstreamGroup* make_request_group(Request& r, std::string_view name,
                                  const std::vector<SockAddr>& addrs);

// An address as fastcgi_pass, uwsgi_pass, scgi_pass and memcached_pass take it: "host:port",
// "[v6]:port", "unix:/path", or a name an upstream block defines (port 0). Views into url.
struct PassAddress {
  std::string_view host;
  uint16_t port = 0;
};
Result<PassAddress> parse_pass_address(std::string_view url);
// A *_pass with variables, at request time: its value names the group or the peer of u (Ok), or
// the request fails with 500 and nginx's line.
Code set_pass_peer(Request& r, Upstream& u, std::string_view url);

}  // namespace weir::http
