#include "modules/sub/sub_match.h"

#include <algorithm>

namespace weir::http {

void build_sub_table(std::span<SubPattern> patterns, SubTable& t) {
  t = SubTable{};
  t.min_len = patterns.front().text.size();
  for (const SubPattern& p : patterns) {
    t.min_len = std::min(t.min_len, p.text.size());
    t.max_len = std::max(t.max_len, p.text.size());
  }
  // nginx's order: which of two strings that match at one place is taken depends on it.
  size_t key = t.min_len - 1;
  std::stable_sort(patterns.begin(), patterns.end(),
                   [key](const SubPattern& a, const SubPattern& b) {
                     return static_cast<uint8_t>(a.text[key]) < static_cast<uint8_t>(b.text[key]);
                   });
  for (const SubPattern& p : patterns) {
    auto c = static_cast<uint8_t>(p.text[0]);
    t.first[c] = true;
    if (c >= 'a' && c <= 'z') t.first[c - 0x20] = true;
  }
  t.patterns = patterns;
}

}  // namespace weir::http
