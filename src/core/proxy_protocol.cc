#include "core/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace weir {

namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr size_t kV2Fixed = 16;  // signature, version and command, family and transport, length

constexpr ProxyProtocolParse incomplete() {
  return {ProxyProtocolRc::Incomplete};
}
constexpr ProxyProtocolParse broken() {
  return {ProxyProtocolRc::Broken};
}
constexpr ProxyProtocolParse done(size_t length) {
  return {ProxyProtocolRc::Done, length};
}

// Whether what has arrived is still a start of `whole`.
bool starts_like(std::string_view in, std::string_view whole) {
  size_t n = std::min(in.size(), whole.size());
  return in.substr(0, n) == whole.substr(0, n);
}

// One address of a v1 line, in the family the line names.
bool parse_v1_addr(std::string_view text, int family, ProxyProtocolAddrs::Addr& out) {
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  out = {};
  if (family == AF_INET) {
    out.in.sin_family = AF_INET;
    return ::inet_pton(AF_INET, buf, &out.in.sin_addr) == 1;
  }
  out.in6.sin6_family = AF_INET6;
  return ::inet_pton(AF_INET6, buf, &out.in6.sin6_addr) == 1;
}

// A decimal port, 0-65535.
bool parse_v1_port(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<unsigned>(ch - '0');
  }
  if (v > 65535) return false;
  port = htons(static_cast<uint16_t>(v));
  return true;
}

void set_port(ProxyProtocolAddrs::Addr& a, uint16_t net_port) {
  if (a.sa.sa_family == AF_INET) {
    a.in.sin_port = net_port;
  } else {
    a.in6.sin6_port = net_port;
  }
}

// "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN ...\r\n".
ProxyProtocolParse parse_v1(std::string_view in, ProxyProtocolAddrs& out) {
  if (!starts_like(in, kV1Prefix)) return broken();
  size_t lf = in.substr(0, kProxyProtocolV1Max).find('\n');
  if (lf == std::string_view::npos) {
    return in.size() >= kProxyProtocolV1Max ? broken() : incomplete();
  }
  if (lf == 0 || in[lf - 1] != '\r') return broken();
  size_t crlf = lf - 1;
  std::string_view line = in.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  out = {};
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return done(crlf + 2);
  int family;
  if (line.starts_with("TCP4 ")) {
    family = AF_INET;
  } else if (line.starts_with("TCP6 ")) {
    family = AF_INET6;
  } else {
    return broken();
  }
  line.remove_prefix(5);
  std::string_view field[4];
  for (int i = 0; i < 4; i++) {
    size_t sp = i < 3 ? line.find(' ') : line.size();
    if (sp == std::string_view::npos) return broken();
    field[i] = line.substr(0, sp);
    line.remove_prefix(std::min(sp + 1, line.size()));
  }
  uint16_t sport;
  uint16_t dport;
  if (!line.empty() || !parse_v1_addr(field[0], family, out.src) ||
      !parse_v1_addr(field[1], family, out.dst) || !parse_v1_port(field[2], sport) ||
      !parse_v1_port(field[3], dport)) {
    out = {};
    return broken();
  }
  set_port(out.src, sport);
  set_port(out.dst, dport);
  return done(crlf + 2);
}

// The 16-byte fixed part, then the addresses (and TLVs, which are skipped).
ProxyProtocolParse parse_v2(std::string_view in, size_t room, ProxyProtocolAddrs& out) {
  if (in.size() < kV2Fixed) return incomplete();
  auto byte = [&](size_t i) { return static_cast<uint8_t>(in[i]); };
  unsigned version = byte(12) >> 4;
  if (version != 2) return {ProxyProtocolRc::UnknownVersion, 0, version};
  size_t length = kV2Fixed + (static_cast<size_t>(byte(14)) << 8 | byte(15));
  if (length > room) return {ProxyProtocolRc::TooLarge};
  if (in.size() < length) return incomplete();
  out = {};
  unsigned command = byte(12) & 0x0f;
  unsigned family = byte(13) >> 4;
  unsigned transport = byte(13) & 0x0f;
  // LOCAL (0), or what is not TCP over IPv4/IPv6: the connection's own addresses stand.
  if (command != 1 || transport != 1 || (family != 1 && family != 2)) return done(length);
  const auto* p = reinterpret_cast<const unsigned char*>(in.data()) + kV2Fixed;
  size_t alen = family == 1 ? 4 : 16;
  if (length - kV2Fixed < 2 * alen + 4) return broken();
  uint16_t sport;
  uint16_t dport;
  std::memcpy(&sport, p + 2 * alen, 2);  // network order, as a sockaddr keeps it
  std::memcpy(&dport, p + 2 * alen + 2, 2);
  if (family == 1) {
    out.src.in.sin_family = out.dst.in.sin_family = AF_INET;
    std::memcpy(&out.src.in.sin_addr, p, 4);
    std::memcpy(&out.dst.in.sin_addr, p + 4, 4);
  } else {
    out.src.in6.sin6_family = out.dst.in6.sin6_family = AF_INET6;
    std::memcpy(&out.src.in6.sin6_addr, p, 16);
    std::memcpy(&out.dst.in6.sin6_addr, p + 16, 16);
  }
  set_port(out.src, sport);
  set_port(out.dst, dport);
  return done(length);
}

}  // namespace

ProxyProtocolParse parse_proxy_protocol(std::string_view in, size_t room, ProxyProtocolAddrs& out) {
  in = in.substr(0, room);
  if (in.empty()) return incomplete();
  ProxyProtocolParse p;
  if (in[0] == '\r') {
    p = starts_like(in, kV2Signature) ? parse_v2(in, room, out) : broken();
  } else {
    p = parse_v1(in, out);
  }
  // A header that cannot end within the room there is for it.
  if (p.rc == ProxyProtocolRc::Incomplete && in.size() >= room) return broken();
  return p;
}

}  // namespace weir
