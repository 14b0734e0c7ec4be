// geo: a variable whose value depends on the client's address (or an address a variable holds):
// `geo [$address] $name { default v; 10.0.0.0/8 v; 192.168.1.1 v; delete 10.1.0.0/16; proxy ...;
// proxy_recursive; include file; }`, the longest matching network winning, IPv4 and IPv6 (an
// IPv4-mapped client is looked up as IPv4). With `proxy`, a request from a trusted proxy is
// looked up by the last address of its X-Forwarded-For (recursively with proxy_recursive).
// The networks are kept in a binary trie built at load. With `ranges` the block lists IPv4 ranges
// (`10.0.0.0-10.0.0.255 v;`, `delete a-b;`) in a table that keeps nginx's rules for overlaps.
// nginx: src/http/modules/ngx_http_geo_module.c
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <optional>
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

// `ranges`: IPv4 ranges kept as nginx keeps them, split where a /16 block ends, so that the rules
// for a new range are the same as nginx's: within a block a range may replace a piece or cut one
// in two or three, but not overlap part of one (or contain one).
class RangeTable {
 public:
  struct Piece {
    uint32_t start;
    uint32_t end;  // both in the same /16
    int value;
  };
  // Adds [start, end] block by block; `dup` sees each piece whose value is replaced. Returns the
  // piece it overlaps, if any (the table is then no longer what it was: a load error follows).
  template <class OnDuplicate>
  const Piece* add(uint32_t start, uint32_t end, int value, OnDuplicate dup) {
    for (uint64_t n = start; n <= end; n = (n | 0xffff) + 1) {
      auto s = static_cast<uint32_t>(n);
      uint32_t e = std::min<uint32_t>(s | 0xffff, end);
      if (const Piece* p = add_piece(s, e, value, dup)) return p;
    }
    return nullptr;
  }
  // Removes the pieces [start, end] is made of; false if one of them is not there.
  bool remove(uint32_t start, uint32_t end) {
    bool all = true;
    for (uint64_t n = start; n <= end; n = (n | 0xffff) + 1) {
      auto s = static_cast<uint32_t>(n);
      uint32_t e = std::min<uint32_t>(s | 0xffff, end);
      auto it = std::find_if(pieces_.begin(), pieces_.end(),
                             [&](const Piece& p) { return p.start == s && p.end == e; });
      if (it == pieces_.end()) {
        all = false;
      } else {
        pieces_.erase(it);
      }
    }
    return all;
  }
  int find(uint32_t addr) const {
    auto it = std::upper_bound(pieces_.begin(), pieces_.end(), addr,
                               [](uint32_t a, const Piece& p) { return a < p.start; });
    if (it == pieces_.begin() || (--it)->end < addr) return -1;
    return it->value;
  }

 private:
  template <class OnDuplicate>
  const Piece* add_piece(uint32_t s, uint32_t e, int value, OnDuplicate dup) {
    // The last piece that starts at or before e (pieces never overlap, so they are sorted by
    // both ends).
    auto at = std::upper_bound(pieces_.begin(), pieces_.end(), e,
                               [](uint32_t a, const Piece& p) { return a < p.start; });
    if (at == pieces_.begin() || std::prev(at)->end < s) {
      pieces_.insert(at, Piece{s, e, value});
      return nullptr;
    }
    auto i = static_cast<size_t>(std::prev(at) - pieces_.begin());
    Piece p = pieces_[i];
    if (s == p.start && e == p.end) {
      dup(p);
      pieces_[i].value = value;
    } else if (s > p.start && e < p.end) {
      pieces_[i].end = s - 1;
      pieces_.insert(pieces_.begin() + static_cast<ptrdiff_t>(i) + 1,
                     {Piece{s, e, value}, Piece{e + 1, p.end, p.value}});
    } else if (s == p.start && e < p.end) {
      pieces_[i].start = e + 1;
      pieces_.insert(pieces_.begin() + static_cast<ptrdiff_t>(i), Piece{s, e, value});
    } else if (s > p.start && e == p.end) {
      pieces_[i].end = s - 1;
      pieces_.insert(pieces_.begin() + static_cast<ptrdiff_t>(i) + 1, Piece{s, e, value});
    } else {
      return &pieces_[i];
    }
    return nullptr;
  }

  std::vector<Piece> pieces_;  // sorted, disjoint
};

