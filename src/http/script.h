// Complex values: strings with variables ("$scheme://$host$uri", "${name}s", "$1") compiled once at
// configuration time into literal, variable-index and capture parts, and evaluated per request into
// the request's pool. Also regex matching that sets $1..$9 and named captures. nginx:
// src/http/ngx_http_script.c (ngx_http_compile_complex_value, ngx_http_complex_value,
//        ngx_http_regex_exec)
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/regex.h"
#include "core/status.h"
#include "http/variables.h"

namespace weir {
struct ConfContext;
}

namespace weir::http {

struct Request;

class ComplexValue {
 public:
  // Compiles; errors ("unknown variable", "invalid variable name") carry the directive's position.
  Status compile(ConfContext& cf, std::string_view value, bool allow_captures = true);

  bool is_static() const { return !dynamic_; }
  const std::string& source() const { return source_; }
  // The value of a static complex value.
  std::string_view static_value() const { return source_literal_; }
  bool has_captures() const { return captures_mask_ != 0; }
  // Highest capture number referenced, for regexes that must provide it.
  int max_capture() const { return max_capture_; }

  // Which regex captures are %-escaped as URI args: none, all (a rewrite's redirect), or those
  // after the first "?" written in the value (a rewrite's new args) - nginx's rules for a URI that
  // came escaped.
  enum class CaptureEscape : uint8_t { None, All, InArgs };

  // Evaluates into r.pool (no allocation for a static value).
  std::string_view eval(Request& r, CaptureEscape escape = CaptureEscape::None) const {
    if (!dynamic_) return source_literal_;
    if (only_variable_ >= 0) return flushed_variable_text(r, only_variable_);
    return eval_dynamic(r, escape);
  }

 private:
  std::string_view eval_dynamic(Request& r, CaptureEscape escape) const;
  enum class Kind : uint8_t { Literal, Variable, Capture };
  struct Part {
    Kind kind;
    int index;         // variable index or capture number
    uint32_t off = 0;  // literal: its place in literals_ (offsets survive moves, views would not)
    uint32_t len = 0;
  };
  std::string_view literal(const Part& p) const {
    return std::string_view(literals_).substr(p.off, p.len);
  }
  std::string source_;
  std::string source_literal_;  // static: the text itself
  std::string literals_;        // storage for literal parts
  std::vector<Part> parts_;
  bool dynamic_ = false;
  int only_variable_ = -1;  // the value is this variable alone
  unsigned captures_mask_ = 0;
  int max_capture_ = -1;
};

// A regex as configuration uses it (locations, rewrite, if, server_name): named captures become
// variables.
struct HttpRegex {
  Regex re;
  std::vector<std::pair<int, int>> named;  // (variable index, capture group)
};

// Compiles; registers named captures as variables.
Status compile_http_regex(ConfContext& cf, HttpRegex& out, std::string_view pattern, bool caseless);
// Matches s; on success sets r.captures for $1..$9 and the named-capture variables. Returns true on
// match.
bool regex_exec(Request& r, const HttpRegex& re, std::string_view s);

}  // namespace weir::http
