#include "core/utf8.h"

namespace weir {

uint32_t utf8_decode(const uint8_t*& p, const uint8_t* end) {
  uint32_t u = *p;
  uint32_t valid;
  size_t len;
  if (u >= 0xf0) {
    u &= 0x07;
    valid = 0xffff;
    len = 3;
  } else if (u >= 0xe0) {
    u &= 0x0f;
    valid = 0x7ff;
    len = 2;
  } else if (u >= 0xc2) {
    u &= 0x1f;
    valid = 0x7f;
    len = 1;
  } else {
    p++;
    return kUtf8Invalid;
  }
  if (static_cast<size_t>(end - p) - 1 < len) return kUtf8Incomplete;
  p++;
  for (; len > 0; len--) {
    uint32_t c = *p++;
    if (c < 0x80) return kUtf8Invalid;
    u = (u << 6) | (c & 0x3f);
  }
  return u > valid ? u : kUtf8Invalid;
}

namespace {

// Walks s a character at a time, at most `limit` of them; stops before an invalid one. Returns the
// characters walked, and in `bytes` where it stopped; valid is false when it stopped on an invalid
// sequence.
size_t walk(std::string_view s, size_t limit, size_t& bytes, bool& valid) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* begin = p;
  const auto* end = p + s.size();
  size_t n = 0;
  valid = true;
  for (; n < limit && p < end; n++) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    const uint8_t* next = p;
    if (utf8_decode(next, end) > 0x10ffff) {
      valid = false;
      break;
    }
    p = next;
  }
  bytes = static_cast<size_t>(p - begin);
  return n;
}

}  // namespace

size_t utf8_length(std::string_view s) {
  size_t bytes;
  bool valid;
  size_t n = walk(s, s.size(), bytes, valid);
  return valid ? n : s.size();
}

std::string_view utf8_prefix(std::string_view s, size_t chars) {
  size_t bytes;
  bool valid;
  walk(s, chars, bytes, valid);
  return s.substr(0, bytes);
}

}  // namespace weir
