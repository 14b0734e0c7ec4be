// geo: a variable whose value depends on the client's address (or an address a variable holds):
// `geo [$address] $name { default v; 10.0.0.0/8 v; 192.168.1.1 v; delete 10.1.0.0/16; proxy ...;
// proxy_recursive; include file; }`, the longest matching network winning, IPv4 and IPv6 (an
// IPv4-mapped client is looked up as IPv4). With `proxy`, a request from a trusted proxy is
// looked up by the last address of its X-Forwarded-For (recursively with proxy_recursive).
// The networks are kept in a binary trie built at load. `ranges` is refused at load for now.
// nginx: src/http/modules/ngx_http_geo_module.c
#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/cidr.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_geo_module;

namespace {

// A binary trie over address bits: a node's value (if any) is the answer for the network that
// ends there; a lookup keeps the last one it passed.
class AddressTrie {
 public:
  AddressTrie() { nodes_.push_back({}); }
  // Sets (or, with value -1, deletes) the network's value; returns the value it had (-1: none).
  int set(const uint8_t* addr, size_t bits, int value) {
    uint32_t n = 0;
    for (size_t i = 0; i < bits; i++) {
      int bit = (addr[i / 8] >> (7 - i % 8)) & 1;
      if (nodes_[n].child[bit] == 0) {
        if (value < 0) return -1;
        nodes_[n].child[bit] = static_cast<uint32_t>(nodes_.size());
        nodes_.push_back({});
      }
      n = nodes_[n].child[bit];
    }
    int old = nodes_[n].value;
    nodes_[n].value = value;
    return old;
  }
  int find(const uint8_t* addr, size_t bits) const {
    uint32_t n = 0;
    int value = nodes_[0].value;
    for (size_t i = 0; i < bits; i++) {
      n = nodes_[n].child[(addr[i / 8] >> (7 - i % 8)) & 1];
      if (n == 0) break;
      if (nodes_[n].value >= 0) value = nodes_[n].value;
    }
    return value;
  }

 private:
  struct Node {
    uint32_t child[2] = {0, 0};  // 0: none (the root is never a child)
    int value = -1;
  };
  std::vector<Node> nodes_;
};

struct Geo {
  std::vector<std::string> values;  // by index; values[0] is the default
  AddressTrie v4;
  AddressTrie v6;
  std::vector<Cidr> proxies;
  bool proxy_recursive = false;
  ComplexValue* source = nullptr;  // nullptr: the client's address
};

// The address to look up, as bytes of the family it is (IPv4 or IPv6; an IPv4-mapped IPv6 address
// as IPv4). False when the text is no address.
bool parse_address(std::string_view text, int& family, uint8_t* out) {
  std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), out) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out) == 1) {
    family = AF_INET6;
    if (IN6_IS_ADDR_V4MAPPED(reinterpret_cast<in6_addr*>(out))) {
      std::memmove(out, out + 12, 4);
      family = AF_INET;
    }
    return true;
  }
  return false;
}

bool address_of(const sockaddr* sa, int& family, uint8_t* out) {
  if (sa->sa_family == AF_INET) {
    std::memcpy(out, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    family = AF_INET;
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* a = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      std::memcpy(out, a->s6_addr + 12, 4);
      family = AF_INET;
    } else {
      std::memcpy(out, a->s6_addr, 16);
      family = AF_INET6;
    }
    return true;
  }
  return false;
}

bool trusted(const Geo& geo, int family, const uint8_t* addr) {
  SockAddr sa;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(sa.sa());
    in->sin_family = AF_INET;
    std::memcpy(&in->sin_addr, addr, 4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(sa.sa());
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, addr, 16);
  }
  return cidr_match(sa.sa(), geo.proxies);
}

void var_geo(Request& r, VariableValue& v, uintptr_t data) {
  const auto& geo = *reinterpret_cast<const Geo*>(data);
  int family = AF_INET;
  uint8_t addr[16] = {0xff, 0xff, 0xff, 0xff};  // no address: 255.255.255.255, as nginx
  if (geo.source != nullptr) {
    std::string_view text = geo.source->eval(r);
    if (!parse_address(text, family, addr)) {
      family = AF_INET;
      std::memset(addr, 0xff, 4);
    }
  } else if (!address_of(&r.connection->peer.sa, family, addr)) {
    family = AF_INET;
  }
  if (!geo.proxies.empty() && trusted(geo, family, addr)) {
    // X-Forwarded-For, right to left: past trusted proxies too with proxy_recursive.
    std::vector<std::string_view> parts;
    for (Header* h : r.headers_in.headers) {
      if (h->hash == 0 || !iequals(h->key, "X-Forwarded-For")) continue;
      std::string_view list = h->value;
      while (!list.empty()) {
        size_t comma = list.find(',');
        parts.push_back(trim_ows(list.substr(0, comma)));
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      }
    }
    for (size_t i = parts.size(); i-- > 0;) {
      int f;
      uint8_t a[16];
      if (!parse_address(parts[i], f, a)) break;
      family = f;
      std::memcpy(addr, a, 16);
      if (!geo.proxy_recursive || !trusted(geo, family, addr)) break;
    }
  }
  int index = family == AF_INET ? geo.v4.find(addr, 32) : geo.v6.find(addr, 128);
  v.set(geo.values[index < 0 ? 0 : static_cast<size_t>(index)]);
}

