// The HTTP/1.x parsers: request line, header lines, URI normalisation (%XX, "//", "/./", "/../")
// (parse.cc, fuzzed by tests/fuzz/request_parser_fuzz.cc); the chunked coding and the status line
// (parse_response.cc, fuzzed by tests/fuzz/response_parser_fuzz.cc). Hand-written state machines
// over a Buffer, resumable at any byte, no regex, no allocation. nginx: src/http/ngx_http_parse.c
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "core/buffer.h"
#include "core/str.h"

namespace weir::http {

// Methods as bits, so that sets of them (limit_except, proxy_cache_methods) are masks.
enum Method : uint32_t {
  kUnknown = 0x1,
  kGet = 0x2,
  kHead = 0x4,
  kPost = 0x8,
  kPut = 0x10,
  kDelete = 0x20,
  kMkcol = 0x40,
  kCopy = 0x80,
  kMove = 0x100,
  kOptions = 0x200,
  kPropfind = 0x400,
  kProppatch = 0x800,
  kLock = 0x1000,
  kUnlock = 0x2000,
  kPatch = 0x4000,
  kTrace = 0x8000,
  kConnect = 0x10000,
};

enum class ParseResult {
  Ok,
  Again,
  HeaderDone,
  InvalidMethod,
  InvalidRequest,
  InvalidVersion,
  Invalid09Method,
  InvalidHeader,
};

// Where the parts of the request line are, as pointers into the header buffer.
struct RequestLineState {
  int state = 0;
  char* request_start = nullptr;
  char* request_end = nullptr;
  char* method_end = nullptr;
  char* uri_start = nullptr;
  char* uri_end = nullptr;
  char* uri_ext = nullptr;
  char* args_start = nullptr;
  char* schema_start = nullptr;
  char* schema_end = nullptr;
  char* host_start = nullptr;
  char* host_end = nullptr;
  char* protocol_start = nullptr;
  int http_major = 0;
  int http_minor = 0;
  uint32_t method = kUnknown;
  bool complex_uri = false;
  bool quoted_uri = false;
  bool plus_in_uri = false;
  bool empty_path_in_uri = false;

  // The buffer was moved by delta bytes (a large header buffer took over): move every pointer with
  // it.
  void relocate(ptrdiff_t delta);
};

constexpr int kLowcaseHeaderLen = 32;

struct HeaderLineState {
  int state = 0;
  char* name_start = nullptr;
  char* name_end = nullptr;
  char* value_start = nullptr;
  char* value_end = nullptr;
  int lowcase_index = 0;
  char lowcase[kLowcaseHeaderLen];
  bool invalid = false;  // has characters ignore_invalid_headers drops

  void relocate(ptrdiff_t delta);
};

ParseResult parse_request_line(RequestLineState& st, Buffer& b);
// allow_underscores: underscores_in_headers on.
ParseResult parse_header_line(HeaderLineState& st, Buffer& b, bool allow_underscores);
// The lower-case name of the header line just parsed (from the parser's own copy when it holds the
// whole name): written to out (key.size() bytes), or made in pool.
inline void header_lowcase_into(const HeaderLineState& st, std::string_view key, char* out) {
  if (static_cast<size_t>(st.lowcase_index) == key.size()) {
    std::memcpy(out, st.lowcase, key.size());
  } else {
    lowercase_into(out, key);
  }
}
inline std::string_view header_lowcase_key(const HeaderLineState& st, std::string_view key,
                                           Pool& pool) {
  char* low = pool.alloc_bytes(key.size());
  header_lowcase_into(st, key, low);
  return {low, key.size()};
}

// Normalises a URI that parse_request_line marked complex or quoted: decodes %XX, merges slashes
// (if asked), resolves "." and ".." (a path that climbs above "/" is an error), stops at "?" (args)
// and "#". out must have room for the URI's length + 1. Returns Ok or InvalidRequest.
struct ComplexUri {
  std::string_view uri;
  std::string_view args;
  std::string_view exten;
  bool args_found = false;
  bool plus_in_uri = false;
};
ParseResult parse_complex_uri(std::string_view raw, bool empty_path, bool merge_slashes, char* out,
                              ComplexUri& result);

// The file extension of a plain URI (after the last "." of its last segment).
std::string_view uri_exten(std::string_view uri);

// The chunked transfer coding, resumable across buffers; every line must end in CRLF.
struct ChunkedState {
  int state = 0;
  off_t size = 0;    // data bytes available at b.pos when Ok is returned
  off_t length = 0;  // the least number of bytes a valid body still holds: never reads past its end
  off_t metadata =
      0;  // chunk-extension and trailer bytes seen so far (bounded by kMaxChunkMetadata)
  // When set (proxy_pass_trailers), the trailer section's lines are copied here as they are read
  // (CRLF included); more than it holds is an error.
  Buffer* trailer = nullptr;
};
// Chunk extensions and trailers of one body together, in bytes: an endless extension is an error,
// not a way to hold a connection with no data.
inline constexpr off_t kMaxChunkMetadata = 16384;

enum class ChunkedResult { Ok, Done, Again, Error };
// Ok: st.size data bytes start at b.pos (the caller consumes them and moves b.pos); Done: the last
// chunk and trailer were read; Again: need more input; Error: malformed (or a chunk size over
// max_chunk).
ChunkedResult parse_chunked(ChunkedState& st, Buffer& b);

// Upstream status line "HTTP/1.1 200 OK".
struct StatusLine {
  int state = 0;
  int http_major = 0;
  int http_minor = 0;
  int code = 0;
  int count = 0;
  char* start = nullptr;
  char* end = nullptr;
};
ParseResult parse_status_line(StatusLine& st, Buffer& b);

}  // namespace weir::http
