// URI and argument escaping and unescaping (%XX), for rewrite, script, special responses, the
// access log and the upstream modules to come. nginx: src/core/ngx_string.c (ngx_escape_uri,
// ngx_unescape_uri)
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace weir {

// Decodes %XX in [src, src+len) into dst; returns the decoded length. nginx: ngx_unescape_uri.
enum class Unescape { Uri, Redirect, Plain };
size_t unescape_uri(char* dst, std::string_view src, Unescape type);

// Escaping for URIs and arguments. Returns the escaped length; when dst is null, only counts.
enum class Escape { Uri, Args, UriComponent, Html, RefreshUri, Memcached, MailAuth };
size_t escape_uri(char* dst, std::string_view src, Escape type);

// Appends s with & < > " as entities. nginx: ngx_escape_html
void append_html_escaped(std::string& out, std::string_view s);

// Writes src for an error log line quoting what a client sent: control characters, '"', '\\' and
// bytes over 0x7e as \xHH (as the access log's default escape), so that the line stays one line.
// dst needs 4 * src.size() bytes; returns the length written.
size_t escape_for_log(char* dst, std::string_view src);

// True for characters that must not appear unescaped in a header value we generate.
bool is_unsafe_header_char(unsigned char c);

}  // namespace weir
