// allow / deny: the client's address against rules in the order written (an address, a CIDR
// block, "unix:" for unix-socket clients, "all"); the first that matches allows or denies (403,
// "access forbidden by rule" with satisfy all); none matching leaves the decision to the other
// access modules. An IPv4-mapped IPv6 client is checked against the IPv4 rules. A level with rules
// replaces the outer level's. nginx: src/http/modules/ngx_http_access_module.c
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "core/cidr.h"
#include "core/str.h"
#include "http/core_module.h"

namespace weir::http {

extern Module http_access_module;

namespace {

struct Rule4 {
  uint32_t addr = 0;  // network order
  uint32_t mask = 0;
  bool deny = false;
};

struct Rule6 {
  std::array<uint8_t, 16> addr{};
  std::array<uint8_t, 16> mask{};
  bool deny = false;
};

struct AccessLocConf {
  static constexpr Module* kModule = &http_access_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<Rule4>* rules4 = nullptr;
  std::vector<Rule6>* rules6 = nullptr;
  std::vector<bool>* rules_unix = nullptr;  // deny or not, in order
};

Code decide(Request& r, bool deny) {
  if (!deny) return Rc::Ok;
  if (*core_loc(r).satisfy == 0) log_error(LogLevel::Error, r.log(), 0, "access forbidden by rule");
  return Code::status(403);
}

Code check4(Request& r, const std::vector<Rule4>& rules, uint32_t addr) {
  for (const Rule4& rule : rules) {
    if ((addr & rule.mask) == rule.addr) return decide(r, rule.deny);
  }
  return Rc::Declined;
}

Code check6(Request& r, const std::vector<Rule6>& rules, const uint8_t* addr) {
  for (const Rule6& rule : rules) {
    bool match = true;
    for (size_t i = 0; i < 16 && match; i++) match = (addr[i] & rule.mask[i]) == rule.addr[i];
    if (match) return decide(r, rule.deny);
  }
  return Rc::Declined;
}

Code access_handler(Request& r) {
  const auto& conf = r.loc<AccessLocConf>();
  const Connection& c = *r.connection;
  switch (c.peer.sa.sa_family) {
    case AF_INET:
      if (conf.rules4 != nullptr) return check4(r, *conf.rules4, c.peer.in.sin_addr.s_addr);
      break;
    case AF_INET6: {
      const uint8_t* p = c.peer.in6.sin6_addr.s6_addr;
      if (conf.rules4 != nullptr && IN6_IS_ADDR_V4MAPPED(&c.peer.in6.sin6_addr)) {
        uint32_t v4;
        std::memcpy(&v4, p + 12, 4);
        return check4(r, *conf.rules4, v4);
      }
      if (conf.rules6 != nullptr) return check6(r, *conf.rules6, p);
      break;
    }
    case AF_UNIX:
      if (conf.rules_unix != nullptr && !conf.rules_unix->empty()) {
        return decide(r, conf.rules_unix->front());
      }
      break;
    default:
      break;
  }
  return Rc::Declined;
}

// An address with an optional /bits (host bits cleared, with nginx's warning when any were set).
template <size_t N>
bool parse_block(ConfContext& cf, std::string_view text, std::array<uint8_t, N>& addr,
                 std::array<uint8_t, N>& mask) {
  Cidr c;
  CidrParse rc = parse_cidr(text, c);
  if (rc == CidrParse::Invalid || c.family != (N == 4 ? AF_INET : AF_INET6)) return false;
  if (rc == CidrParse::LowBits) {
    cf.warn(LogLevel::Warn, "low address bits of %.*s are meaningless",
            static_cast<int>(text.size()), text.data());
  }
  std::copy_n(c.addr.begin(), N, addr.begin());
  std::copy_n(c.mask.begin(), N, mask.begin());
  return true;
}

template <bool kDeny>
Status rule_directive(ConfContext& cf, const ConfNode& n, AccessLocConf& conf) {
  std::string_view value = n.args[1];
  bool all = value == "all";
  auto add4 = [&](const std::array<uint8_t, 4>& a, const std::array<uint8_t, 4>& m) {
    if (conf.rules4 == nullptr) conf.rules4 = cf.pool.make<std::vector<Rule4>>();
    Rule4 rule;
    std::memcpy(&rule.addr, a.data(), 4);
    std::memcpy(&rule.mask, m.data(), 4);
    rule.deny = kDeny;
    conf.rules4->push_back(rule);
  };
  auto add6 = [&](const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& m) {
    if (conf.rules6 == nullptr) conf.rules6 = cf.pool.make<std::vector<Rule6>>();
    conf.rules6->push_back(Rule6{a, m, kDeny});
  };
  auto add_unix = [&] {
    if (conf.rules_unix == nullptr) conf.rules_unix = cf.pool.make<std::vector<bool>>();
    conf.rules_unix->push_back(kDeny);
  };
  if (all) {
    add4({}, {});
    add6({}, {});
    add_unix();
    return {};
  }
  if (value == "unix:") {
    add_unix();
    return {};
  }
  std::array<uint8_t, 4> a4{}, m4{};
  std::array<uint8_t, 16> a6{}, m6{};
  if (value.find(':') == std::string_view::npos) {
    if (!parse_block(cf, value, a4, m4)) {
      return cf.errorf("invalid parameter \"%s\"", n.args[1].c_str());
    }
    add4(a4, m4);
    return {};
  }
  if (!parse_block(cf, value, a6, m6)) {
    return cf.errorf("invalid parameter \"%s\"", n.args[1].c_str());
  }
  add6(a6, m6);
  return {};
}

AccessLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<AccessLocConf>();
}

Status merge_loc_conf(ConfContext&, const AccessLocConf& prev, AccessLocConf& conf) {
  if (conf.rules4 == nullptr && conf.rules6 == nullptr && conf.rules_unix == nullptr) {
    conf.rules4 = prev.rules4;
    conf.rules6 = prev.rules6;
    conf.rules_unix = prev.rules_unix;
  }
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_access_module)) return {};  // no rules anywhere: no access phase
  add_phase_handler(cf, Phase::Access, access_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<rule_directive<false>>("allow", kHttpMainSrvLoc | kHttpLmtConf | kTake1),
    directive<rule_directive<true>>("deny", kHttpMainSrvLoc | kHttpLmtConf | kTake1),
};
static_assert(directives_of(kDirectives, &http_access_module));

}  // namespace

Module http_access_module{
    .name = "http_access",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
