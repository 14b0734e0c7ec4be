#include "core/base64.h"

#include <array>
#include <cstdint>

namespace weir {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr uint8_t kInvalid = 0xff;

using Values = std::array<uint8_t, 256>;

constexpr Values values_of(std::string_view alphabet) {
  Values t{};
  t.fill(kInvalid);
  for (size_t i = 0; i < alphabet.size(); i++) t[static_cast<uint8_t>(alphabet[i])] = i;
  return t;
}

constexpr Values kValues = values_of(kAlphabet);
constexpr Values kUrlValues = values_of(kUrlAlphabet);

std::optional<size_t> decode(char* dst, std::string_view src, const Values& values) {
  size_t len = 0;
  for (; len < src.size() && src[len] != '='; len++) {
    if (values[static_cast<uint8_t>(src[len])] == kInvalid) return std::nullopt;
  }
  if (len % 4 == 1) return std::nullopt;
  auto v = [&](size_t i) -> uint32_t { return values[static_cast<uint8_t>(src[i])]; };
  char* d = dst;
  size_t i = 0;
  for (; i + 3 < len; i += 4) {
    uint32_t w = v(i) << 18 | v(i + 1) << 12 | v(i + 2) << 6 | v(i + 3);
    *d++ = static_cast<char>(w >> 16);
    *d++ = static_cast<char>(w >> 8);
    *d++ = static_cast<char>(w);
  }
  if (len - i >= 2) *d++ = static_cast<char>(v(i) << 2 | v(i + 1) >> 4);
  if (len - i == 3) *d++ = static_cast<char>(v(i + 1) << 4 | v(i + 2) >> 2);
  return static_cast<size_t>(d - dst);
}

}  // namespace

size_t base64_encode(char* dst, std::span<const unsigned char> src) {
  char* d = dst;
  size_t i = 0;
  for (; i + 2 < src.size(); i += 3) {
    uint32_t w = src[i] << 16 | src[i + 1] << 8 | src[i + 2];
    *d++ = kAlphabet[w >> 18];
    *d++ = kAlphabet[(w >> 12) & 0x3f];
    *d++ = kAlphabet[(w >> 6) & 0x3f];
    *d++ = kAlphabet[w & 0x3f];
  }
  if (size_t rest = src.size() - i; rest != 0) {
    uint32_t w = src[i] << 16 | (rest == 2 ? src[i + 1] << 8 : 0);
    *d++ = kAlphabet[w >> 18];
    *d++ = kAlphabet[(w >> 12) & 0x3f];
    *d++ = rest == 2 ? kAlphabet[(w >> 6) & 0x3f] : '=';
    *d++ = '=';
  }
  return static_cast<size_t>(d - dst);
}

std::optional<size_t> base64_decode(char* dst, std::string_view src) {
  return decode(dst, src, kValues);
}

std::optional<size_t> base64url_decode(char* dst, std::string_view src) {
  return decode(dst, src, kUrlValues);
}

}  // namespace weir
