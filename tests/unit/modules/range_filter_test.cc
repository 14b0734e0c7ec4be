// The range filter behind recording sinks: one range (206, Content-Range, the slice), a range past
// the end (416), several ranges (multipart/byteranges with each part), If-Range that does not match
// (the whole response), and Accept-Ranges when there is no Range.
#include <gtest/gtest.h>

#include <string>

#include "test_http.h"

namespace weir::test {
namespace {

using http::FilterId;

struct RangeCase {
  TestConf conf{"server { listen 127.0.0.1:1; location / { } }"};
  std::unique_ptr<TestRequest> t;
  RangeCase(const std::string& range, const std::string& if_range = "") {
    EXPECT_TRUE(conf.ok()) << conf.error();
    t = std::make_unique<TestRequest>(conf);
    if (!range.empty()) t->add_header("Range", range);
    if (!if_range.empty()) t->add_header("If-Range", if_range);
    http::Request& r = t->r();
    r.headers_out.status = 200;
    r.headers_out.content_length_n = 10;
    r.headers_out.content_type = "text/plain";
    r.allow_ranges = true;
    reset_recorded();
  }
  http::Request& r() { return t->r(); }
  http::Code header() { return run_header_filter(conf.header_filter(FilterId::RangeHeader), r()); }
  Rc body() {
    return run_body_filter(conf.body_filter(FilterId::RangeBody), r(),
                           t->memory_chain("0123456789", true));
  }
  std::string header_out(const std::string& name) {
    for (http::Header* h : r().headers_out.headers) {
      if (h->hash != 0 && h->key == name) return std::string(h->value);
    }
    return "";
  }
};

TEST(RangeFilter, OneRange) {
  RangeCase c("bytes=2-4");
  ASSERT_EQ(c.header(), Rc::Ok);
  EXPECT_EQ(c.r().headers_out.status, 206);
  EXPECT_EQ(c.r().headers_out.content_length_n, 3);
  EXPECT_EQ(c.header_out("Content-Range"), "bytes 2-4/10");
  ASSERT_EQ(c.body(), Rc::Ok);
  EXPECT_EQ(recorded().data, "234");
  EXPECT_TRUE(recorded().last);
}

TEST(RangeFilter, SuffixAndOpenRanges) {
  RangeCase suffix("bytes=-3");
  ASSERT_EQ(suffix.header(), Rc::Ok);
  ASSERT_EQ(suffix.body(), Rc::Ok);
  EXPECT_EQ(recorded().data, "789");
  RangeCase open("bytes=6-");
  ASSERT_EQ(open.header(), Rc::Ok);
  EXPECT_EQ(open.header_out("Content-Range"), "bytes 6-9/10");
  ASSERT_EQ(open.body(), Rc::Ok);
  EXPECT_EQ(recorded().data, "6789");
}

TEST(RangeFilter, PastTheEndIs416) {
  RangeCase c("bytes=20-");
  http::Code rc = c.header();
  EXPECT_TRUE(rc.is_status());  // send_header answers with it
  EXPECT_EQ(rc.http_status(), 416);
  EXPECT_EQ(c.header_out("Content-Range"), "bytes */10");
  EXPECT_EQ(recorded().header_calls, 0);
}

TEST(RangeFilter, SeveralRangesAreMultipart) {
  RangeCase c("bytes=0-0,-1");
  ASSERT_EQ(c.header(), Rc::Ok);
  EXPECT_EQ(c.r().headers_out.status, 206);
  std::string type(c.r().headers_out.content_type);
  ASSERT_EQ(type.rfind("multipart/byteranges; boundary=", 0), 0u) << type;
  std::string boundary = type.substr(type.find('=') + 1);
  ASSERT_EQ(c.body(), Rc::Ok);
  const std::string& got = recorded().data;
  EXPECT_NE(got.find("--" + boundary +
                     "\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-0/10"
                     "\r\n\r\n0"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find("Content-Range: bytes 9-9/10\r\n\r\n9\r\n--" + boundary + "--\r\n"),
            std::string::npos)
      << got;
  EXPECT_EQ(static_cast<off_t>(got.size()), c.r().headers_out.content_length_n);
}

TEST(RangeFilter, IfRangeThatDoesNotMatchSendsEverything) {
  RangeCase c("bytes=2-4", "\"other\"");
  ASSERT_EQ(c.header(), Rc::Ok);
  EXPECT_EQ(c.r().headers_out.status, 200);
  ASSERT_EQ(c.body(), Rc::Ok);
  EXPECT_EQ(recorded().data, "0123456789");
}

TEST(RangeFilter, NoRangeAdvertisesAcceptRanges) {
  RangeCase c("");
  ASSERT_EQ(c.header(), Rc::Ok);
  EXPECT_EQ(c.r().headers_out.status, 200);
  EXPECT_EQ(c.header_out("Accept-Ranges"), "bytes");
}

}  // namespace
}  // namespace weir::test
