// The request parsers: valid and malformed request lines and headers, every request split at every
// byte, URI normalisation. The chunked parser's tests are in parse_response_test.cc.
#include "http/parse.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/pool.h"
#include "core/str.h"

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

// The header-line grammar spelled out one byte at a time (nginx 1.22's, as weir parses it): what
// each line of text gives, to hold the parser's word-at-a-time paths to it.
struct LineResult {
  ParseResult result;
  std::string name, value, lowcase;
  bool invalid = false;
  bool operator==(const LineResult&) const = default;
};

bool name_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

std::vector<LineResult> reference_lines(std::string_view t, bool underscores) {
  std::vector<LineResult> out;
  size_t p = 0;
  auto at = [&](size_t k) { return static_cast<unsigned char>(t[k]); };
  for (;;) {
    LineResult l{ParseResult::Again, "", "", "", false};
    if (p == t.size()) break;
    size_t start = p;
    if (at(p) == '\r' || at(p) == '\n') {
      if (at(p) == '\r' && p + 1 == t.size()) break;
      l.result =
          at(p) == '\n' || at(p + 1) == '\n' ? ParseResult::HeaderDone : ParseResult::InvalidHeader;
      out.push_back(l);
      break;
    }
    for (; p < t.size(); p++) {
      unsigned char c = at(p);
      if (name_byte(c)) continue;
      if (c == '_') {
        if (!underscores) l.invalid = true;
        continue;
      }
      if (c == ':' && p > start) break;
      if (c <= 0x20 || c == 0x7f || c == ':') {
        l.result = ParseResult::InvalidHeader;
        break;
      }
      l.invalid = true;
    }
    if (l.result != ParseResult::Again || p == t.size()) {
      if (l.result != ParseResult::Again) out.push_back(l);
      break;
    }
    l.name = std::string(t.substr(start, p - start));
    l.lowcase = lowercased(l.name);
    p++;
    while (p < t.size() && at(p) == ' ') p++;
    size_t vstart = p;
    while (p < t.size() && at(p) != '\r' && at(p) != '\n' && at(p) != 0) p++;
    if (p == t.size()) break;
    size_t vend = p;
    while (vend > vstart && t[vend - 1] == ' ') vend--;
    l.value = std::string(t.substr(vstart, vend - vstart));
    if (at(p) == 0) {
      l.result = ParseResult::InvalidHeader;
      out.push_back(l);
      break;
    }
    if (at(p) == '\r') {
      while (p < t.size() && at(p) == '\r') p++;
      if (p == t.size()) break;
      if (at(p) != '\n') {
        l.result = ParseResult::InvalidHeader;
        out.push_back(l);
        break;
      }
    }
    p++;
    l.result = ParseResult::Ok;
    out.push_back(l);
  }
  return out;
}

// The parser's lines for t, fed in random pieces; the bytes not yet "read" hold name bytes, so
// that a look past the data would change the result.
std::vector<LineResult> parsed_lines(const std::string& t, bool underscores, std::mt19937& rng) {
  std::vector<char> storage(t.size() + 64, 'a');
  Buffer b;
  b.start = b.pos = b.last = storage.data();
  b.end = storage.data() + storage.size();
  size_t shown = 0;
  auto more = [&]() {
    if (shown == t.size()) return false;
    size_t n = std::min(t.size() - shown, 1 + rng() % 40);
    std::memcpy(storage.data() + shown, t.data() + shown, n);
    shown += n;
    b.last = storage.data() + shown;
    return true;
  };
  std::vector<LineResult> out;
  HeaderLineState hl;
  Pool pool;
  more();
  for (;;) {
    ParseResult r = parse_header_line(hl, b, underscores);
    if (r == ParseResult::Again) {
      if (!more()) break;
      continue;
    }
    LineResult l{r, "", "", "", false};
    if (r == ParseResult::Ok) {
      std::string_view key(hl.name_start, hl.name_end - hl.name_start);
      l.name = std::string(key);
      l.value = std::string(hl.value_start, hl.value_end);
      l.lowcase = std::string(header_lowcase_key(hl, key, pool));
      l.invalid = hl.invalid;
    } else if (r == ParseResult::InvalidHeader) {
      l.invalid = false;
    }
    out.push_back(l);
    if (r != ParseResult::Ok) break;
  }
  return out;
}

