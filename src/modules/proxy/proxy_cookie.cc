#include "modules/proxy/proxy_cookie.h"

#include <cstring>
#include <optional>

#include "conf/setting.h"
#include "core/str.h"

namespace weir::http {

namespace {

enum : uint16_t {
  kSecureOn = 0x1,
  kSecureOff = 0x2,
  kHttpOnlyOn = 0x4,
  kHttpOnlyOff = 0x8,
  kSameSiteStrict = 0x10,
  kSameSiteLax = 0x20,
  kSameSiteNone = 0x40,
  kSameSiteOff = 0x80,
};

// "~re" or "~*re": compiled into re; else the text with variables into cv.
Status compile_pattern(ConfContext& cf, std::string_view text, bool& regex, HttpRegex& re,
                       ComplexValue& cv) {
  if (text.starts_with('~')) {
    regex = true;
    bool caseless = text.size() > 1 && text[1] == '*';
    return compile_http_regex(cf, re, text.substr(caseless ? 2 : 1), caseless);
  }
  return cv.compile(cf, text);
}

struct Attr {
  std::string_view key;
  std::string_view value;
  bool has_value = false;
};

constexpr size_t kMaxAttrs = 32;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view concat(Request& r, std::string_view a, std::string_view b) {
  char* p = r.pool->alloc_bytes(a.size() + b.size());
  if (!a.empty()) std::memcpy(p, a.data(), a.size());
  if (!b.empty()) std::memcpy(p + a.size(), b.data(), b.size());
  return {p, a.size() + b.size()};
}

// The first rule that matches changes the value (true when one did): a regex replaces it whole;
// a plain pattern is matched by `plain`, which answers the new value or nothing.
template <class Plain>
bool rewrite_value(Request& r, const std::deque<CookieRewrite>& rules, std::string_view& v,
                   Plain plain) {
  for (const CookieRewrite& rule : rules) {
    if (rule.regex) {
      if (!regex_exec(r, rule.re, v)) continue;
      v = rule.replacement.eval(r);
      return true;
    }
    if (std::optional<std::string_view> to = plain(rule, v)) {
      v = *to;
      return true;
    }
  }
  return false;
}

// Domain: the whole value without its leading dot, case-blind; the dot stays.
bool rewrite_domain(Request& r, const std::deque<CookieRewrite>& rules, std::string_view& v) {
  return rewrite_value(r, rules, v, [&](const CookieRewrite& rule, std::string_view d) {
    bool dot = d.starts_with('.');
    if (!iequals(rule.pattern.eval(r), dot ? d.substr(1) : d))
      return std::optional<std::string_view>();
    return std::optional(concat(r, dot ? "." : "", rule.replacement.eval(r)));
  });
}

// Path: a prefix, case-sensitive; the rest stays.
bool rewrite_path(Request& r, const std::deque<CookieRewrite>& rules, std::string_view& v) {
  return rewrite_value(r, rules, v, [&](const CookieRewrite& rule, std::string_view path) {
    std::string_view prefix = rule.pattern.eval(r);
    if (!path.starts_with(prefix)) return std::optional<std::string_view>();
    return std::optional(concat(r, rule.replacement.eval(r), path.substr(prefix.size())));
  });
}

// Sets (adds, or replaces in place) or removes an attribute; true when the cookie changed.
bool set_flag(Attr* attrs, size_t& n, std::string_view key, bool on, bool off,
              std::string_view canonical, std::string_view value) {
  bool changed = false;
  bool found = false;
  for (size_t i = 0; i < n;) {
    if (!iequals(attrs[i].key, key)) {
      i++;
      continue;
    }
    if (off) {
      std::memmove(&attrs[i], &attrs[i + 1], (n - i - 1) * sizeof(Attr));
      n--;
      changed = true;
      continue;
    }
    if (on && !found && !value.empty() &&
        (attrs[i].key != canonical || attrs[i].value != value || !attrs[i].has_value)) {
      attrs[i] = Attr{canonical, value, true};
      changed = true;
    }
    found = true;
    i++;
  }
  if (on && !found && n < kMaxAttrs) {
    attrs[n++] = Attr{canonical, value, !value.empty()};
    changed = true;
  }
  return changed;
}

bool apply_flags(Request& r, const std::deque<CookieFlags>& rules, std::string_view name,
                 Attr* attrs, size_t& n) {
  for (const CookieFlags& rule : rules) {
    bool match = rule.regex ? regex_exec(r, rule.re, name) : iequals(rule.name.eval(r), name);
    if (!match) continue;
    uint16_t f = rule.flags;
    bool changed = false;
    if (f & (kSecureOn | kSecureOff)) {
      changed |= set_flag(attrs, n, "secure", f & kSecureOn, f & kSecureOff, "Secure", "");
    }
    if (f & (kHttpOnlyOn | kHttpOnlyOff)) {
      changed |= set_flag(attrs, n, "httponly", f & kHttpOnlyOn, f & kHttpOnlyOff, "HttpOnly", "");
    }
    if (f & (kSameSiteStrict | kSameSiteLax | kSameSiteNone | kSameSiteOff)) {
      std::string_view v = f & kSameSiteStrict ? "Strict" : f & kSameSiteLax ? "Lax" : "None";
      changed |=
          set_flag(attrs, n, "samesite", !(f & kSameSiteOff), f & kSameSiteOff, "SameSite", v);
    }
    return changed;
  }
  return false;
}

}  // namespace

Status add_cookie_rewrite(ConfContext& cf, const ConfNode& n, CookieRuleList<CookieRewrite>& list) {
  if (n.nargs() == 1) {
    if (n.args[1] != "off") return cf.errorf("invalid parameter \"%s\"", n.args[1].c_str());
    if (list.set) return Status::error("is duplicate");
    list.set = true;
    list.rules = nullptr;
    return {};
  }
  if (n.nargs() != 2) return Status::error("invalid number of arguments");
  if (list.set && list.rules == nullptr) return Status::error("is duplicate");
  if (list.rules == nullptr) list.rules = cf.pool.make<std::deque<CookieRewrite>>();
  list.set = true;
  CookieRewrite& rule = list.rules->emplace_back();
  if (Status s = compile_pattern(cf, n.args[1], rule.regex, rule.re, rule.pattern); !s.ok()) {
    return s;
  }
  return rule.replacement.compile(cf, n.args[2]);
}

Status add_cookie_flags(ConfContext& cf, const ConfNode& n, CookieRuleList<CookieFlags>& list) {
  if (n.nargs() == 1) {
    // A cookie needs its flags; alone, only "off" (nginx's words otherwise).
    if (n.args[1] != "off") return cf.errorf("invalid parameter \"%s\"", n.args[1].c_str());
    if (list.set) return Status::error("is duplicate");
    list.set = true;
    list.rules = nullptr;
    return {};
  }
  if (list.set && list.rules == nullptr) return Status::error("is duplicate");
  if (list.rules == nullptr) list.rules = cf.pool.make<std::deque<CookieFlags>>();
  list.set = true;
  CookieFlags& rule = list.rules->emplace_back();
  if (Status s = compile_pattern(cf, n.args[1], rule.regex, rule.re, rule.name); !s.ok()) return s;
  static constexpr EnumName<uint16_t> kFlags[] = {
      {"secure", kSecureOn},
      {"nosecure", kSecureOff},
      {"httponly", kHttpOnlyOn},
      {"nohttponly", kHttpOnlyOff},
      {"samesite=strict", kSameSiteStrict},
      {"samesite=lax", kSameSiteLax},
      {"samesite=none", kSameSiteNone},
      {"nosamesite", kSameSiteOff},
  };
  return parse_bitmask(nullptr, n, kFlags, rule.flags, 2, "parameter");
}

void merge_cookie_rules(const CookieRules& prev, CookieRules& conf) {
  if (!conf.domains.set) conf.domains = prev.domains;
  if (!conf.paths.set) conf.paths = prev.paths;
  if (!conf.flags.set) conf.flags = prev.flags;
}

std::string_view rewrite_cookie(Request& r, const CookieRules& rules, std::string_view value) {
  // name=value, then the attributes (a cookie whose first part has no "=" is left alone).
  size_t semi = value.find(';');
  std::string_view first = trim(value.substr(0, semi));
  size_t eq = first.find('=');
  if (eq == std::string_view::npos) return value;
  std::string_view name = trim(first.substr(0, eq));
  Attr attrs[kMaxAttrs];
  size_t n = 0;
  for (std::string_view rest = semi == std::string_view::npos ? "" : value.substr(semi + 1);
       !rest.empty();) {
    size_t next = rest.find(';');
    std::string_view part = trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? "" : rest.substr(next + 1);
    if (part.empty()) continue;
    if (n == kMaxAttrs) return value;  // more than any real cookie has: left as it is
    size_t e = part.find('=');
    if (e == std::string_view::npos) {
      attrs[n++] = Attr{part, {}, false};
    } else {
      attrs[n++] = Attr{trim(part.substr(0, e)), trim(part.substr(e + 1)), true};
    }
  }
  bool changed = false;
  for (size_t i = 0; i < n; i++) {
    Attr& a = attrs[i];
    if (!a.has_value) continue;
    if (rules.domains.rules != nullptr && iequals(a.key, "domain")) {
      changed |= rewrite_domain(r, *rules.domains.rules, a.value);
    } else if (rules.paths.rules != nullptr && iequals(a.key, "path")) {
      changed |= rewrite_path(r, *rules.paths.rules, a.value);
    }
  }
  if (rules.flags.rules != nullptr) changed |= apply_flags(r, *rules.flags.rules, name, attrs, n);
  if (!changed) return value;
  size_t len = first.size();
  for (size_t i = 0; i < n; i++) len += 2 + attrs[i].key.size() + 1 + attrs[i].value.size();
  char* out = r.pool->alloc_bytes(len);
  char* p = put(out, first);
  for (size_t i = 0; i < n; i++) {
    p = put(p, "; ");
    p = put(p, attrs[i].key);
    if (attrs[i].has_value) {
      *p++ = '=';
      p = put(p, attrs[i].value);
    }
  }
  return {out, static_cast<size_t>(p - out)};
}

}  // namespace weir::http