// --- configuration ---------------------------------------------------------------------------

int value_index(Geo& geo, const std::string& value) {
  for (size_t i = 1; i < geo.values.size(); i++) {
    if (geo.values[i] == value) return static_cast<int>(i);
  }
  geo.values.push_back(value);
  return static_cast<int>(geo.values.size() - 1);
}

Status parse_network(ConfContext& cf, const std::string& text, Cidr& c) {
  CidrParse rc = parse_cidr(text, c);
  if (rc == CidrParse::Invalid) return cf.errorf("invalid network \"%s\"", text.c_str());
  if (rc == CidrParse::LowBits) {
    cf.warn(LogLevel::Warn, "low address bits of %s are meaningless", text.c_str());
  }
  return {};
}

size_t prefix_bits(const Cidr& c) {
  size_t bits = 0;
  for (uint8_t m : c.mask) bits += static_cast<size_t>(__builtin_popcount(m));
  return bits;
}

// One line of the block (include files are read into the block already).
Status geo_line(ConfContext& block_cf, const ConfNode& n, Geo& geo) {
  ConfContext cf = block_cf;
  cf.node = &n;
  if (n.block) return cf.error("unexpected \"{\"");
  const std::string& first = n.name();
  size_t args = n.nargs();
  if (first == "ranges" && args == 0) {
    return cf.error("the \"ranges\" parameter of geo is not supported by weir yet");
  }
  if (first == "proxy_recursive" && args == 0) {
    geo.proxy_recursive = true;
    return {};
  }
  if (args != 1) return cf.error("invalid number of the geo parameters");
  const std::string& second = n.args[1];
  if (first == "default") {
    geo.values[0] = second;
    return {};
  }
  if (first == "proxy") {
    Cidr c;
    if (Status s = parse_network(cf, second, c); !s.ok()) return s;
    geo.proxies.push_back(c);
    return {};
  }
  bool del = first == "delete";
  Cidr c;
  if (Status s = parse_network(cf, del ? second : first, c); !s.ok()) return s;
  AddressTrie& trie = c.family == AF_INET ? geo.v4 : geo.v6;
  size_t bits = prefix_bits(c);
  if (del) {
    trie.set(c.addr.data(), bits, -1);
    return {};
  }
  int index = value_index(geo, second);
  int old = trie.set(c.addr.data(), bits, index);
  if (old >= 0 && old != index) {
    cf.warn(LogLevel::Warn, "duplicate network \"%s\", value: \"%s\", old value: \"%s\"",
            first.c_str(), second.c_str(), geo.values[static_cast<size_t>(old)].c_str());
  }
  return {};
}

// geo [$address] $variable { ... }
Status geo_block(ConfContext& cf, const ConfNode& n) {
  auto* geo = cf.pool.make<Geo>();
  geo->values.emplace_back();  // the default: ""
  std::string name = n.args.back();
  if (!name.starts_with('$')) return cf.errorf("invalid variable name \"%s\"", name.c_str());
  if (n.nargs() == 2) {
    geo->source = cf.pool.make<ComplexValue>();
    if (Status s = geo->source->compile(cf, n.args[1]); !s.ok()) return s;
  }
  for (const ConfNode& line : n.children) {
    if (Status s = geo_line(cf, line, *geo); !s.ok()) return s;
  }
  return add_variable(cf, std::string_view(name).substr(1), kVarChangeable, var_geo,
                      reinterpret_cast<uintptr_t>(geo));
}

constexpr Directive kDirectives[] = {
    directive<geo_block>("geo", kHttpMainConf | kBlock | kTake12),
};
static_assert(directives_of(kDirectives, &http_geo_module));

}  // namespace

Module http_geo_module{
    .name = "http_geo",
    .type = ModuleType::Http,
    .directives = kDirectives,
};

}  // namespace weir::http
