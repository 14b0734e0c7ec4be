// The response-side parsers (src/http/parse_response.cc): the chunked coding, strict CRLF framing
// and its bounds, the length hint that keeps a reader inside the body, and the status line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/parse.h"

namespace weir::http {
namespace {

struct Chunked {
  std::string data;
  ChunkedResult last;
  bool length_past_end = false;  // st.length once claimed more bytes than were left
};

Chunked dechunk(const std::string& in, size_t step) {
  std::vector<char> storage(in.begin(), in.end());
  Buffer b;
  b.start = b.pos = storage.data();
  b.end = storage.data() + storage.size();
  b.last = b.start + std::min(step, storage.size());
  ChunkedState st;
  Chunked out;
  for (;;) {
    ChunkedResult r = parse_chunked(st, b);
    if (r == ChunkedResult::Ok) {
      size_t n = std::min<size_t>(st.size, b.last - b.pos);
      out.data.append(b.pos, n);
      b.pos += n;
      st.size -= n;
      continue;
    }
    if (r == ChunkedResult::Again && (st.length <= 0 || st.length > b.end - b.pos))
      out.length_past_end = true;
    if (r == ChunkedResult::Again && b.last < b.end) {
      b.last = std::min(b.end, b.last + step);
      continue;
    }
    out.last = r;
    return out;
  }
}

TEST(Chunked, ParsesAtEverySplit) {
  std::string body =
      "5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t step = 1; step <= body.size(); step++) {
    Chunked c = dechunk(body, step);
    ASSERT_EQ(c.last, ChunkedResult::Done) << step;
    ASSERT_EQ(c.data, "helloabcdefghijklmnopqrstuvwxyz") << step;
  }
  EXPECT_EQ(dechunk("zz\r\n", 100).last, ChunkedResult::Error);
  EXPECT_EQ(dechunk("5\r\nhelloX\r\n", 100).last, ChunkedResult::Error);
  EXPECT_EQ(dechunk("ffffffffffffffffff\r\n", 100).last, ChunkedResult::Error);
  EXPECT_EQ(dechunk("5\r\nhel", 100).last, ChunkedResult::Again);
  EXPECT_EQ(dechunk("0000000000000000000000000000003\r\nabc\r\n0\r\n\r\n", 7).data, "abc");
}

TEST(Chunked, EveryLineEndsInCrlf) {
  for (const char* bad :
       {"5\nhello\r\n0\r\n\r\n", "5\r\nhello\n0\r\n\r\n", "5;x\nhello\r\n0\r\n\r\n", "0\n\r\n",
        "0\r\n\n", "0\r\nT: x\n\r\n", "0;e\n\r\n", "5\r\nhello\r\r\n"}) {
    for (size_t step : {1, 2, 100}) EXPECT_EQ(dechunk(bad, step).last, ChunkedResult::Error) << bad;
  }
}

TEST(Chunked, ExtensionsAndTrailersAreBounded) {
  std::string ext = "1;" + std::string(kMaxChunkMetadata + 1, 'e') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(dechunk(ext, 4096).last, ChunkedResult::Error);
  std::string trailer = "0\r\nX: " + std::string(kMaxChunkMetadata, 't') + "\r\n\r\n";
  EXPECT_EQ(dechunk(trailer, 4096).last, ChunkedResult::Error);
  std::string fits = "1;" + std::string(kMaxChunkMetadata / 2, 'e') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(dechunk(fits, 4096).last, ChunkedResult::Done);
}

// st.length is what a reader may ask the socket for: never more than the body still holds, at any
// split, so a pipelined request behind the body is never read into the body's buffer.
TEST(Chunked, LengthNeverReachesPastTheBody) {
  for (const std::string body :
       {"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n",
        "0\r\n\r\n", "00001\r\nx\r\n0;e\r\n\r\n", "3\r\nabc\r\n0\r\nA: 1\r\nB: 2\r\n\r\n"}) {
    for (size_t step = 1; step <= body.size(); step++) {
      Chunked c = dechunk(body, step);
      ASSERT_EQ(c.last, ChunkedResult::Done) << body;
      ASSERT_FALSE(c.length_past_end) << body << " in steps of " << step;
    }
  }
}

TEST(StatusLine, Parses) {
  std::string s = "HTTP/1.1 404 Not Found\r\n";
  std::vector<char> v(s.begin(), s.end());
  Buffer b;
  b.start = b.pos = v.data();
  b.last = b.end = v.data() + v.size();
  StatusLine st;
  ASSERT_EQ(parse_status_line(st, b), ParseResult::Ok);
  EXPECT_EQ(st.code, 404);
  EXPECT_EQ(std::string(st.start, st.end), "404 Not Found");
}

}  // namespace
}  // namespace weir::http
