#include "core/inet.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cstring>

#include "core/str.h"

namespace weir {

uint16_t SockAddr::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

void SockAddr::set_port(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
}

bool SockAddr::is_wildcard() const {
  if (family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (family() == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
  }
  return false;
}

bool SockAddr::operator==(const SockAddr& o) const {
  if (family() != o.family()) return false;
  if (family() == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    auto* b = reinterpret_cast<const sockaddr_in*>(&o.ss);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    auto* b = reinterpret_cast<const sockaddr_in6*>(&o.ss);
    return a->sin6_port == b->sin6_port &&
           std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
  }
  if (family() == AF_UNIX) {
    return std::strcmp(reinterpret_cast<const sockaddr_un*>(&ss)->sun_path,
                       reinterpret_cast<const sockaddr_un*>(&o.ss)->sun_path) == 0;
  }
  return false;
}

size_t format_addr_text(const sockaddr* sa, char* buf, size_t size) {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    if (inet_ntop(AF_INET, &in->sin_addr, buf, size) == nullptr) return 0;
    return std::strlen(buf);
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, size) == nullptr) return 0;
    return std::strlen(buf);
  }
  if (sa->sa_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    int n = snprintf(buf, size, "unix:%s", un->sun_path);
    return n < 0 ? 0 : std::min<size_t>(n, size - 1);
  }
  return 0;
}

std::string SockAddr::to_string(bool with_port) const {
  char buf[INET6_ADDRSTRLEN + 120];
  size_t n = format_addr_text(sa(), buf, sizeof buf);
  std::string s(buf, n);
  if (!with_port || family() == AF_UNIX) return s;
  if (family() == AF_INET6) s = "[" + s + "]";
  return s + ":" + std::to_string(port());
}

namespace {

Status parse_into(std::string_view text, uint16_t default_port, bool port_required,
                  std::vector<SockAddr>& out) {
  if (istarts_with(text, "unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty()) return Status::error("no path in the unix domain socket");
    SockAddr a;
    auto* un = reinterpret_cast<sockaddr_un*>(&a.ss);
    if (path.size() >= sizeof un->sun_path)
      return Status::error("too long path in the unix domain socket");
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, path.data(), path.size());
    a.len = sizeof(sockaddr_un);
    out.push_back(a);
    return {};
  }

  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return Status::error("invalid host");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return Status::error("invalid host");
      port_text = rest.substr(1);
    }
    SockAddr a;
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    std::string h(host);
    if (inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) != 1)
      return Status::error("invalid IPv6 address");
    in6->sin6_family = AF_INET6;
    a.len = sizeof(sockaddr_in6);
    int port = default_port;
    if (!port_text.empty()) {
      auto p = parse_int(port_text);
      if (!p || *p < 1 || *p > 65535) return Status::error("invalid port");
      port = static_cast<int>(*p);
    } else if (port_required) {
      return Status::error("no port");
    }
    a.set_port(static_cast<uint16_t>(port));
    out.push_back(a);
    return {};
  }

  size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  } else if (parse_int(text)) {
    port_text = text;  // "80" alone is a port
  } else {
    host = text;
  }
  int port = default_port;
  if (!port_text.empty() || colon != std::string_view::npos) {
    auto p = parse_int(port_text);
    if (!p || *p < 1 || *p > 65535) return Status::error("invalid port");
    port = static_cast<int>(*p);
  } else if (port_required) {
    return Status::error("no port");
  }
  if (host.empty() || host == "*") {
    SockAddr a;
    auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    a.len = sizeof(sockaddr_in);
    a.set_port(static_cast<uint16_t>(port));
    out.push_back(a);
    return {};
  }
  std::string h(host);
  SockAddr a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
  if (inet_pton(AF_INET, h.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    a.len = sizeof(sockaddr_in);
    a.set_port(static_cast<uint16_t>(port));
    out.push_back(a);
    return {};
  }
  Result<std::vector<SockAddr>> found = resolve_host(host);
  if (!found.ok()) return found.status();
  for (SockAddr& r : *found) {
    r.set_port(static_cast<uint16_t>(port));
    out.push_back(r);
  }
  return {};
}

}  // namespace

Result<std::vector<SockAddr>> resolve_host(std::string_view host) {
  std::string h(host);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    return Status::error("host not found");
  }
  std::vector<SockAddr> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    SockAddr r;
    std::memcpy(&r.ss, ai->ai_addr, ai->ai_addrlen);
    r.len = ai->ai_addrlen;
    bool dup = false;
    for (const SockAddr& o : out) dup = dup || o == r;
    if (!dup) out.push_back(r);
  }
  freeaddrinfo(res);
  if (out.empty()) return Status::error("host not found");
  return out;
}

bool parse_addr_port(std::string_view text, SockAddr& out) {
  auto parse = [&](std::string_view host, uint16_t port) {
    std::string h(host);
    out = SockAddr{};
    auto* in = reinterpret_cast<sockaddr_in*>(out.sa());
    auto* in6 = reinterpret_cast<sockaddr_in6*>(out.sa());
    if (inet_pton(AF_INET, h.c_str(), &in->sin_addr) == 1) {
      in->sin_family = AF_INET;
      in->sin_port = htons(port);
      out.len = sizeof(sockaddr_in);
      return true;
    }
    if (inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(port);
      out.len = sizeof(sockaddr_in6);
      return true;
    }
    return false;
  };
  if (parse(text, 0)) return true;
  std::string_view host;
  size_t colon;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.find(':');
    if (colon == std::string_view::npos) return false;
    host = text.substr(0, colon);
  }
  auto port = parse_int(text.substr(colon + 1));
  if (!port || *port < 1 || *port > 65535) return false;
  return parse(host, static_cast<uint16_t>(*port));
}

Result<std::vector<SockAddr>> parse_addresses(std::string_view text, uint16_t default_port,
                                              bool port_required) {
  std::vector<SockAddr> out;
  if (Status s = parse_into(text, default_port, port_required, out); !s.ok()) return s;
  return out;
}

std::string_view host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return std::string("localhost");
    return std::string(buf);
  }();
  return name;
}

}  // namespace weir
