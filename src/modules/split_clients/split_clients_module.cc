// split_clients: a variable that puts each value of a key (a complex value) in one of several
// buckets by percentage, with nginx's MurmurHash2 of the key, so the same keys land in the same
// buckets as with nginx (A/B tests keep their users when the front changes). "*" takes the rest.
// nginx: src/http/modules/ngx_http_split_clients_module.c
#include <memory>
#include <string>
#include <vector>

#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_split_clients_module;

namespace {

struct Part {
  uint32_t bound = 0;  // the hash is below it; 0: the rest ("*")
  std::string value;
};

struct Split {
  ComplexValue key;
  std::vector<Part> parts;
};

struct SplitMainConf {
  static constexpr Module* kModule = &http_split_clients_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  std::vector<std::unique_ptr<Split>> splits;
};

// MurmurHash2 (Austin Appleby's), seeded with the length as nginx seeds it.
uint32_t murmur2(std::string_view s) {
  constexpr uint32_t m = 0x5bd1e995;
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i])); };
  auto h = static_cast<uint32_t>(s.size());
  size_t i = 0;
  for (; s.size() - i >= 4; i += 4) {
    uint32_t k = byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24;
    k *= m;
    k ^= k >> 24;
    k *= m;
    h = h * m ^ k;
  }
  switch (s.size() - i) {
    case 3:
      h ^= byte(i + 2) << 16;
      [[fallthrough]];
    case 2:
      h ^= byte(i + 1) << 8;
      [[fallthrough]];
    case 1:
      h ^= byte(i);
      h *= m;
      break;
    default:
      break;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

void split_variable(Request& r, VariableValue& v, uintptr_t data) {
  const Split& s = *reinterpret_cast<const Split*>(data);
  uint32_t hash = murmur2(s.key.eval(r));
  for (const Part& p : s.parts) {
    if (hash < p.bound || p.bound == 0) {
      v.set(p.value);
      return;
    }
  }
  v.set({});
}

// "12.5%" as hundredths of a percent (two decimals at most, more than 0). nginx: ngx_atofp
std::optional<uint32_t> hundredths(std::string_view s) {
  if (s.empty() || s.back() != '%') return std::nullopt;
  s.remove_suffix(1);
  uint64_t n = 0;
  int decimals = -1;
  for (char c : s) {
    if (c == '.') {
      if (decimals >= 0) return std::nullopt;
      decimals = 0;
      continue;
    }
    if (c < '0' || c > '9' || decimals == 2) return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
    if (decimals >= 0) decimals++;
    if (n > 0xffffffffu) return std::nullopt;
  }
  for (int d = decimals < 0 ? 0 : decimals; d < 2; d++) n *= 10;
  if (s.empty() || n == 0 || n > 0xffffffffu) return std::nullopt;
  return static_cast<uint32_t>(n);
}

Status split_block(ConfContext& cf, const ConfNode& n, SplitMainConf& mcf) {
  auto split = std::make_unique<Split>();
  if (Status s = split->key.compile(cf, n.args[1]); !s.ok()) return s;
  std::string_view name = n.args[2];
  if (!name.starts_with('$')) return cf.errorf("invalid variable name \"%s\"", n.args[2].c_str());
  name.remove_prefix(1);
  for (const ConfNode& line : n.children) {
    ConfContext at = cf;
    at.node = &line;
    if (line.block || line.args.size() != 2) {
      return at.error("invalid number of the split_clients parameters");
    }
    Part p;
    if (line.args[0] != "*") {
      auto h = hundredths(line.args[0]);
      if (!h) return at.errorf("invalid percent value \"%s\"", line.args[0].c_str());
      p.bound = *h;
    }
    p.value = line.args[1];
    split->parts.push_back(std::move(p));
  }
  // Cumulative bounds over the 32-bit hash space, as nginx computes them.
  uint32_t sum = 0;
  uint32_t last = 0;
  for (Part& p : split->parts) {
    sum = p.bound != 0 ? sum + p.bound : 10000;
    if (sum > 10000) return cf.error("percent total is greater than 100%");
    if (p.bound != 0) {
      last += static_cast<uint32_t>(p.bound * uint64_t{0xffffffff} / 10000);
      p.bound = last;
    }
  }
  if (Status s = add_variable(cf, name, kVarChangeable, split_variable,
                              reinterpret_cast<uintptr_t>(split.get()));
      !s.ok()) {
    return s;
  }
  mcf.splits.push_back(std::move(split));
  return {};
}

SplitMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<SplitMainConf>();
}

constexpr Directive kDirectives[] = {
    directive<split_block>("split_clients", kHttpMainConf | kBlock | kTake2),
};
static_assert(directives_of(kDirectives, &http_split_clients_module));

}  // namespace

Module http_split_clients_module{
    .name = "http_split_clients",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
};

}  // namespace weir::http
