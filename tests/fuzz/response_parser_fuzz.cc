// libFuzzer target: what an upstream sends - the status line, then header lines - and the chunked
// coding, on arbitrary bytes fed in pieces whose sizes come from the input, so resumption at any
// byte is exercised too. Built by `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "http/parse.h"
#include "pieces.h"

using namespace weir;
using namespace weir::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Pieces in(data, size);
  Buffer b = in.start();

  StatusLine sl;
  ParseResult r;
  for (;;) {
    r = parse_status_line(sl, b);
    if (r != ParseResult::Again || !in.more(b)) break;
  }
  if (r == ParseResult::Ok) {
    // A status is three digits, and the status text lies inside the input.
    if (sl.code < 0 || sl.code > 999) __builtin_trap();
    if (sl.start < in.bytes.data() || sl.end > b.end || sl.end < sl.start) __builtin_trap();
    in.header_lines(b, true);
  }

  // The same bytes as a chunked body (an upstream's, or a request's).
  Buffer c = in.start();
  ChunkedState cs;
  // What a reader may ask the socket for (cs.length) must never reach past the end of a valid body:
  // that would swallow the next pipelined request. Offsets from the start: with no bytes at all the
  // buffer's pointers are null, and null plus a length is undefined.
  off_t reach = 0;
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
      reach = std::max<off_t>(reach, (c.pos - c.start) + cs.length);
      if (in.more(c)) continue;
    }
    if (cr == ChunkedResult::Done && reach > c.pos - c.start) __builtin_trap();
    break;
  }

  return 0;
}