struct Geo {
  std::vector<std::string> values;  // by index; values[0] is the default
  AddressTrie v4;
  AddressTrie v6;
  bool ranges = false;    // `ranges`: the IPv4 range table instead of the tries
  bool networks = false;  // a network or `default` was given (`ranges` must come first)
  bool has_default = false;
  RangeTable range_table;
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
  int index;
  if (geo.ranges) {
    // IPv4 only: any other address is looked up as 255.255.255.255 (in no range), as nginx.
    uint32_t a = 0xffffffff;
    if (family == AF_INET) a = uint32_t{addr[0]} << 24 | addr[1] << 16 | addr[2] << 8 | addr[3];
    index = geo.range_table.find(a);
  } else {
    index = family == AF_INET ? geo.v4.find(addr, 32) : geo.v6.find(addr, 128);
  }
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

// A dotted-quad IPv4 address, as nginx's ngx_inet_addr reads one: 255.255.255.255 is its "none",
// so a range cannot name it (and an address that is not IPv4 is looked up as it, finding none).
std::optional<uint32_t> parse_ipv4(std::string_view text) {
  in_addr a;
  std::string s(text);
  if (text.empty() || text.size() > 15 || inet_pton(AF_INET, s.c_str(), &a) != 1 ||
      a.s_addr == INADDR_NONE) {
    return {};
  }
  return ntohl(a.s_addr);
}

std::string ipv4_text(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 0xff) + "." +
         std::to_string(a >> 8 & 0xff) + "." + std::to_string(a & 0xff);
}

// A line of a `ranges` block: `start-end value;` or `delete start-end;`.
Status range_line(ConfContext& cf, const std::string& first, const std::string& second, Geo& geo) {
  bool del = first == "delete";
  const std::string& net = del ? second : first;
  size_t dash = net.find('-');
  std::optional<uint32_t> start;
  std::optional<uint32_t> end;
  if (dash != std::string::npos) {
    start = parse_ipv4(std::string_view(net).substr(0, dash));
    end = parse_ipv4(std::string_view(net).substr(dash + 1));
  }
  if (!start || !end || *start > *end) return cf.errorf("invalid range \"%s\"", net.c_str());
  if (del) {
    if (!geo.range_table.remove(*start, *end)) {
      cf.warn(LogLevel::Warn, "no address range \"%s\" to delete", net.c_str());
    }
    return {};
  }
  int index = value_index(geo, second);
  const RangeTable::Piece* overlap =
      geo.range_table.add(*start, *end, index, [&](const RangeTable::Piece& old) {
        cf.warn(LogLevel::Warn, "duplicate range \"%s\", value: \"%s\", old value: \"%s\"",
                net.c_str(), second.c_str(), geo.values[static_cast<size_t>(old.value)].c_str());
      });
  if (overlap != nullptr) {
    return cf.errorf("range \"%s\" overlaps \"%s-%s\"", net.c_str(),
                     ipv4_text(overlap->start).c_str(), ipv4_text(overlap->end).c_str());
  }
  return {};
}

// One line of the block (include files are read into the block already).
Status geo_line(ConfContext& block_cf, const ConfNode& n, Geo& geo) {
  ConfContext cf = block_cf;
  cf.node = &n;
  if (n.block) return cf.error("unexpected \"{\"");
  const std::string& first = n.name();
  size_t args = n.nargs();
  if (first == "ranges" && args == 0) {
    if (geo.networks) {
      return cf.error("the \"ranges\" directive must be the first directive inside \"geo\" block");
    }
    geo.ranges = true;
    return {};
  }
  if (first == "proxy_recursive" && args == 0) {
    geo.proxy_recursive = true;
    return {};
  }
  if (args != 1) return cf.error("invalid number of the geo parameters");
  const std::string& second = n.args[1];
  if (first == "proxy") {
    Cidr c;
    if (Status s = parse_network(cf, second, c); !s.ok()) return s;
    geo.proxies.push_back(c);
    return {};
  }
  if (first == "default") {
    if (geo.ranges && geo.has_default) {
      cf.warn(LogLevel::Warn, "duplicate default geo range value: \"%s\", old value: \"%s\"",
              second.c_str(), geo.values[0].c_str());
    }
    geo.values[0] = second;
    geo.has_default = geo.networks = true;
    return {};
  }
  geo.networks = true;
  if (geo.ranges) return range_line(cf, first, second, geo);
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
