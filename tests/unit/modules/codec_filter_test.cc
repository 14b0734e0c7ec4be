// The codec filters (gzip, brotli, zstd, gunzip) on bodies cut at random places, with random
// flushes and a client that is slow at random moments: what comes out decodes, with each codec's
// own library, to what went in, and everything before a flush is decodable at the flush.
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>

#include "codec_check.h"

namespace weir::test {
namespace {

std::string sample_text(std::mt19937& rng, size_t size) {
  static const char* kWords[] = {"alpha ", "beta ", "gamma ", "weir ", "nginx ", "filter\n"};
  std::string s;
  while (s.size() < size) {
    if (rng() % 7 == 0) {
      s += static_cast<char>(rng() % 256);  // some bytes that do not compress
    } else {
      s += kWords[rng() % 6];
    }
  }
  s.resize(size);
  return s;
}

std::vector<CodecPiece> cut(std::mt19937& rng, const std::string& text, bool flushes) {
  std::vector<CodecPiece> pieces;
  for (size_t at = 0; at < text.size();) {
    size_t n = std::min<size_t>(text.size() - at, 1 + rng() % (rng() % 4 == 0 ? 5000 : 300));
    pieces.push_back({text.substr(at, n), flushes && rng() % 5 == 0, rng() % 3 == 0});
    at += n;
  }
  return pieces;
}

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

class CodecFilter : public ::testing::TestWithParam<Codec> {};

TEST_P(CodecFilter, RandomCutsFlushesAndSlowClients) {
  for (uint32_t seed = 1; seed <= 40; seed++) {
    std::mt19937 rng(seed);
    std::string text = sample_text(rng, 1 + rng() % 60000);
    if (GetParam() == Codec::Gunzip) text = gzip_of(text);
    std::string err = check_codec(GetParam(), cut(rng, text, GetParam() != Codec::Gunzip));
    ASSERT_EQ(err, "") << "seed " << seed;
  }
}

TEST_P(CodecFilter, EmptyBodyAndOneByte) {
  bool gunzip = GetParam() == Codec::Gunzip;
  if (!gunzip) {
    EXPECT_EQ(check_codec(GetParam(), {}), "");
  }
  EXPECT_EQ(check_codec(GetParam(), {{gunzip ? gzip_of("x") : "x", false, false}}), "");
  EXPECT_EQ(check_codec(GetParam(), {{gunzip ? gzip_of("") : "", true, true}}), "");
}

std::string codec_name(const ::testing::TestParamInfo<Codec>& info) {
  const char* names[] = {"gzip", "brotli", "zstd", "gunzip"};
  return names[static_cast<int>(info.param)];
}

INSTANTIATE_TEST_SUITE_P(Codecs, CodecFilter,
                         ::testing::Values(Codec::Gzip, Codec::Brotli, Codec::Zstd, Codec::Gunzip),
                         codec_name);

}  // namespace
}  // namespace weir::test
