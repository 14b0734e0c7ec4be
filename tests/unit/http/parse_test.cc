// The request parsers: valid and malformed request lines and headers, every request split at every
// byte, URI normalisation. The chunked parser's tests are in parse_response_test.cc.
#include "http/parse.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace weir::http {
namespace {

struct Parsed {
  std::vector<char> storage;  // the parsed text: the state points into it
  ParseResult line;
  RequestLineState st;
  std::vector<std::pair<std::string, std::string>> headers;
  ParseResult headers_result = ParseResult::Again;
};

// Feeds the request in pieces of `step` bytes (0: all at once), as reads would deliver it.
Parsed parse_request(std::string text, size_t step = 0) {
  Parsed p;
  p.storage.assign(text.begin(), text.end());
  std::vector<char>& storage = p.storage;
  Buffer b;
  b.start = b.pos = storage.data();
  b.end = storage.data() + storage.size();
  size_t avail = step == 0 ? storage.size() : std::min(step, storage.size());
  b.last = b.start + avail;
  auto more = [&]() {
    if (b.last == b.end) return false;
    avail = std::min(storage.size(), avail + (step == 0 ? storage.size() : step));
    b.last = b.start + avail;
    return true;
  };
  for (;;) {
    p.line = parse_request_line(p.st, b);
    if (p.line != ParseResult::Again || !more()) break;
  }
  if (p.line != ParseResult::Ok) return p;
  HeaderLineState hl;
  for (;;) {
    ParseResult r = parse_header_line(hl, b, false);
    if (r == ParseResult::Ok) {
      p.headers.emplace_back(std::string(hl.name_start, hl.name_end),
                             std::string(hl.value_start, hl.value_end));
      continue;
    }
    if (r == ParseResult::Again) {
      if (!more()) {
        p.headers_result = r;
        break;
      }
      continue;
    }
    p.headers_result = r;
    break;
  }
  return p;
}

TEST(RequestLine, Valid) {
  Parsed p = parse_request("GET /a/b.html?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p.line, ParseResult::Ok);
  EXPECT_EQ(p.st.method, kGet);
  EXPECT_EQ(std::string(p.st.uri_start, p.st.uri_end), "/a/b.html?x=1&y");
  EXPECT_EQ(std::string(p.st.args_start, p.st.uri_end), "x=1&y");
  EXPECT_EQ(std::string(p.st.uri_ext, p.st.args_start - 1), "html");
  EXPECT_EQ(p.st.http_major * 1000 + p.st.http_minor, 1001);
  EXPECT_FALSE(p.st.complex_uri);
  EXPECT_EQ(p.headers_result, ParseResult::HeaderDone);
  ASSERT_EQ(p.headers.size(), 1u);
  EXPECT_EQ(p.headers[0], (std::pair<std::string, std::string>{"Host", "h"}));

  p = parse_request("\r\nPROPPATCH http://host:8080/p%20q HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.line, ParseResult::Ok);
  EXPECT_EQ(p.st.method, kProppatch);
  EXPECT_EQ(std::string(p.st.host_start, p.st.host_end), "host");
  EXPECT_TRUE(p.st.quoted_uri);

  // Any number of empty lines before the request line are skipped, as nginx does, at any split.
  for (size_t step : {0, 1, 3}) {
    p = parse_request("\r\n\n\r\n\r\n\n\nGET /e HTTP/1.1\r\n\r\n", step);
    ASSERT_EQ(p.line, ParseResult::Ok) << step;
    EXPECT_EQ(std::string(p.st.request_start, p.st.request_end), "GET /e HTTP/1.1") << step;
  }

  p = parse_request("GET /x/../y HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(p.st.complex_uri);
  p = parse_request("GET /\r\n");
  ASSERT_EQ(p.line, ParseResult::Ok);
  EXPECT_EQ(p.st.http_minor, 9);
  p = parse_request("FOO_BAR / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.line, ParseResult::Ok);
  EXPECT_EQ(p.st.method, kUnknown);
  p = parse_request("GET http://[::1]:80/ HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.line, ParseResult::Ok);
  EXPECT_EQ(std::string(p.st.host_start, p.st.host_end), "[::1]");
}

TEST(RequestLine, Malformed) {
  struct Case {
    const char* text;
    ParseResult want;
  } cases[] = {
      {"get / HTTP/1.1\r\n", ParseResult::InvalidMethod},
      {"G@T / HTTP/1.1\r\n", ParseResult::InvalidMethod},
      {"GET x HTTP/1.1\r\n", ParseResult::InvalidRequest},
      {"GET / HTTP/2.0\r\n", ParseResult::InvalidVersion},
      {"GET / HTTP/1.x\r\n", ParseResult::InvalidRequest},
      {"GET / HTTZ/1.1\r\n", ParseResult::InvalidRequest},
      {"GET /a\x01 HTTP/1.1\r\n", ParseResult::InvalidRequest},
      {"GET /a\x7f HTTP/1.1\r\n", ParseResult::InvalidRequest},
      {"GET / HTTP/1.1\rX", ParseResult::InvalidRequest},
      {"POST /\r\n", ParseResult::Invalid09Method},
      {"GET http://ho_st/ HTTP/1.1\r\n", ParseResult::InvalidRequest},
      {"GET / HTTP/1.1000\r\n", ParseResult::InvalidRequest},
  };
  for (const Case& c : cases) EXPECT_EQ(parse_request(c.text).line, c.want) << c.text;
}

TEST(HeaderLines, ValidAndInvalid) {
  Parsed p = parse_request("GET / HTTP/1.1\r\nA:  b c  \r\nEmpty:\r\nX_U: v\r\nLf-Only: z\n\r\n");
  ASSERT_EQ(p.headers_result, ParseResult::HeaderDone);
  ASSERT_EQ(p.headers.size(), 4u);
  EXPECT_EQ(p.headers[0].second, "b c");
  EXPECT_EQ(p.headers[1].second, "");
  EXPECT_EQ(p.headers[3].second, "z");
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\n: x\r\n\r\n").headers_result,
            ParseResult::InvalidHeader);
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nA b: x\r\n\r\n").headers_result,
            ParseResult::InvalidHeader);
  EXPECT_EQ(parse_request(std::string("GET / HTTP/1.1\r\nA: x\0y\r\n\r\n", 27)).headers_result,
            ParseResult::InvalidHeader);
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nA: x\rB\r\n\r\n").headers_result,
            ParseResult::InvalidHeader);
}

TEST(Parsers, SplitAtEveryByteGivesTheSameResult) {
  const std::string requests[] = {
      "GET /a/b.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nCookie: a=b; "
      "c=d\r\n\r\n",
      "POST http://h:81/%41/./b?q HTTP/1.0\r\nContent-Length: 3\r\nX_Y: z\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\nA: 1\nB: 2\n\n",
      "GET /bad\x01 HTTP/1.1\r\n\r\n",
  };
  for (const std::string& req : requests) {
    Parsed whole = parse_request(req);
    for (size_t step = 1; step < req.size(); step++) {
      Parsed split = parse_request(req, step);
      ASSERT_EQ(split.line, whole.line) << step;
      ASSERT_EQ(split.headers, whole.headers) << step;
      ASSERT_EQ(split.headers_result, whole.headers_result) << step;
      ASSERT_EQ(split.st.method, whole.st.method);
      ASSERT_EQ(split.st.complex_uri, whole.st.complex_uri);
    }
  }
}

std::string normalise(std::string raw, bool merge = true, bool* ok = nullptr,
                      std::string* args = nullptr) {
  std::vector<char> out(raw.size() + 2);
  ComplexUri cu;
  ParseResult r = parse_complex_uri(raw, false, merge, out.data(), cu);
  if (ok) *ok = r == ParseResult::Ok;
  if (args) *args = std::string(cu.args);
  return r == ParseResult::Ok ? std::string(cu.uri) : "<invalid>";
}

TEST(ComplexUri, Normalisation) {
  EXPECT_EQ(normalise("/a/./b/../c"), "/a/c");
  EXPECT_EQ(normalise("//a///b"), "/a/b");
  EXPECT_EQ(normalise("//a///b", false), "//a///b");
  EXPECT_EQ(normalise("/a/b/.."), "/a/");
  EXPECT_EQ(normalise("/a/."), "/a/");
  EXPECT_EQ(normalise("/%61%62"), "/ab");
  EXPECT_EQ(normalise("/a%2F..%2Fb"), "/b");
  EXPECT_EQ(normalise("/a%3Fb"), "/a?b");
  EXPECT_EQ(normalise("/x%25y"), "/x%y");
  EXPECT_EQ(normalise("/.."), "<invalid>");
  EXPECT_EQ(normalise("/a/../.."), "<invalid>");
  EXPECT_EQ(normalise("/%2e%2e/etc"), "<invalid>");
  EXPECT_EQ(normalise("/%00"), "<invalid>");
  EXPECT_EQ(normalise("/%zz"), "<invalid>");
  EXPECT_EQ(normalise("/%4"), "<invalid>");
  std::string args;
  EXPECT_EQ(normalise("/a/../b?c=/../d#frag", true, nullptr, &args), "/b");
  EXPECT_EQ(args, "c=/../d");
  EXPECT_EQ(normalise("/a#frag"), "/a");
}

}  // namespace
}  // namespace weir::http
