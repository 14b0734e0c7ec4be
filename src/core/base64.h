// Base64 (RFC 4648, with padding) as nginx writes and reads it: for the userid cookie and the
// Basic credentials of $remote_user, secure_link's hashes. nginx: src/core/ngx_string.c
// (ngx_encode_base64, ngx_decode_base64)
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

namespace weir {

constexpr size_t base64_encoded_length(size_t n) {
  return (n + 2) / 3 * 4;
}
constexpr size_t base64_decoded_length(size_t n) {
  return (n + 3) / 4 * 3;
}

// Writes the encoding of src (with '=' padding) into dst; returns its length.
size_t base64_encode(char* dst, std::span<const unsigned char> src);

// Decodes src up to its first '=' into dst (room for base64_decoded_length bytes); nullopt when a
// character is not in the alphabet or the length cannot be an encoding.
std::optional<size_t> base64_decode(char* dst, std::string_view src);
// The same with the URL alphabet ('-' and '_' for '+' and '/'): secure_link's hashes.
// nginx: ngx_decode_base64url
std::optional<size_t> base64url_decode(char* dst, std::string_view src);

}  // namespace weir
