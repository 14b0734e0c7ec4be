// Socket addresses: parsing "addr:port", "[v6]:port", "port", "*:port", "unix:/path" as nginx's
// listen and upstream directives take them, and formatting them for variables and logs. nginx:
// src/core/ngx_inet.c, src/core/ngx_parse.c (ngx_parse_url)
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace weir {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;

  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&ss); }
  uint16_t port() const;
  void set_port(uint16_t port);
  bool is_wildcard() const;
  bool operator==(const SockAddr& o) const;
  // "127.0.0.1:80", "[::1]:80", "unix:/path"; without port: "127.0.0.1", "::1", "unix:/path".
  std::string to_string(bool with_port = true) const;
};

// The host's name as gethostname() gives it ($hostname, server_name $hostname, syslog), read once.
std::string_view host_name();

// Writes the address text (no port) into buf; returns its length.
size_t format_addr_text(const sockaddr* sa, char* buf, size_t size);

// An address literal with a port after it ("1.2.3.4:80", "[::1]:80") or without (port 0), no
// names: what nginx takes from a header or a variable. nginx: ngx_parse_addr_port
bool parse_addr_port(std::string_view text, SockAddr& out);

// Every address a host name (or address text) has, by getaddrinfo(), port 0: nginx's
// ngx_inet_resolve_host, as debug_connection and set_real_ip_from take names ("0" is 0.0.0.0).
Result<std::vector<SockAddr>> resolve_host(std::string_view host);

// Parses a listen address: "80", "*:80", "127.0.0.1", "127.0.0.1:80", "[::1]:80", "localhost:80",
// "unix:/tmp/s". A name resolves to every address it has. default_port is used when none is given.
// On error returns the nginx-style reason ("invalid port", "host not found", ...).
Result<std::vector<SockAddr>> parse_addresses(std::string_view text, uint16_t default_port,
                                              bool port_required);

}  // namespace weir
