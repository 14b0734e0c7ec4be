// String helpers used everywhere: ASCII case folding, number/size/time parsing with nginx's rules,
// and the small "put" writers the hot paths format with (no iostreams, no heap). nginx:
// src/core/ngx_string.c, src/core/ngx_parse.c
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace weir {

constexpr char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}
constexpr char to_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c & ~0x20) : c;
}

namespace str_detail {
// width (up to 8) bytes at p as a little-endian number, the same at compile time as at run time.
constexpr uint64_t load_le(const char* p, size_t width) {
  uint64_t w = 0;
  if (std::is_constant_evaluated()) {
    for (size_t k = 0; k < width; k++) w |= uint64_t{static_cast<unsigned char>(p[k])} << (8 * k);
    return w;
  }
  std::memcpy(&w, p, width);
  if constexpr (std::endian::native == std::endian::big) {
    w = __builtin_bswap64(w) >> (64 - 8 * width);
  }
  return w;
}
}  // namespace str_detail

namespace str_detail {
constexpr uint64_t kHashMul = 0x9e3779b97f4a7c15ull;

// The ASCII upper-case letters among w's bytes made lower case, all bytes at once: a byte's top bit
// says whether it is >= 'A' and whether it is > 'Z' after adding to its low seven bits.
constexpr uint64_t lower_word(uint64_t w) {
  constexpr uint64_t kOnes = ~uint64_t{0} / 0xff;
  uint64_t low7 = w & (0x7f * kOnes);
  uint64_t ge_a = low7 + (0x80 - 'A') * kOnes;
  uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * kOnes;
  uint64_t upper = ~w & (ge_a ^ gt_z) & (0x80 * kOnes);
  return w | (upper >> 2);
}

// One to seven bytes as one word: the first and last four (overlapping), or of one to three bytes
// the first, the middle and the last. With the length known, it is the string itself.
constexpr uint64_t short_word(const char* p, size_t n) {
  if (n >= 4) return load_le(p, 4) << 32 | load_le(p + n - 4, 4);
  return uint64_t{static_cast<unsigned char>(p[0])} << 16 |
         uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 | static_cast<unsigned char>(p[n - 1]);
}

template <bool kCaseless>
constexpr uint64_t hash_bytes(std::string_view s) {
  auto step = [](uint64_t h, uint64_t w) {
    if (kCaseless) w = lower_word(w);
    return ((h << 5 | h >> 59) ^ w) * kHashMul;
  };
  uint64_t h = s.size() * kHashMul;
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) h = step(h, load_le(p, 8));
  if (n > 0) {
    // The last eight bytes (overlapping) of a longer string.
    h = step(h, s.size() >= 8 ? load_le(s.data() + s.size() - 8, 8) : short_word(p, n));
  }
  return h ^ (h >> 32);
}
}  // namespace str_detail

// A fast, non-cryptographic hash for in-process tables (paths, extensions, names): eight bytes
// at a time, multiply and rotate; usable at compile time (tables built by the compiler). Not for
// tables an attacker fills with chosen keys.
constexpr uint64_t hash_bytes(std::string_view s) {
  return str_detail::hash_bytes<false>(s);
}
// hash_bytes of s with its ASCII letters lower-cased, without a copy.
constexpr uint64_t hash_bytes_caseless(std::string_view s) {
  return str_detail::hash_bytes<true>(s);
}

// Whether s, in any case, is `lower` (which is lower case): a word compare for short strings.
constexpr bool equals_lower(std::string_view lower, std::string_view s) {
  using str_detail::lower_word;
  using str_detail::short_word;
  if (lower.size() != s.size()) return false;
  size_t n = s.size();
  if (n == 0) return true;
  if (n < 8) return short_word(lower.data(), n) == lower_word(short_word(s.data(), n));
  for (size_t i = 0; i + 8 <= n; i += 8) {
    if (str_detail::load_le(lower.data() + i, 8) !=
        lower_word(str_detail::load_le(s.data() + i, 8)))
      return false;
  }
  return str_detail::load_le(lower.data() + n - 8, 8) ==
         lower_word(str_detail::load_le(s.data() + n - 8, 8));
}

// For unordered maps keyed by std::string that are looked up by std::string_view without building a
// string (with std::equal_to<>).
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return hash_bytes(s); }
};

bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
// Case-insensitive search of needle in s; npos when absent.
size_t ifind(std::string_view s, std::string_view needle, size_t from = 0);
void lowercase_into(char* dst, std::string_view src);
std::string lowercased(std::string_view s);
// s without leading and trailing spaces and tabs (HTTP's optional white space).
constexpr std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Non-negative decimal integer, nginx's ngx_atoi: no sign, no spaces, overflow is an error.
std::optional<int64_t> parse_int(std::string_view s);
// The decimal number at s[i...] (parse_int's rules), i moved past its digits; nullopt when there
// is none or it overflows.
std::optional<int64_t> take_int(std::string_view s, size_t& i);
// Sizes: "1024", "8k", "1m" (nginx's ngx_parse_size); offsets also take "g" (ngx_parse_offset).
std::optional<int64_t> parse_size(std::string_view s);
std::optional<int64_t> parse_offset(std::string_view s);
// Times: "30", "500ms", "1h 30m", "2d" (ngx_parse_time); result in ms, or in seconds when is_sec.
std::optional<int64_t> parse_time(std::string_view s, bool is_sec);

