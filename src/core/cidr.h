// Address blocks: an address with an optional /bits (IPv4 or IPv6), as allow/deny, set_real_ip_from
// and geo write them, and whether an address is inside one. nginx: ngx_ptocidr, ngx_cidr_match
// (src/core/ngx_inet.c)
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace weir {

struct Cidr {
  int family = 0;  // AF_INET (the first 4 bytes are used) or AF_INET6
  std::array<uint8_t, 16> addr{};
  std::array<uint8_t, 16> mask{};
};

enum class CidrParse : uint8_t { Ok, LowBits, Invalid };

// "a.b.c.d[/n]" or "ipv6[/n]". LowBits: host bits were set (cleared; nginx warns "low address bits
// of ... are meaningless").
CidrParse parse_cidr(std::string_view text, Cidr& out);

// An address block, or a name standing for each of its addresses (resolved now: nginx resolves
// set_real_ip_from and debug_connection at load), appended to out. Invalid: neither.
CidrParse parse_cidr_or_name(std::string_view text, std::vector<Cidr>& out);

// Whether the address (IPv4 or IPv6) is inside one of the blocks.
bool cidr_match(const sockaddr* sa, std::span<const Cidr> blocks);

}  // namespace weir
