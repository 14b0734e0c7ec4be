// The PROXY protocol: the header a balancer (HAProxy, an AWS NLB, another nginx) sends ahead of a
// connection's own bytes to name the client and the address it accepted the connection on. Version
// 1 is a text line, version 2 a binary block; both are read here from what has arrived so far.
// Stricter than nginx: addresses must be addresses of the family the header names, a v1 line ends
// within the protocol's 107 bytes, and a header split over several reads is waited for.
// https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt; nginx: src/core/ngx_proxy_protocol.c
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace weir {

// What the header says (ports inside the addresses). Both families are AF_UNSPEC when it names
// no addresses: v1 UNKNOWN, v2 LOCAL (the balancer's own health check), a v2 family or transport
// other than TCP over IPv4/IPv6.
struct ProxyProtocolAddrs {
  union Addr {
    sockaddr_in6 in6;  // the largest first: `{}` zeroes every byte (an IPv6 scope id too)
    sockaddr_in in;
    sockaddr sa;
  };
  Addr src{};
  Addr dst{};

  bool known() const { return src.sa.sa_family != AF_UNSPEC; }
  static socklen_t len(const Addr& a) {
    return a.sa.sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }
};

enum class ProxyProtocolRc : uint8_t {
  Incomplete,      // a valid start: wait for more bytes
  Done,            // `length` bytes are the header
  Broken,          // not a PROXY protocol header
  UnknownVersion,  // a v2 signature with another version (in `version`)
  TooLarge,        // a v2 header longer than the room for it
};

struct ProxyProtocolParse {
  ProxyProtocolRc rc;
  size_t length = 0;
  unsigned version = 0;
};

// The longest v1 line, CRLF included.
inline constexpr size_t kProxyProtocolV1Max = 107;

// Reads the header at the start of `in`; `room` is the most bytes it may take (the buffer's size).
ProxyProtocolParse parse_proxy_protocol(std::string_view in, size_t room, ProxyProtocolAddrs& out);

}  // namespace weir