// Most pieces written are short (header names, log format literals, numbers): those are copied
// inline with two overlapping loads and stores instead of a call to memcpy.
inline char* put(char* p, std::string_view s) {
  const char* src = s.data();
  size_t n = s.size();
  if (n > 64) {
    std::memcpy(p, src, n);
  } else if (n > 32) {  // a header line: two overlapping 32-byte moves
    char head[32], tail[32];
    std::memcpy(head, src, 32);
    std::memcpy(tail, src + n - 32, 32);
    std::memcpy(p, head, 32);
    std::memcpy(p + n - 32, tail, 32);
  } else if (n > 16) {  // a date, a type: two overlapping 16-byte moves, no call
    char head[16], tail[16];
    std::memcpy(head, src, 16);
    std::memcpy(tail, src + n - 16, 16);
    std::memcpy(p, head, 16);
    std::memcpy(p + n - 16, tail, 16);
  } else if (n >= 8) {
    uint64_t head, tail;
    std::memcpy(&head, src, 8);
    std::memcpy(&tail, src + n - 8, 8);
    std::memcpy(p, &head, 8);
    std::memcpy(p + n - 8, &tail, 8);
  } else if (n >= 4) {
    uint32_t head, tail;
    std::memcpy(&head, src, 4);
    std::memcpy(&tail, src + n - 4, 4);
    std::memcpy(p, &head, 4);
    std::memcpy(p + n - 4, &tail, 4);
  } else if (n != 0) {  // an empty view may hold a null pointer
    p[0] = src[0];
    p[n / 2] = src[n / 2];
    p[n - 1] = src[n - 1];
  }
  return p + n;
}
// Whether n bytes (sizeof(Word) <= n <= 2 * sizeof(Word)) at a and b are the same: the first and
// the last Word of each, overlapping.
template <class Word>
bool same_ends(const char* a, const char* b, size_t n) {
  Word a0, a1, b0, b1;
  std::memcpy(&a0, a, sizeof(Word));
  std::memcpy(&a1, a + n - sizeof(Word), sizeof(Word));
  std::memcpy(&b0, b, sizeof(Word));
  std::memcpy(&b1, b + n - sizeof(Word), sizeof(Word));
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// Whether n bytes at a and at b are the same: short keys (addresses, names) without a call.
inline bool same_bytes(const char* a, const char* b, size_t n) {
  if (n > 16) return std::memcmp(a, b, n) == 0;
  if (n >= 8) return same_ends<uint64_t>(a, b, n);
  if (n >= 4) return same_ends<uint32_t>(a, b, n);
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// The tree key of a zone's key (limit_req, limit_conn): a four-byte key (an IPv4
// $binary_remote_addr, the usual one) is its own, others hash_bytes'. Keys are ordered by it, and
// then by compare_keys, so equal tree keys of different keys only cost a comparison.
inline uint32_t zone_key_hash(std::string_view key) {
  if (key.size() == 4) {
    uint32_t v;
    std::memcpy(&v, key.data(), 4);
    return v;
  }
  return static_cast<uint32_t>(hash_bytes(key));
}

// A total order of keys that is quick to say "equal" for short ones (the keys of zone trees, whose
// order only needs to be the same every time): shorter first, then memcmp's order.
inline int compare_keys(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  if (same_bytes(a.data(), b.data(), a.size())) return 0;
  return std::memcmp(a.data(), b.data(), a.size());
}

// "00" "01" ... "99": two digits per division by 100.
inline constexpr auto kDigitPairs = [] {
  std::array<char, 200> t{};
  for (int i = 0; i < 100; i++) {
    t[2 * i] = static_cast<char>('0' + i / 10);
    t[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

// Writes the low digits of v backwards, ending just before end, until start.
inline void put_digits_backwards(char* start, char* end, uint64_t v) {
  while (end - start >= 2) {
    end -= 2;
    std::memcpy(end, &kDigitPairs[(v % 100) * 2], 2);
    v /= 100;
  }
  if (end > start) *start = static_cast<char>('0' + v % 10);
}

char* put_uint(char* p, uint64_t v);
char* put_int(char* p, int64_t v);
// Zero-padded to width digits (inline: a constant width unrolls, as in dates' two-digit fields).
inline char* put_uint_pad(char* p, uint64_t v, int width) {
  put_digits_backwards(p, p + width, v);
  return p + width;
}
char* put_hex(char* p, uint64_t v);
// nginx's "%.Nf" (ngx_vslprintf): the fraction's digits rounded half up from the double, not
// printf's correctly rounded decimal (0.125 is "0.13" at two digits). At most 19 digits.
char* put_fixed(char* p, double v, int frac_digits);
inline size_t uint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

// Hex digit value, or -1.
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = to_lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace weir
