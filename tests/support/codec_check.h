// A response's body through one of the codec filters (gzip, brotli, zstd, gunzip) behind a
// recording sink, in pieces with flushes where the caller puts them and the sink refusing more
// (Again) where it says, then decoded with the codec library's own decoder: what arrived must be
// the input, and at every flush all the input so far must already be decodable. The unit tests
// and the fuzz target share it.
#pragma once

#include <string>
#include <vector>

namespace weir::test {

enum class Codec { Gzip, Brotli, Zstd, Gunzip };

struct CodecPiece {
  std::string data;
  bool flush = false;
  bool sink_again = false;  // the sink answers Again to this piece (the client is slow)
};

// "" when the filter did right, else what went wrong. For Gunzip the pieces are split from a gzip
// stream and the check is that the plain text comes out.
std::string check_codec(Codec codec, const std::vector<CodecPiece>& pieces);

}  // namespace weir::test
