#include "core/str.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

namespace weir {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

size_t ifind(std::string_view s, std::string_view needle, size_t from) {
  if (needle.size() > s.size()) return std::string_view::npos;
  if (needle.empty()) return from <= s.size() ? from : std::string_view::npos;
  // The whole comparison only where the first byte matches.
  char first = to_lower(needle[0]);
  std::string_view rest = needle.substr(1);
  for (size_t i = from; i + needle.size() <= s.size(); i++) {
    if (to_lower(s[i]) == first && iequals(s.substr(i + 1, rest.size()), rest)) return i;
  }
  return std::string_view::npos;
}

namespace {

template <class Word>
void lower_at(char* dst, const char* src) {
  Word w;
  std::memcpy(&w, src, sizeof w);
  w = static_cast<Word>(str_detail::lower_word(w));  // a four-byte word: its top half stays 0
  std::memcpy(dst, &w, sizeof w);
}

}  // namespace

void lowercase_into(char* dst, std::string_view src) {
  const char* p = src.data();
  size_t n = src.size();
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8) lower_at<uint64_t>(dst + i, p + i);
    lower_at<uint64_t>(dst + n - 8, p + n - 8);  // the tail, overlapping
  } else if (n >= 4) {
    lower_at<uint32_t>(dst, p);
    lower_at<uint32_t>(dst + n - 4, p + n - 4);
  } else {
    for (size_t i = 0; i < n; i++) dst[i] = to_lower(p[i]);
  }
}

std::string lowercased(std::string_view s) {
  std::string out(s.size(), '\0');
  lowercase_into(out.data(), s);
  return out;
}

std::optional<int64_t> parse_int(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  constexpr int64_t kCutoff = INT64_MAX / 10;
  constexpr int64_t kCutlim = INT64_MAX % 10;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    int d = c - '0';
    if (v > kCutoff || (v == kCutoff && d > kCutlim)) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<int64_t> take_int(std::string_view s, size_t& i) {
  size_t end = i;
  while (end < s.size() && s[end] >= '0' && s[end] <= '9') end++;
  std::optional<int64_t> n = parse_int(s.substr(i, end - i));
  i = end;
  return n;
}

namespace {

std::optional<int64_t> parse_scaled(std::string_view s, bool allow_g) {
  if (s.empty()) return std::nullopt;
  int64_t scale = 1;
  switch (s.back()) {
    case 'K':
    case 'k':
      scale = 1024;
      break;
    case 'M':
    case 'm':
      scale = 1024 * 1024;
      break;
    case 'G':
    case 'g':
      if (!allow_g) return parse_int(s);
      scale = int64_t{1024} * 1024 * 1024;
      break;
    default:
      return parse_int(s);
  }
  auto v = parse_int(s.substr(0, s.size() - 1));
  if (!v || *v > INT64_MAX / scale) return std::nullopt;
  return *v * scale;
}

}  // namespace

std::optional<int64_t> parse_size(std::string_view s) {
  return parse_scaled(s, false);
}
std::optional<int64_t> parse_offset(std::string_view s) {
  return parse_scaled(s, true);
}

std::optional<int64_t> parse_time(std::string_view s, bool is_sec) {
  // Units appear in decreasing order, each at most once: y M w d h m s ms; a bare number is
  // seconds.
  enum Step { kStart, kYear, kMonth, kWeek, kDay, kHour, kMin, kSec, kMsec, kLast };
  int step = is_sec ? kStart : kMonth;
  int64_t total = 0;
  int64_t value = 0;
  bool valid = false;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i++];
    if (c >= '0' && c <= '9') {
      if (value > (INT64_MAX - (c - '0')) / 10) return std::nullopt;
      value = value * 10 + (c - '0');
      valid = true;
      continue;
    }
    int next;
    int64_t scale;
    switch (c) {
      case 'y':
        if (step > kStart) return std::nullopt;
        next = kYear, scale = 60 * 60 * 24 * 365;
        break;
      case 'M':
        next = kMonth, scale = 60 * 60 * 24 * 30;
        break;
      case 'w':
        next = kWeek, scale = 60 * 60 * 24 * 7;
        break;
      case 'd':
        next = kDay, scale = 60 * 60 * 24;
        break;
      case 'h':
        next = kHour, scale = 60 * 60;
        break;
      case 'm':
        if (i < s.size() && s[i] == 's') {
          if (is_sec) return std::nullopt;
          i++;
          next = kMsec, scale = 1;
          break;
        }
        next = kMin, scale = 60;
        break;
      case 's':
        next = kSec, scale = 1;
        break;
      case ' ':
        next = kLast, scale = 1;
        break;
      default:
        return std::nullopt;
    }
    if (next != kLast && step >= next) return std::nullopt;
    step = next;
    if (step != kMsec && !is_sec) scale *= 1000;
    if (value > INT64_MAX / scale) return std::nullopt;
    value *= scale;
    if (total > INT64_MAX - value) return std::nullopt;
    total += value;
    value = 0;
    while (i < s.size() && s[i] == ' ') i++;
  }
  if (!valid) return std::nullopt;
  if (!is_sec) {
    if (value > INT64_MAX / 1000) return std::nullopt;
    value *= 1000;
  }
  if (total > INT64_MAX - value) return std::nullopt;
  return total + value;
}

namespace {

int decimal_digits(uint64_t v) {
  for (int n = 1;; n += 4) {
    if (v < 10) return n;
    if (v < 100) return n + 1;
    if (v < 1000) return n + 2;
    if (v < 10000) return n + 3;
    v /= 10000;
  }
}

}  // namespace

char* put_uint(char* p, uint64_t v) {
  char* end = p + decimal_digits(v);
  put_digits_backwards(p, end, v);
  return end;
}

char* put_int(char* p, int64_t v) {
  if (v < 0) {
    *p++ = '-';
    return put_uint(p, static_cast<uint64_t>(-(v + 1)) + 1);
  }
  return put_uint(p, static_cast<uint64_t>(v));
}

char* put_hex(char* p, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  // As many digits as v has (one for 0), written in place from the last.
  char* end = p + (std::bit_width(v | 1) + 3) / 4;
  for (char* q = end; q != p; v >>= 4) *--q = kHex[v & 0xf];
  return end;
}

char* put_fixed(char* p, double v, int frac_digits) {
  if (v < 0) {
    *p++ = '-';
    v = -v;
  }
  auto whole = static_cast<uint64_t>(static_cast<int64_t>(v));
  if (frac_digits == 0) return put_uint(p, whole);
  uint64_t scale = 1;
  for (int i = 0; i < frac_digits; i++) scale *= 10;
  // Half up, as nginx rounds (v is not negative here: floor is its truncation).
  double scaled = (v - static_cast<double>(whole)) * static_cast<double>(scale);
  auto frac = static_cast<uint64_t>(std::floor(scaled + 0.5));
  if (frac == scale) {
    whole++;
    frac = 0;
  }
  p = put_uint(p, whole);
  *p++ = '.';
  return put_uint_pad(p, frac, frac_digits);
}

}  // namespace weir
