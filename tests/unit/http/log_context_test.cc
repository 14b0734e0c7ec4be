// The error-log context of a client connection: client, server, request, host; the subrequest in
// turn; and the upstream part a module adds while an upstream serves the request.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "http/subrequest.h"
#include "test_http.h"

namespace weir::test {
namespace {

std::string context(http::Request& r) {
  char buf[512];
  char* e = http::log_error_handler(r.log(), buf, buf + sizeof buf);
  return std::string(buf, e);
}

TEST(LogContext, NamesClientRequestSubrequestAndUpstream) {
  TestConf conf("server { listen 127.0.0.1:1; server_name example; location / { } }");
  ASSERT_TRUE(conf.ok()) << conf.error();
  TestRequest t(conf);
  http::Request& r = t.r();
  Connection& c = *r.connection;
  c.log->data = &c;  // as init_connection sets it
  t.add_header("Host", "example.org");
  r.request_line = "GET /page HTTP/1.1";
  std::string got = context(r);
  EXPECT_NE(got.find(", server: example, request: \"GET /page HTTP/1.1\", host: \"example.org\""),
            std::string::npos)
      << got;

  http::Request* sr = http::create_subrequest(r, "/include", "", {});
  ASSERT_NE(sr, nullptr);
  sr->log_upstream = [](const http::Request&, char* p, char* end) {
    const char kText[] = ", upstream: \"http://127.0.0.1:9/include\"";
    size_t n = std::min<size_t>(sizeof kText - 1, end - p);
    std::memcpy(p, kText, n);
    return p + n;
  };
  got = context(r);
  EXPECT_NE(got.find("request: \"GET /page HTTP/1.1\", subrequest: \"/include\", upstream: "
                     "\"http://127.0.0.1:9/include\", host: \"example.org\""),
            std::string::npos)
      << got;
}

}  // namespace
}  // namespace weir::test
