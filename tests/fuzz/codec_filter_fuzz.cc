// libFuzzer target: the codec filters (gzip, brotli, zstd, gunzip) fed a body cut where the input
// says, with flushes and a slow client where it says (codec_check.h): the output must decode, with
// each codec's own library, to the input, and at every flush everything so far must decode. For
// gunzip the pieces' text is gzipped first and the stream cut at the same sizes. Built by
// `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codec_check.h"

using namespace weir::test;

namespace {

std::string gzip_of(const std::string& text) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

// The input: a codec byte, then pieces of [flags][size][size bytes of data]; flags bit 0: flush,
// bit 1: the sink answers Again; bits 2..3 make the piece's size 1x, 4x, 16x or 64x (repeating its
// data), so that buffers fill.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto codec = static_cast<Codec>(data[0] % 4);
  std::vector<CodecPiece> pieces;
  std::string all;
  for (size_t i = 1; i + 1 < size && pieces.size() < 64;) {
    uint8_t flags = data[i];
    size_t n = std::min<size_t>(data[i + 1], size - i - 2);
    std::string piece(reinterpret_cast<const char*>(data + i + 2), n);
    i += 2 + n;
    size_t repeat = size_t{1} << (2 * ((flags >> 2) & 3));
    std::string body;
    for (size_t k = 0; k < repeat; k++) body += piece;
    all += body;
    pieces.push_back({body, (flags & 1) != 0, (flags & 2) != 0});
  }
  if (codec == Codec::Gunzip) {
    // The same cuts over the gzip stream of the same text.
    std::string gz = gzip_of(all);
    size_t at = 0;
    for (size_t k = 0; k < pieces.size(); k++) {
      size_t n =
          k + 1 == pieces.size() ? gz.size() - at : std::min(pieces[k].data.size(), gz.size() - at);
      pieces[k].data = gz.substr(at, n);
      at += n;
    }
    if (pieces.empty()) pieces.push_back({gz, false, false});
  }
  std::string err = check_codec(codec, pieces);
  if (!err.empty()) {
    fprintf(stderr, "codec %d: %s\n", static_cast<int>(codec), err.c_str());
    __builtin_trap();
  }
  return 0;
}
