#include "http/forwarded_addr.h"

#include <cstring>

#include "core/str.h"
#include "http/request.h"

namespace weir::http {

bool TrustedProxies::contains(const sockaddr* sa) const {
  if (sa->sa_family == AF_UNIX) return unix_peers;
  return cidr_match(sa, blocks);
}

namespace {

// One line, right to left: while the address at hand is trusted, the next one leftwards replaces
// it (only the last, without recursion). nginx: ngx_http_get_forwarded_addr_internal
Forwarded walk(const TrustedProxies& proxies, bool recursive, SockAddr& addr,
               std::string_view xff) {
  bool found = false;
  do {
    if (!proxies.contains(addr.sa())) return found ? Forwarded::Done : Forwarded::Declined;
    while (!xff.empty() && (xff.back() == ' ' || xff.back() == ',')) xff.remove_suffix(1);
    size_t start = xff.find_last_of(" ,");
    start = start == std::string_view::npos ? 0 : start + 1;
    SockAddr next;
    if (!parse_addr_port(xff.substr(start), next)) {
      return found ? Forwarded::Done : Forwarded::Declined;
    }
    addr = next;
    found = true;
    xff = start > 0 ? xff.substr(0, start - 1) : std::string_view();
  } while (recursive && !xff.empty());
  return Forwarded::Ok;
}

}  // namespace

Forwarded forwarded_addr(const TrustedProxies& proxies, bool recursive, SockAddr& addr,
                         std::span<Header* const> lines) {
  Forwarded rc = Forwarded::Declined;
  bool found = false;
  for (size_t i = lines.size(); i-- > 0;) {  // the last line first
    rc = walk(proxies, recursive, addr, lines[i]->value);
    if (!recursive) break;
    if (rc == Forwarded::Declined && found) return Forwarded::Done;
    if (rc != Forwarded::Ok) break;
    found = true;
  }
  return rc;
}

std::vector<Header*> header_lines(const HeaderList& headers, std::string_view name) {
  std::vector<Header*> lines;
  for (Header* h : headers) {
    if (h->hash != 0 && iequals(h->key, name)) lines.push_back(h);
  }
  return lines;
}

SockAddr client_address(Request& r, std::span<const Cidr> proxies, bool recursive) {
  SockAddr addr;
  std::memcpy(addr.sa(), &r.connection->peer, sizeof r.connection->peer);
  addr.len = r.connection->peer_len;
  if (!proxies.empty()) {
    std::vector<Header*> lines = header_lines(r.headers_in.headers, "X-Forwarded-For");
    if (!lines.empty()) forwarded_addr({proxies}, recursive, addr, lines);
  }
  return addr;
}

Status add_trusted_network(ConfContext& cf, const std::string& text, std::vector<Cidr>& proxies) {
  Cidr c;
  CidrParse rc = parse_cidr(text, c);
  if (rc == CidrParse::Invalid) return cf.error("invalid network \"" + text + "\"");
  if (rc == CidrParse::LowBits) {
    cf.warn(LogLevel::Warn, "low address bits of %s are meaningless", text.c_str());
  }
  proxies.push_back(c);
  return {};
}

}  // namespace weir::http
