// The chunked filter behind a recording sink: which responses it chunks, the size lines and the
// last chunk it writes, and its buffers reused from one call to the next.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "test_http.h"

namespace weir::test {
namespace {

using http::FilterId;

const char* kConf =
    "server { listen 127.0.0.1:1; location / { } location /off/ { chunked_transfer_encoding off; } "
    "}";

// A 200 response of unknown length to GET / over HTTP/1.1, through the chunked header filter.
struct Unknown {
  TestConf conf{kConf};
  std::unique_ptr<TestRequest> t;
  Unknown() {
    EXPECT_TRUE(conf.ok()) << conf.error();
    t = std::make_unique<TestRequest>(conf);
    t->r().headers_out.status = 200;
    t->r().headers_out.content_length_n = -1;
    reset_recorded();
    EXPECT_EQ(run_header_filter(conf.header_filter(FilterId::Chunked), t->r()), Rc::Ok);
  }
};

TEST(ChunkedFilter, ChunksAResponseOfUnknownLength) {
  Unknown u;
  TestConf& conf = u.conf;
  TestRequest& t = *u.t;
  http::Request& r = t.r();
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(recorded().header_calls, 1);
  http::BodyFilterFn body = conf.body_filter(FilterId::Chunked);
  ASSERT_EQ(run_body_filter(body, r, t.memory_chain("hello", false)), Rc::Ok);
  EXPECT_EQ(recorded().data, "5\r\nhello\r\n");
  ASSERT_EQ(run_body_filter(body, r, t.memory_chain(std::string(26, 'x'), true)), Rc::Ok);
  EXPECT_EQ(recorded().data, "5\r\nhello\r\n1a\r\n" + std::string(26, 'x') + "\r\n0\r\n\r\n");
  EXPECT_TRUE(recorded().last);
  EXPECT_EQ(recorded().calls, 2);
}

// The size lines and CRLFs go back to the filter's free list once sent and are used again: a
// buffer that held a CRLF must not lend the constant's memory to a later size line.
TEST(ChunkedFilter, ReusesItsBuffersAcrossManyCalls) {
  Unknown u;
  TestConf& conf = u.conf;
  TestRequest& t = *u.t;
  http::Request& r = t.r();
  http::BodyFilterFn body = conf.body_filter(FilterId::Chunked);
  std::string want;
  for (int i = 1; i <= 20; i++) {
    std::string piece(static_cast<size_t>(i * 7), static_cast<char>('a' + i % 26));
    ASSERT_EQ(run_body_filter(body, r, t.memory_chain(piece, i == 20)), Rc::Ok);
    char size[32];
    snprintf(size, sizeof size, "%x\r\n", i * 7);
    want += size + piece + "\r\n";
  }
  EXPECT_EQ(recorded().data, want + "0\r\n\r\n");
  EXPECT_EQ(recorded().calls, 20);
}

TEST(ChunkedFilter, AnEmptyLastBufferIsJustTheLastChunk) {
  Unknown u;
  TestConf& conf = u.conf;
  TestRequest& t = *u.t;
  http::Request& r = t.r();
  ASSERT_EQ(run_body_filter(conf.body_filter(FilterId::Chunked), r, t.memory_chain("", true)),
            Rc::Ok);
  EXPECT_EQ(recorded().data, "0\r\n\r\n");
}

TEST(ChunkedFilter, LeavesKnownLengthsHttp10AndHeadAlone) {
  TestConf conf(kConf);
  ASSERT_TRUE(conf.ok()) << conf.error();
  struct Case {
    const char* method;
    const char* uri;
    int version;
    off_t length;
    bool keepalive_after;
  } cases[] = {
      {"GET", "/", 1001, 5, true},       // a known length needs no chunks
      {"GET", "/", 1000, -1, false},     // HTTP/1.0: no chunks; the end is the close
      {"HEAD", "/", 1001, -1, true},     // no body at all
      {"GET", "/off/", 1001, -1, false}  // chunked_transfer_encoding off
  };
  for (const Case& c : cases) {
    TestRequest t(conf);
    t.set_request_line(c.method, c.uri, c.version);
    http::Request& r = t.r();
    r.keepalive = true;
    r.headers_out.status = 200;
    r.headers_out.content_length_n = c.length;
    reset_recorded();
    ASSERT_EQ(run_header_filter(conf.header_filter(FilterId::Chunked), r), Rc::Ok);
    EXPECT_FALSE(r.chunked) << c.method << " " << c.uri << " " << c.version;
    EXPECT_EQ(r.keepalive, c.keepalive_after) << c.method << " " << c.uri << " " << c.version;
    ASSERT_EQ(
        run_body_filter(conf.body_filter(FilterId::Chunked), r, t.memory_chain("hello", true)),
        Rc::Ok);
    EXPECT_EQ(recorded().data, "hello");  // passed through untouched
  }
}

}  // namespace
}  // namespace weir::test
