// What the fuzz targets feed their parsers: the input after its first byte, revealed step by step
// (1..16 bytes, from the first byte) as reads would deliver it, so resumption at any byte is
// fuzzed.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "http/parse.h"

namespace weir {

struct Pieces {
  std::vector<char> bytes;
  size_t step;

  Pieces(const uint8_t* data, size_t size)
      : bytes(data + 1, data + size), step(static_cast<size_t>(data[0] % 16) + 1) {}

  // A buffer over the bytes with only the first step of them arrived.
  Buffer start() {
    Buffer b;
    b.start = b.pos = bytes.data();
    b.end = bytes.data() + bytes.size();
    b.last = b.start + std::min(step, bytes.size());
    return b;
  }
  // The next step arrives; false when everything has.
  bool more(Buffer& b) const {
    if (b.last == b.end) return false;
    b.last = std::min(b.end, b.last + step);
    return true;
  }

  // Header lines from b until the header ends or the input does; each line's name and value must
  // lie in order.
  void header_lines(Buffer& b, bool underscores) const {
    http::HeaderLineState hl;
    for (int n = 0; n < 1000; n++) {
      http::ParseResult h = http::parse_header_line(hl, b, underscores);
      if (h == http::ParseResult::Ok) {
        if (hl.name_end < hl.name_start || hl.value_end < hl.value_start) __builtin_trap();
        continue;
      }
      if (h == http::ParseResult::Again && more(b)) continue;
      break;
    }
  }
};

}  // namespace weir
