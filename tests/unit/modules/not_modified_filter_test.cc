// The not_modified filter behind a recording sink: 304 for If-Modified-Since and If-None-Match
// that match, the response itself when they do not, and 412 for If-Match / If-Unmodified-Since that
// fail (sent to the client by the special-response path).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "core/time_cache.h"
#include "test_http.h"

namespace weir::test {
namespace {

using http::FilterId;

constexpr time_t kModified = 1700000000;

std::string http_date(time_t t) {
  char buf[64];
  char* e = clock::format_http_time(buf, t);
  return std::string(buf, e);
}

struct Conditional {
  TestConf conf{"server { listen 127.0.0.1:1; location / { } }"};
  std::unique_ptr<TestRequest> t;
  explicit Conditional(const std::string& header, const std::string& value) {
    EXPECT_TRUE(conf.ok()) << conf.error();
    t = std::make_unique<TestRequest>(conf);
    t->add_header(header, value);
    http::Request& r = t->r();
    r.headers_out.status = 200;
    r.headers_out.content_length_n = 10;
    r.headers_out.last_modified_time = kModified;
    r.headers_out.etag = http::add_header_out(r, "ETag", "\"abc\"");
    reset_recorded();
  }
  http::Code run() { return run_header_filter(conf.header_filter(FilterId::NotModified), t->r()); }
  int status() { return t->r().headers_out.status; }
};

TEST(NotModifiedFilter, IfModifiedSince) {
  Conditional same("If-Modified-Since", http_date(kModified));
  ASSERT_EQ(same.run(), Rc::Ok);
  EXPECT_EQ(same.status(), 304);
  EXPECT_EQ(same.t->r().headers_out.content_length_n, -1);
  EXPECT_EQ(recorded().header_calls, 1);
  Conditional older("If-Modified-Since", http_date(kModified - 60));
  ASSERT_EQ(older.run(), Rc::Ok);
  EXPECT_EQ(older.status(), 200);
}

TEST(NotModifiedFilter, IfNoneMatch) {
  for (const char* v : {"\"abc\"", "\"x\", \"abc\"", "*", "W/\"abc\""}) {
    Conditional c("If-None-Match", v);
    ASSERT_EQ(c.run(), Rc::Ok);
    EXPECT_EQ(c.status(), 304) << v;
  }
  Conditional other("If-None-Match", "\"other\"");
  ASSERT_EQ(other.run(), Rc::Ok);
  EXPECT_EQ(other.status(), 200);
}

TEST(NotModifiedFilter, FailedPreconditionIs412) {
  for (auto [header, value] : {std::pair<std::string, std::string>{"If-Match", "\"other\""},
                               {"If-Unmodified-Since", http_date(kModified - 60)}}) {
    Conditional c(header, value);
    EXPECT_EQ(c.run(), Rc::Error);  // the 412 replaced the response; the handler stops
    EXPECT_TRUE(c.t->r().filter_finalize);
    EXPECT_EQ(recorded().header_calls, 0);
    char buf[4096];
    ssize_t n = ::read(c.t->peer_fd(), buf, sizeof buf);
    ASSERT_GT(n, 0) << header;
    EXPECT_EQ(
        std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 412 Precondition Failed\r\n", 0),
        0u)
        << header;
  }
  Conditional ok("If-Match", "\"abc\"");
  ASSERT_EQ(ok.run(), Rc::Ok);
  EXPECT_EQ(ok.status(), 200);
}

}  // namespace
}  // namespace weir::test
