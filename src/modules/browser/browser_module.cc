// browser: $modern_browser and $ancient_browser from the User-Agent, as nginx judges it - the
// modern_browser list (opera, msie, gecko, safari, konqueror with a least version; `unlisted`
// for the others), the ancient_browser substrings (and `netscape4`) - with the values of
// modern_browser_value and ancient_browser_value ("1"); and $msie.
// nginx: src/http/modules/ngx_http_browser_module.c
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/str.h"
#include "http/core_module.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_browser_module;

namespace {

// Where each browser's version is found: after `skip` bytes of the User-Agent, `name`, then
// `add` bytes further. Opera comes first: its User-Agent may name MSIE too.
struct BrowserMask {
  std::string_view browser;
  size_t skip;
  size_t add;
  std::string_view name;
};

constexpr BrowserMask kMasks[] = {
    {"opera", 0, 6, "Opera"},
    {"msie", 25, 5, "MSIE "},
    {"gecko", 13, 3, "rv:"},
    {"safari", 13, 7, "Safari/"},
    {"konqueror", 25, 10, "Konqueror/"},
};

struct ModernBrowser {
  size_t mask;       // in kMasks
  uint64_t version;  // major * 1000000 + minor * 10000 + ...
};

struct BrowserLocConf {
  static constexpr Module* kModule = &http_browser_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<ModernBrowser>* modern = nullptr;  // sorted by mask, Opera always present
  bool modern_unlisted = false;
  std::vector<std::string>* ancient = nullptr;
  bool netscape4 = false;
  Setting<std::string> modern_value;
  Setting<std::string> ancient_value;
};

enum class Verdict { Modern, Ancient };

Verdict judge(const Request& r, const BrowserLocConf& conf) {
  const Header* h = r.headers_in.user_agent;
  if (h == nullptr) return conf.modern_unlisted ? Verdict::Modern : Verdict::Ancient;
  std::string_view ua = h->value;
  if (conf.modern != nullptr) {
    // Opera may name MSIE: unlisted, it is still looked for first, and never modern (nginx gives it
    // a version no Opera has).
    if (conf.modern->front().mask != 0) {
      size_t at = ua.find(kMasks[0].name);
      if (at != std::string_view::npos && at + kMasks[0].add < ua.size()) return Verdict::Ancient;
    }
    for (const ModernBrowser& m : *conf.modern) {
      const BrowserMask& mask = kMasks[m.mask];
      if (mask.skip >= ua.size()) continue;
      size_t at = ua.find(mask.name, mask.skip);
      if (at == std::string_view::npos) continue;
      at += mask.add;
      if (at >= ua.size()) continue;
      uint64_t version = 0, part = 0, scale = 1000000;
      for (; at < ua.size(); at++) {
        char c = ua[at];
        if (c >= '0' && c <= '9') {
          part = part * 10 + static_cast<uint64_t>(c - '0');
          continue;
        }
        if (c != '.') break;
        version += part * scale;
        if (version > m.version) return Verdict::Modern;
        part = 0;
        scale /= 100;
      }
      version += part * scale;
      return version >= m.version ? Verdict::Modern : Verdict::Ancient;
    }
    if (!conf.modern_unlisted) return Verdict::Ancient;
  }
  if (conf.netscape4 && ua.size() > 13 && ua.starts_with("Mozilla/") && ua[8] > '0' &&
      ua[8] < '5') {
    return Verdict::Ancient;
  }
  if (conf.ancient != nullptr) {
    for (const std::string& a : *conf.ancient) {
      if (ua.size() >= a.size() && ua.find(a) != std::string_view::npos) return Verdict::Ancient;
    }
  }
  return conf.modern_unlisted ? Verdict::Modern : Verdict::Ancient;
}

void var_browser(Request& r, VariableValue& v, uintptr_t modern) {
  const auto& conf = r.loc<BrowserLocConf>();
  Verdict verdict = judge(r, conf);
  if (modern != 0 && verdict == Verdict::Modern) return v.set(*conf.modern_value);
  if (modern == 0 && verdict == Verdict::Ancient) return v.set(*conf.ancient_value);
  v.set({});
}

void var_msie(Request& r, VariableValue& v, uintptr_t) {
  v.set(r.headers_in.msie ? "1" : "");
}

// --- configuration ---------------------------------------------------------------------------

Status modern_directive(ConfContext& cf, const ConfNode& n, BrowserLocConf& conf) {
  if (n.nargs() == 1) {
    if (n.args[1] == "unlisted") {
      conf.modern_unlisted = true;
      return {};
    }
    return cf.errorf("invalid number of arguments in \"modern_browser\" directive");
  }
  size_t mask = 0;
  for (; mask < std::size(kMasks); mask++) {
    if (iequals(kMasks[mask].browser, n.args[1])) break;
  }
  if (mask == std::size(kMasks)) return cf.errorf("unknown browser name \"%s\"", n.args[1].c_str());
  uint64_t version = 0, part = 0, scale = 1000000;
  for (char c : n.args[2]) {
    if (c >= '0' && c <= '9') {
      part = part * 10 + static_cast<uint64_t>(c - '0');
    } else if (c == '.') {
      version += part * scale;
      part = 0;
      scale /= 100;
    } else {
      return cf.errorf("invalid browser version \"%s\"", n.args[2].c_str());
    }
  }
  if (conf.modern == nullptr) conf.modern = cf.pool.make<std::vector<ModernBrowser>>();
  // Kept in the masks' order (Opera first), wherever the list is given.
  auto& list = *conf.modern;
  auto at = std::upper_bound(list.begin(), list.end(), mask,
                             [](size_t m, const ModernBrowser& b) { return m < b.mask; });
  list.insert(at, {mask, version + part * scale});
  return {};
}

Status ancient_directive(ConfContext& cf, const ConfNode& n, BrowserLocConf& conf) {
  for (size_t i = 1; i < n.args.size(); i++) {
    if (n.args[i] == "netscape4") {
      conf.netscape4 = true;
      continue;
    }
    if (conf.ancient == nullptr) conf.ancient = cf.pool.make<std::vector<std::string>>();
    conf.ancient->push_back(n.args[i]);
  }
  return {};
}

BrowserLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<BrowserLocConf>();
}

