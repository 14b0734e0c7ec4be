// The PROXY protocol reader: v1 lines and v2 blocks from the protocol's text, every split of a
// header over two reads, and what is not a header (wrong family, bad ports, over-long lines, other
// versions, blocks larger than the room).
#include "core/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "core/inet.h"

namespace weir {
namespace {

using Rc = ProxyProtocolRc;

std::string text(const ProxyProtocolAddrs::Addr& a) {
  char buf[64];
  size_t n = format_addr_text(&a.sa, buf, sizeof buf);
  return std::string(buf, n);
}

uint16_t port(const ProxyProtocolAddrs::Addr& a) {
  return ntohs(a.sa.sa_family == AF_INET ? a.in.sin_port : a.in6.sin6_port);
}

ProxyProtocolParse parse(std::string_view in, ProxyProtocolAddrs& out, size_t room = 1024) {
  return parse_proxy_protocol(in, room, out);
}

// A v2 block: PROXY command over TCP, the given family (1 IPv4, 2 IPv6), addresses and TLVs.
std::string v2(unsigned ver_cmd, unsigned fam, std::string body) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(ver_cmd);
  h += static_cast<char>(fam);
  h += static_cast<char>(body.size() >> 8);
  h += static_cast<char>(body.size() & 0xff);
  return h + body;
}

std::string v2_inet(const char* src, const char* dst, uint16_t sport, uint16_t dport,
                    std::string tlvs = "") {
  std::string b(12, '\0');
  inet_pton(AF_INET, src, b.data());
  inet_pton(AF_INET, dst, b.data() + 4);
  b[8] = static_cast<char>(sport >> 8);
  b[9] = static_cast<char>(sport);
  b[10] = static_cast<char>(dport >> 8);
  b[11] = static_cast<char>(dport);
  return v2(0x21, 0x11, b + tlvs);
}

TEST(ProxyProtocol, V1Tcp4) {
  ProxyProtocolAddrs a;
  std::string h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
  auto p = parse(h, a);
  ASSERT_EQ(p.rc, Rc::Done);
  EXPECT_EQ(p.length, h.size() - 5);
  EXPECT_TRUE(a.known());
  EXPECT_EQ(text(a.src), "192.0.2.1");
  EXPECT_EQ(port(a.src), 56324);
  EXPECT_EQ(text(a.dst), "198.51.100.2");
  EXPECT_EQ(port(a.dst), 443);
}

TEST(ProxyProtocol, V1Tcp6AndUnknown) {
  ProxyProtocolAddrs a;
  auto p = parse("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", a);
  ASSERT_EQ(p.rc, Rc::Done);
  EXPECT_EQ(text(a.src), "2001:db8::1");
  EXPECT_EQ(port(a.src), 65535);
  EXPECT_EQ(text(a.dst), "::1");
  EXPECT_EQ(port(a.dst), 0);

  for (std::string_view u : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ::1 1 2\r\n"}) {
    auto q = parse(u, a);
    ASSERT_EQ(q.rc, Rc::Done) << u;
    EXPECT_EQ(q.length, u.size());
    EXPECT_FALSE(a.known());
  }
}

TEST(ProxyProtocol, V1Broken) {
  for (std::string_view h : {
           "GET / HTTP/1.1\r\n\r\n",
           "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
           "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
           "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
           "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",          // not the family named
           "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",          // not the family named
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  // port out of range
           "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
           "PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
           "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
       }) {
    ProxyProtocolAddrs a;
    EXPECT_EQ(parse(h, a).rc, Rc::Broken) << h;
  }
  // No end within the protocol's 107 bytes.
  ProxyProtocolAddrs a;
  std::string longer = "PROXY UNKNOWN " + std::string(100, 'x');
  EXPECT_EQ(parse(longer.substr(0, 106), a).rc, Rc::Incomplete);
  EXPECT_EQ(parse(longer, a).rc, Rc::Broken);
  // Nor within the buffer.
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4", a, 18).rc, Rc::Broken);
}

TEST(ProxyProtocol, V2Inet) {
  ProxyProtocolAddrs a;
  std::string h = v2_inet("203.0.113.7", "10.0.0.1", 40000, 8080, std::string("\x04\x00\x01z", 4));
  auto p = parse(h + "GET", a);
  ASSERT_EQ(p.rc, Rc::Done);
  EXPECT_EQ(p.length, h.size());
  EXPECT_EQ(text(a.src), "203.0.113.7");
  EXPECT_EQ(port(a.src), 40000);
  EXPECT_EQ(text(a.dst), "10.0.0.1");
  EXPECT_EQ(port(a.dst), 8080);
}

TEST(ProxyProtocol, V2Inet6LocalAndOthers) {
  std::string b(36, '\0');
  inet_pton(AF_INET6, "2001:db8::7", b.data());
  inet_pton(AF_INET6, "::1", b.data() + 16);
  b[32] = 0x01;
  b[33] = 0x02;
  b[35] = 80;
  ProxyProtocolAddrs a;
  auto p = parse(v2(0x21, 0x21, b), a);
  ASSERT_EQ(p.rc, Rc::Done);
  EXPECT_EQ(text(a.src), "2001:db8::7");
  EXPECT_EQ(port(a.src), 258);
  EXPECT_EQ(port(a.dst), 80);

  // LOCAL, UDP, AF_UNIX: a header without addresses.
  for (auto [ver_cmd, fam] : {std::pair{0x20u, 0x11u}, {0x21u, 0x12u}, {0x21u, 0x31u}}) {
    std::string h = v2(ver_cmd, fam, std::string(216, 'u'));
    auto q = parse(h, a);
    ASSERT_EQ(q.rc, Rc::Done);
    EXPECT_EQ(q.length, h.size());
    EXPECT_FALSE(a.known());
  }
  // An IPv4 block too short for its addresses.
  EXPECT_EQ(parse(v2(0x21, 0x11, std::string(11, '\0')), a).rc, Rc::Broken);
  // Version 1 in a v2 signature.
  auto q = parse(v2(0x11, 0x11, std::string(12, '\0')), a);
  EXPECT_EQ(q.rc, Rc::UnknownVersion);
  EXPECT_EQ(q.version, 1u);
  // More than the room.
  EXPECT_EQ(parse(v2(0x21, 0x11, std::string(2000, '\0')), a).rc, Rc::TooLarge);
  // Not the signature.
  EXPECT_EQ(parse(std::string("\r\n\r\nX", 5), a).rc, Rc::Broken);
}

TEST(ProxyProtocol, EverySplitWaits) {
  for (std::string h : {std::string("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
                        v2_inet("203.0.113.7", "10.0.0.1", 1, 2, "tlv")}) {
    for (size_t n = 0; n < h.size(); n++) {
      ProxyProtocolAddrs a;
      EXPECT_EQ(parse(h.substr(0, n), a).rc, Rc::Incomplete) << n;
    }
    ProxyProtocolAddrs a;
    auto p = parse(h, a);
    EXPECT_EQ(p.rc, Rc::Done);
    EXPECT_EQ(p.length, h.size());
  }
}

}  // namespace
}  // namespace weir
