// Regular expressions through PCRE2 (with JIT when available): compiled once at configuration time,
// matched on the data path into a caller's capture array without allocating. nginx:
// src/core/ngx_regex.c
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

struct pcre2_real_code_8;

namespace weir {

class Regex {
 public:
  Regex() = default;
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Compiles; on failure returns nginx's message ("pcre2_compile() failed: ... in \"...\" at
  // \"...\"").
  Status compile(std::string_view pattern, bool caseless);

  // Matches; caps receives 2 * (captures() + 1) offsets (-1 for unset groups) when non-null.
  // Returns true on a match.
  bool match(std::string_view subject, int* caps, int ncaps) const;

  int captures() const { return captures_; }
  const std::vector<std::pair<std::string, int>>& names() const { return names_; }
  const std::string& pattern() const { return pattern_; }

  static void set_jit(bool on);

 private:
  pcre2_real_code_8* code_ = nullptr;
  int captures_ = 0;
  std::vector<std::pair<std::string, int>> names_;
  std::string pattern_;
};

}  // namespace weir