Status merge_loc_conf(ConfContext&, const BrowserLocConf& prev, BrowserLocConf& conf) {
  if (conf.modern == nullptr && !conf.modern_unlisted) {
    conf.modern = prev.modern;
    conf.modern_unlisted = prev.modern_unlisted;
  }
  if (conf.ancient == nullptr && !conf.netscape4) {
    conf.ancient = prev.ancient;
    conf.netscape4 = prev.netscape4;
  }
  conf.modern_value.merge(prev.modern_value, "1");
  conf.ancient_value.merge(prev.ancient_value, "1");
  return {};
}

Status preconfiguration(ConfContext& cf) {
  if (Status s = add_variable(cf, "modern_browser", 0, var_browser, 1); !s.ok()) return s;
  if (Status s = add_variable(cf, "ancient_browser", 0, var_browser, 0); !s.ok()) return s;
  return add_variable(cf, "msie", 0, var_msie, 0);
}

constexpr Directive kDirectives[] = {
    directive<modern_directive>("modern_browser", kHttpMainSrvLoc | kTake12),
    directive<ancient_directive>("ancient_browser", kHttpMainSrvLoc | kOneMore),
    directive<slot::str<&BrowserLocConf::modern_value>>("modern_browser_value",
                                                        kHttpMainSrvLoc | kTake1),
    directive<slot::str<&BrowserLocConf::ancient_value>>("ancient_browser_value",
                                                         kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_browser_module));

}  // namespace

Module http_browser_module{
    .name = "http_browser",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
