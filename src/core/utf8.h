// UTF-8 as nginx reads it (ngx_utf8_decode, ngx_utf8_length, ngx_utf8_cpystrn): a lead byte below
// C2 or a continuation byte below 80 is invalid, overlong forms are invalid, surrogates are not
// checked. The charset filter recodes with it and autoindex counts name columns with it, so both
// answer byte for byte as nginx does. (The access log's escape=json validates strictly on purpose.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace weir {

inline constexpr uint32_t kUtf8Incomplete = 0xfffffffe;  // the sequence goes on past the end
inline constexpr uint32_t kUtf8Invalid = 0xffffffff;

// One sequence from [p, end) (p < end, *p >= 0x80): its code point, kUtf8Invalid (the bytes read
// are consumed), or kUtf8Incomplete (nothing consumed). Code points above U+10FFFF come back as
// they are: callers treat them as invalid.
uint32_t utf8_decode(const uint8_t*& p, const uint8_t* end);

// Characters in s; s.size() when it is not valid UTF-8 (nginx then counts bytes).
size_t utf8_length(std::string_view s);

// The first `chars` characters of s, stopping before an invalid one.
std::string_view utf8_prefix(std::string_view s, size_t chars);

}  // namespace weir
