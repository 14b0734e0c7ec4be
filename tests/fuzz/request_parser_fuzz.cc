// libFuzzer target: the request line and header parsers, URI normalisation and escaping on
// arbitrary bytes, fed in pieces whose sizes come from the input, so resumption at any byte is
// exercised too. Built by `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/escape.h"
#include "http/parse.h"
#include "pieces.h"

using namespace weir;
using namespace weir::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Pieces in(data, size);
  Buffer b = in.start();

  RequestLineState rl;
  ParseResult r;
  for (;;) {
    r = parse_request_line(rl, b);
    if (r != ParseResult::Again || !in.more(b)) break;
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
    in.header_lines(b, data[0] & 2);
  }

  char out[1024];
  std::string_view s(in.bytes.data(), std::min<size_t>(in.bytes.size(), 256));
  unescape_uri(out, s, static_cast<Unescape>(data[0] % 3));
  if (escape_uri(nullptr, s, Escape::Uri) <= sizeof out) escape_uri(out, s, Escape::Uri);
  return 0;
}
