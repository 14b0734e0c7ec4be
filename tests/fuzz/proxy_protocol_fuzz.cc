// libFuzzer target: the PROXY protocol reader on arbitrary bytes (the first byte sets the room for
// the header). A header it takes must fit the input and the room, be taken the same when it
// arrives alone, and leave every shorter start of it waiting for more; addresses it names are
// IPv4 or IPv6 on both sides. Built by `make fuzz`.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "core/proxy_protocol.h"

using namespace weir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t room = data[0] == 255 ? 1024 : size_t{data[0]} + 1;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  ProxyProtocolAddrs addrs;
  ProxyProtocolParse p = parse_proxy_protocol(in, room, addrs);
  if (p.rc == ProxyProtocolRc::Incomplete && in.size() >= room) abort();
  if (p.rc != ProxyProtocolRc::Done) return 0;
  if (p.length == 0 || p.length > in.size() || p.length > room) abort();
  int family = addrs.src.sa.sa_family;
  if (family != addrs.dst.sa.sa_family) abort();
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) abort();

  ProxyProtocolAddrs alone;
  ProxyProtocolParse q = parse_proxy_protocol(in.substr(0, p.length), room, alone);
  if (q.rc != ProxyProtocolRc::Done || q.length != p.length ||
      std::memcmp(&alone, &addrs, sizeof addrs) != 0) {
    abort();
  }
  for (size_t n = 0; n < p.length; n++) {
    ProxyProtocolAddrs part;
    if (parse_proxy_protocol(in.substr(0, n), room, part).rc != ProxyProtocolRc::Incomplete)
      abort();
  }
  return 0;
}
