// libFuzzer target: the request line, header and chunked parsers and URI normalisation on arbitrary
// bytes, fed in pieces whose sizes come from the input, so resumption at any byte is exercised too.
// Built by `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "http/parse.h"

using namespace weir;
using namespace weir::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = (data[0] % 16) + 1;
  std::vector<char> buf(data + 1, data + size);
  Buffer b;
  b.start = b.pos = buf.data();
  b.end = buf.data() + buf.size();
  b.last = b.start + std::min(step, buf.size());
  auto more = [&]() {
    if (b.last == b.end) return false;
    b.last = std::min(b.end, b.last + step);
    return true;
  };

  RequestLineState rl;
  ParseResult r;
  for (;;) {
    r = parse_request_line(rl, b);
    if (r != ParseResult::Again || !more()) break;
  }
  if (r == ParseResult::Ok && rl.uri_start != nullptr && rl.uri_end != nullptr &&
      rl.uri_end >= rl.uri_start) {
    std::string_view raw(rl.uri_start, rl.uri_end - rl.uri_start);
    std::vector<char> out(raw.size() + 2);
    ComplexUri cu;
    if (parse_complex_uri(raw, rl.empty_path_in_uri, data[0] & 1, out.data(), cu) ==
        ParseResult::Ok) {
      // The normalised URI is never longer than the raw one (plus a leading slash) and starts with
      // '/'.
      if (cu.uri.size() > raw.size() + 1 || cu.uri.empty() || cu.uri[0] != '/') __builtin_trap();
    }
    HeaderLineState hl;
    for (int n = 0; n < 1000; n++) {
      ParseResult h = parse_header_line(hl, b, data[0] & 2);
      if (h == ParseResult::Ok) {
        if (hl.name_end < hl.name_start || hl.value_end < hl.value_start) __builtin_trap();
        continue;
      }
      if (h == ParseResult::Again && more()) continue;
      break;
    }
  }

  // The same bytes as a chunked body.
  Buffer c;
  c.start = c.pos = buf.data();
  c.end = buf.data() + buf.size();
  c.last = c.start + std::min(step, buf.size());
  ChunkedState cs;
  // What a reader may ask the socket for (cs.length) must never reach past the end of a valid body:
  // that would swallow the next pipelined request.
  const char* reach = c.start;
  for (int n = 0; n < 100000; n++) {
    ChunkedResult cr = parse_chunked(cs, c);
    if (cr == ChunkedResult::Ok) {
      off_t take = std::min<off_t>(cs.size, c.last - c.pos);
      c.pos += take;
      cs.size -= take;
      continue;
    }
    if (cr == ChunkedResult::Again) {
      if (cs.length <= 0) __builtin_trap();
      reach = std::max<const char*>(reach, c.pos + cs.length);
      if (c.last < c.end) {
        c.last = std::min(c.end, c.last + step);
        continue;
      }
    }
    if (cr == ChunkedResult::Done && reach > c.pos) __builtin_trap();
    break;
  }

  char out[1024];
  std::string_view s(buf.data(), std::min<size_t>(buf.size(), 256));
  unescape_uri(out, s, static_cast<Unescape>(data[0] % 3));
  if (escape_uri(nullptr, s, Escape::Uri) <= sizeof out) escape_uri(out, s, Escape::Uri);
  return 0;
}
