// proxy_cookie_domain, proxy_cookie_path and proxy_cookie_flags: the upstream's Set-Cookie headers
// rewritten as nginx rewrites them - the domain (matched without its leading dot, case-blind), the
// path (a prefix, case-sensitive), or either by regex (the whole value replaced); then the flags of
// the first rule whose cookie name matches (Secure, HttpOnly, SameSite added, replaced or removed).
// A cookie no rule changes is passed as it came; a changed one is rebuilt with "; " between its
// attributes, as nginx does. nginx: ngx_http_proxy_rewrite_cookie
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>

#include "conf/conf_context.h"
#include "http/request.h"
#include "http/script.h"

namespace weir::http {

struct CookieRewrite {
  bool regex = false;
  HttpRegex re;
  ComplexValue pattern;
  ComplexValue replacement;
};

struct CookieFlags {
  bool regex = false;
  HttpRegex re;
  ComplexValue name;
  uint16_t flags = 0;
};

// One directive's rules at one level: nullptr with set (off), nullptr unset (inherit).
template <class Rule>
struct CookieRuleList {
  std::deque<Rule>* rules = nullptr;  // a deque: regexes do not move
  bool set = false;
};

struct CookieRules {
  CookieRuleList<CookieRewrite> domains;
  CookieRuleList<CookieRewrite> paths;
  CookieRuleList<CookieFlags> flags;

  bool any() const {
    return domains.rules != nullptr || paths.rules != nullptr || flags.rules != nullptr;
  }
};

// proxy_cookie_domain / proxy_cookie_path: "off", or a pattern ("~"/"~*" for a regex) and a
// replacement.
Status add_cookie_rewrite(ConfContext& cf, const ConfNode& n, CookieRuleList<CookieRewrite>& list);
// proxy_cookie_flags: "off", or a cookie name (or regex) and its flags.
Status add_cookie_flags(ConfContext& cf, const ConfNode& n, CookieRuleList<CookieFlags>& list);
// A level without its own lines of a directive takes the outer level's.
void merge_cookie_rules(const CookieRules& prev, CookieRules& conf);

// The Set-Cookie value after the rules (the same view when none changed it).
std::string_view rewrite_cookie(Request& r, const CookieRules& rules, std::string_view value);

}  // namespace weir::http
