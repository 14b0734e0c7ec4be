#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core/inet.h"
#include "core/str.h"

namespace weir {

CidrParse parse_cidr(std::string_view text, Cidr& out) {
  size_t slash = text.find('/');
  std::string host(text.substr(0, slash));
  out = Cidr{};
  out.family = host.find(':') == std::string::npos ? AF_INET : AF_INET6;
  size_t len = out.family == AF_INET ? 4 : 16;
  if (inet_pton(out.family, host.c_str(), out.addr.data()) != 1) return CidrParse::Invalid;
  size_t bits = len * 8;
  if (slash != std::string_view::npos) {
    auto b = parse_int(text.substr(slash + 1));
    if (!b || *b < 0 || static_cast<size_t>(*b) > len * 8) return CidrParse::Invalid;
    bits = static_cast<size_t>(*b);
  }
  bool low = false;
  for (size_t i = 0; i < len; i++) {
    size_t take = bits > i * 8 ? std::min<size_t>(8, bits - i * 8) : 0;
    out.mask[i] = static_cast<uint8_t>(take == 0 ? 0 : 0xff << (8 - take));
    if ((out.addr[i] & ~out.mask[i]) != 0) low = true;
    out.addr[i] &= out.mask[i];
  }
  return low ? CidrParse::LowBits : CidrParse::Ok;
}

bool cidr_match(const sockaddr* sa, std::span<const Cidr> blocks) {
  const uint8_t* a;
  size_t len;
  if (sa->sa_family == AF_INET) {
    a = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
    len = 4;
  } else if (sa->sa_family == AF_INET6) {
    a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr;
    len = 16;
  } else {
    return false;
  }
  for (const Cidr& c : blocks) {
    if (c.family != sa->sa_family) continue;
    bool match = true;
    for (size_t i = 0; i < len && match; i++) match = (a[i] & c.mask[i]) == c.addr[i];
    if (match) return true;
  }
  return false;
}

CidrParse parse_cidr_or_name(std::string_view text, std::vector<Cidr>& out) {
  Cidr block;
  CidrParse parsed = parse_cidr(text, block);
  if (parsed != CidrParse::Invalid) {
    out.push_back(block);
    return parsed;
  }
  Result<std::vector<SockAddr>> addrs = resolve_host(text);
  if (!addrs.ok() || addrs->empty()) return CidrParse::Invalid;
  for (const SockAddr& a : *addrs) {
    Cidr one;
    one.family = a.family();
    if (one.family == AF_INET) {
      std::memcpy(one.addr.data(), &reinterpret_cast<const sockaddr_in*>(a.sa())->sin_addr, 4);
      std::fill_n(one.mask.begin(), 4, 0xff);
    } else {
      std::memcpy(one.addr.data(), reinterpret_cast<const sockaddr_in6*>(a.sa())->sin6_addr.s6_addr,
                  16);
      one.mask.fill(0xff);
    }
    out.push_back(one);
  }
  return CidrParse::Ok;
}

}  // namespace weir
