// The sub filter's matcher: sub_filter's strings found in a body as it streams, without regard to
// ASCII case. At each place, left to right, the strings are tried in nginx's order (sorted by the
// byte at the shortest string's length, then as configured), and the first one that matches there
// is taken; a string that the data ends in the middle of holds the text back from that place until
// more comes, so that a match a buffer boundary cuts is found whole. The text held back is less
// than the longest string. nginx: ngx_http_sub_parse, ngx_http_sub_match, ngx_http_sub_init_tables
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace weir::http {

struct SubPattern {
  std::string_view text;  // lower case, not empty
  uint32_t pair = 0;      // which sub_filter (its replacement)
};

struct SubTable {
  std::span<const SubPattern> patterns;  // in trial order
  size_t min_len = 0;
  size_t max_len = 0;
  std::array<bool, 256> first{};  // the bytes, in either case, that a string begins with
};

// Sorts patterns into trial order and fills t from them (not empty).
void build_sub_table(std::span<SubPattern> patterns, SubTable& t);

constexpr uint8_t ascii_lower(uint8_t c) {
  return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c | 0x20) : c;
}

// Scans held + chunk: out.text(piece, from_held) receives the text that stays, in order (a piece of
// held must be copied, it is rewritten afterwards), and out.match(i) each match of patterns[i],
// which returns false when nothing more is to be replaced (the rest is then text). skip (may be
// null) marks the patterns not to try any more. Returns where the text to hold back begins (in
// held + chunk); what is before it has gone to out.
template <class Out>
size_t sub_scan(const SubTable& t, const bool* skip, std::string_view held, std::string_view chunk,
                Out& out) {
  const size_t h = held.size();
  const size_t n = h + chunk.size();
  auto at = [&](size_t k) { return static_cast<uint8_t>(k < h ? held[k] : chunk[k - h]); };
  auto emit = [&](size_t from, size_t to) {
    if (from < h && from < to) {
      out.text(held.substr(from, std::min(to, h) - from), true);
      from = h;
    }
    if (from < to) out.text(chunk.substr(from - h, to - from), false);
  };
  size_t done = 0;  // what went out
  size_t s = 0;
  while (s < n) {
    if (s >= h) {
      // The common stretch: bytes no string begins with.
      const auto* p = reinterpret_cast<const uint8_t*>(chunk.data()) + (s - h);
      const auto* end = reinterpret_cast<const uint8_t*>(chunk.data()) + chunk.size();
      while (p < end && !t.first[*p]) p++;
      s = h + static_cast<size_t>(p - reinterpret_cast<const uint8_t*>(chunk.data()));
      if (s == n) break;
    } else if (!t.first[at(s)]) {
      s++;
      continue;
    }
    bool partial = false;
    size_t found = t.patterns.size();
    for (size_t i = 0; i < t.patterns.size(); i++) {
      if (skip != nullptr && skip[i]) continue;
      std::string_view p = t.patterns[i].text;
      size_t j = 0;
      while (j < p.size() && s + j < n && ascii_lower(at(s + j)) == static_cast<uint8_t>(p[j])) {
        j++;
      }
      if (j == p.size()) {
        found = i;
        break;
      }
      if (s + j == n) {
        partial = true;  // it may still match: the first string that can decides
        break;
      }
    }
    if (partial) {
      emit(done, s);
      return s;
    }
    if (found == t.patterns.size()) {
      s++;
      continue;
    }
    emit(done, s);
    s += t.patterns[found].text.size();
    done = s;
    if (!out.match(found)) {
      emit(done, n);
      return n;
    }
  }
  emit(done, n);
  return n;
}

}  // namespace weir::http