TEST(HeaderLines, MatchTheGrammarWhateverTheBytesAndPieces) {
  std::mt19937 rng(20261207);
  const std::string name_bytes = "abcxyzABCXYZ09-";
  const std::string odd_name = "_.@ \t:\x7f\x80\xff";
  const std::string value_bytes = "abc XYZ09;=,\"/";
  const std::string odd_value = std::string("\t\x01\x0d\x0b\x80\xff\x0a\x00 ", 9);
  auto pick = [&](const std::string& s) { return s[rng() % s.size()]; };
  for (int round = 0; round < 20000; round++) {
    std::string t;
    int lines = 1 + static_cast<int>(rng() % 4);
    for (int n = 0; n < lines; n++) {
      size_t name_len = rng() % 45;
      for (size_t k = 0; k < name_len; k++) t += rng() % 40 ? pick(name_bytes) : pick(odd_name);
      t += rng() % 30 ? ":" : "";
      t += std::string(rng() % 3, ' ');
      size_t value_len = rng() % 50;
      for (size_t k = 0; k < value_len; k++) t += rng() % 30 ? pick(value_bytes) : pick(odd_value);
      t += std::string(rng() % 3, ' ');
      const char* ends[] = {"\r\n", "\n", "\r\r\n", "\rX", "\r"};
      t += ends[rng() % 10 < 7 ? 0 : rng() % 5];
    }
    t += rng() % 4 ? "\r\n" : "";
    bool underscores = rng() % 2;
    std::vector<LineResult> want = reference_lines(t, underscores);
    std::vector<LineResult> got = parsed_lines(t, underscores, rng);
    ASSERT_EQ(got.size(), want.size()) << testing::PrintToString(t);
    for (size_t k = 0; k < got.size(); k++) {
      ASSERT_EQ(got[k].result, want[k].result) << testing::PrintToString(t) << " line " << k;
      if (want[k].result != ParseResult::Ok) continue;
      ASSERT_EQ(got[k], want[k]) << testing::PrintToString(t) << " line " << k;
    }
  }
}

TEST(Parsers, SplitAtEveryByteGivesTheSameResult) {
  const std::string requests[] = {
      "GET /a/b.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nCookie: a=b; "
      "c=d\r\n\r\n",
      "POST http://h:81/%41/./b?q HTTP/1.0\r\nContent-Length: 3\r\nX_Y: z\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\nA: 1\nB: 2\n\n",
      "GET /bad\x01 HTTP/1.1\r\n\r\n",
      // Whole "HTTP/1.x\r\n" endings are taken at once, runs of plain path bytes too: the
      // endings that are not that, byte by byte, must give what the whole ones would.
      "GET /static/app.min.js HTTP/1.0\r\n\r\n",
      "GET /a.b.c/d HTTP/1.1\n\n",
      "GET /x HTTP/1.1 \r\n\r\n",
      "GET /x HTTP/1.10\r\n\r\n",
      "GET /x HTTP/1.3\r\n\r\n",
      "GET /x HTTP/1.1\rZ",
      "GET /x HTTP/1.q\r\n\r\n",
      "GET /x HTTP/2.1\r\n\r\n",
      "GET /x HTTP/11.1\r\n\r\n",
      "GET /x HTTP/1.1\r\n",
      "GET /ab%41cd/ef+gh?i=j HTTP/1.1\r\n\r\n",
  };
  // Where a pointer of the request line points, as an offset (-1: nowhere).
  auto at = [](const Parsed& p, const char* ptr) {
    return ptr == nullptr ? -1 : static_cast<long>(ptr - p.storage.data());
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
      if (whole.line != ParseResult::Ok) continue;
      ASSERT_EQ(split.st.http_major, whole.st.http_major) << req << step;
      ASSERT_EQ(split.st.http_minor, whole.st.http_minor) << req << step;
      ASSERT_EQ(split.st.quoted_uri, whole.st.quoted_uri);
      ASSERT_EQ(split.st.plus_in_uri, whole.st.plus_in_uri);
      for (auto field : {&RequestLineState::uri_start, &RequestLineState::uri_end,
                         &RequestLineState::uri_ext, &RequestLineState::args_start,
                         &RequestLineState::request_end, &RequestLineState::protocol_start}) {
        ASSERT_EQ(at(split, split.st.*field), at(whole, whole.st.*field)) << req << step;
      }
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
