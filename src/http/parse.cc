#include "http/parse.h"

#include <algorithm>
#include <bit>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/str.h"

namespace weir::http {

namespace {

// Bytes that need no attention inside a URI path: everything but controls, space, '#', '%', '+',
// '.',
// '/', '?' and DEL.
struct UsualTable {
  bool v[256];
  constexpr UsualTable() : v() {
    for (int c = 0x21; c < 0x7f; c++) v[c] = true;
    for (int c = 0x80; c < 0x100; c++) v[c] = true;
    for (unsigned char c : {'#', '%', '+', '.', '/', '?'}) v[c] = false;
  }
};
constexpr UsualTable kUsual;
inline bool usual(unsigned char c) {
  return kUsual.v[c];
}

// Header-name bytes folded to lower case; 0 for bytes that are not token characters nginx accepts.
struct LowcaseTable {
  char v[256];
  constexpr LowcaseTable() : v() {
    v[static_cast<int>('-')] = '-';
    for (int c = '0'; c <= '9'; c++) v[c] = static_cast<char>(c);
    for (int c = 'a'; c <= 'z'; c++) v[c] = static_cast<char>(c);
    for (int c = 'A'; c <= 'Z'; c++) v[c] = static_cast<char>(c | 0x20);
  }
};
constexpr LowcaseTable kLowcase;

// Header-value bytes that do not end it: all but CR, LF and NUL.
struct PlainValueTable {
  bool v[256];
  constexpr PlainValueTable() : v() {
    for (int c = 0; c < 256; c++) v[c] = c != '\r' && c != '\n' && c != 0;
  }
};
constexpr PlainValueTable kPlainValue;

// The bytes of w that may end a header value, flagged in their top bits: those below 0x0e (CR, LF
// and NUL are; HT and a few controls are too, and the caller steps past them). The lowest flag is
// exact: a byte below 0x0e borrows into its own top bit, which ~w keeps only for bytes below 0x80;
// a borrow can flag a byte above it, never one below.
inline uint64_t value_end_candidates(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  return (w - kOnes * 0x0e) & ~w & (kOnes * 0x80);
}

// The offset in memory of the lowest-addressed byte flagged in m.
inline int first_flagged_byte(uint64_t m) {
  if constexpr (std::endian::native == std::endian::little) return std::countr_zero(m) >> 3;
  return std::countl_zero(m) >> 3;
}

// How many of the 16 bytes at p are header-name bytes nginx folds ([A-Za-z0-9-]), with the
// lower-case form of all 16 written to out.
inline int lowercase_name_bytes(const char* p, char* out) {
#if defined(__SSE2__)
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  // Signed compares: bytes from 0x80 are negative and fall outside every range.
  auto between = [](__m128i x, char lo, char hi) {
    return _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(static_cast<char>(lo - 1))),
                         _mm_cmplt_epi8(x, _mm_set1_epi8(static_cast<char>(hi + 1))));
  };
  __m128i alpha = between(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 'z');
  __m128i digit = between(v, '0', '9');
  __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
  __m128i name = _mm_or_si128(alpha, _mm_or_si128(digit, dash));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm_or_si128(v, _mm_and_si128(alpha, _mm_set1_epi8(0x20))));
  return std::countr_one(static_cast<unsigned>(_mm_movemask_epi8(name)));
#else
  int n = 0;
  while (n < 16 && kLowcase.v[static_cast<unsigned char>(p[n])] != 0) {
    out[n] = kLowcase.v[static_cast<unsigned char>(p[n])];
    n++;
  }
  return n;
#endif
}

bool is_upper_method_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}

uint32_t method_of(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return kGet;
      if (m == "PUT") return kPut;
      break;
    case 4:
      if (m == "POST") return kPost;
      if (m == "HEAD") return kHead;
      if (m == "COPY") return kCopy;
      if (m == "MOVE") return kMove;
      if (m == "LOCK") return kLock;
      break;
    case 5:
      if (m == "MKCOL") return kMkcol;
      if (m == "PATCH") return kPatch;
      if (m == "TRACE") return kTrace;
      break;
    case 6:
      if (m == "DELETE") return kDelete;
      if (m == "UNLOCK") return kUnlock;
      break;
    case 7:
      if (m == "OPTIONS") return kOptions;
      if (m == "CONNECT") return kConnect;
      break;
    case 8:
      if (m == "PROPFIND") return kPropfind;
      break;
    case 9:
      if (m == "PROPPATCH") return kProppatch;
      break;
  }
  return kUnknown;
}

enum RlState {
  rl_start = 0,
  rl_method,
  rl_spaces_before_uri,
  rl_schema,
  rl_schema_slash,
  rl_schema_slash_slash,
  rl_host_start,
  rl_host,
  rl_host_end,
  rl_host_ip_literal,
  rl_port,
  rl_after_slash_in_uri,
  rl_check_uri,
  rl_uri,
  rl_http_09,
  rl_http_H,
  rl_http_HT,
  rl_http_HTT,
  rl_http_HTTP,
  rl_first_major_digit,
  rl_major_digit,
  rl_first_minor_digit,
  rl_minor_digit,
  rl_spaces_after_digit,
  rl_almost_done,
};

}  // namespace

void RequestLineState::relocate(ptrdiff_t d) {
  for (char** p :
       {&request_start, &request_end, &method_end, &uri_start, &uri_end, &uri_ext, &args_start,
        &schema_start, &schema_end, &host_start, &host_end, &protocol_start}) {
    if (*p != nullptr) *p += d;
  }
}

void HeaderLineState::relocate(ptrdiff_t d) {
  for (char** p : {&name_start, &name_end, &value_start, &value_end}) {
    if (*p != nullptr) *p += d;
  }
}

ParseResult parse_request_line(RequestLineState& r, Buffer& b) {
  int state = r.state;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case rl_start:
        // Any number of empty lines before a request line are skipped, as nginx does (RFC 9112 2.2:
        // at least one); client_header_timeout bounds a client that sends nothing else.
        if (ch == '\r' || ch == '\n') break;
        r.request_start = p;
        if (!is_upper_method_char(ch)) return ParseResult::InvalidMethod;
        state = rl_method;
        break;

      case rl_method:
        if (ch == ' ') {
          r.method_end = p - 1;
          r.method = method_of(std::string_view(r.request_start, p - r.request_start));
          state = rl_spaces_before_uri;
          break;
        }
        if (!is_upper_method_char(ch)) return ParseResult::InvalidMethod;
        break;

      case rl_spaces_before_uri:
        if (ch == '/') {
          r.uri_start = p;
          state = rl_after_slash_in_uri;
          break;
        }
        if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') {
          r.schema_start = p;
          state = rl_schema;
          break;
        }
        if (ch == ' ') break;
        return ParseResult::InvalidRequest;

      case rl_schema:
        if (((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
            ch == '-' || ch == '.') {
          break;
        }
        if (ch == ':') {
          r.schema_end = p;
          state = rl_schema_slash;
          break;
        }
        return ParseResult::InvalidRequest;

      case rl_schema_slash:
        if (ch != '/') return ParseResult::InvalidRequest;
        state = rl_schema_slash_slash;
        break;

      case rl_schema_slash_slash:
        if (ch != '/') return ParseResult::InvalidRequest;
        state = rl_host_start;
        break;

      case rl_host_start:
        r.host_start = p;
        if (ch == '[') {
          state = rl_host_ip_literal;
          break;
        }
        state = rl_host;
        [[fallthrough]];

      case rl_host:
        if (((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
            ch == '-') {
          break;
        }
        [[fallthrough]];

      case rl_host_end:
        r.host_end = p;
        switch (ch) {
          case ':':
            state = rl_port;
            break;
          case '/':
            r.uri_start = p;
            state = rl_after_slash_in_uri;
            break;
          case '?':
            r.uri_start = p;
            r.args_start = p + 1;
            r.empty_path_in_uri = true;
            state = rl_uri;
            break;
          case ' ':
            // "http://host HTTP/1.1": the URI is "/", borrowed from the schema's "//".
            r.uri_start = r.schema_end + 1;
            r.uri_end = r.schema_end + 2;
            state = rl_http_09;
            break;
          default:
            return ParseResult::InvalidRequest;
        }
        break;

      case rl_host_ip_literal:
        if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')) break;
        switch (ch) {
          case ':':
          case '-':
          case '.':
          case '_':
          case '~':
          case '!':
          case '$':
          case '&':
          case '\'':
          case '(':
          case ')':
          case '*':
          case '+':
          case ',':
          case ';':
          case '=':
            break;
          case ']':
            state = rl_host_end;
            break;
          default:
            return ParseResult::InvalidRequest;
        }
        break;

      case rl_port:
        if (ch >= '0' && ch <= '9') break;
        switch (ch) {
          case '/':
            r.uri_start = p;
            state = rl_after_slash_in_uri;
            break;
          case '?':
            r.uri_start = p;
            r.args_start = p + 1;
            r.empty_path_in_uri = true;
            state = rl_uri;
            break;
          case ' ':
            r.uri_start = r.schema_end + 1;
            r.uri_end = r.schema_end + 2;
            state = rl_http_09;
            break;
          default:
            return ParseResult::InvalidRequest;
        }
        break;

      case rl_after_slash_in_uri:
        if (usual(ch)) {
          state = rl_check_uri;
          break;
        }
        switch (ch) {
          case ' ':
            r.uri_end = p;
            state = rl_http_09;
            break;
          case '\r':
            r.uri_end = p;
            r.http_minor = 9;
            state = rl_almost_done;
            break;
          case '\n':
            r.uri_end = p;
            r.http_minor = 9;
            goto done;
          case '.':
          case '/':
          case '#':
            r.complex_uri = true;
            state = rl_uri;
            break;
          case '%':
            r.quoted_uri = true;
            state = rl_uri;
            break;
          case '?':
            r.args_start = p + 1;
            state = rl_uri;
            break;
          case '+':
            r.plus_in_uri = true;
            break;
          default:
            if (ch < 0x20 || ch == 0x7f) return ParseResult::InvalidRequest;
            state = rl_check_uri;
            break;
        }
        break;

      case rl_check_uri:
        if (usual(ch)) {
          // The run of plain bytes in a path segment, without a turn of the state switch each.
          while (p + 1 < b.last && usual(static_cast<unsigned char>(p[1]))) p++;
          break;
        }
        switch (ch) {
          case '/':
            r.uri_ext = nullptr;
            state = rl_after_slash_in_uri;
            break;
          case '.':
            r.uri_ext = p + 1;
            break;
          case ' ':
            r.uri_end = p;
            state = rl_http_09;
            break;
          case '\r':
            r.uri_end = p;
            r.http_minor = 9;
            state = rl_almost_done;
            break;
          case '\n':
            r.uri_end = p;
            r.http_minor = 9;
            goto done;
          case '%':
            r.quoted_uri = true;
            state = rl_uri;
            break;
          case '?':
            r.args_start = p + 1;
            state = rl_uri;
            break;
          case '#':
            r.complex_uri = true;
            state = rl_uri;
            break;
          case '+':
            r.plus_in_uri = true;
            break;
          default:
            if (ch < 0x20 || ch == 0x7f) return ParseResult::InvalidRequest;
            break;
        }
        break;

      case rl_uri:
        if (usual(ch)) break;
        switch (ch) {
          case ' ':
            r.uri_end = p;
            state = rl_http_09;
            break;
          case '\r':
            r.uri_end = p;
            r.http_minor = 9;
            state = rl_almost_done;
            break;
          case '\n':
            r.uri_end = p;
            r.http_minor = 9;
            goto done;
          case '#':
            r.complex_uri = true;
            break;
          default:
            if (ch < 0x20 || ch == 0x7f) return ParseResult::InvalidRequest;
            break;
        }
        break;

      case rl_http_09:
        switch (ch) {
          case ' ':
            break;
          case '\r':
            r.http_minor = 9;
            state = rl_almost_done;
            break;
          case '\n':
            r.http_minor = 9;
            goto done;
          case 'H':
            r.protocol_start = p;
            // "HTTP/1.1\r\n" or "HTTP/1.0\r\n" whole, as nearly every client sends it: the
            // states below, byte by byte, for the rest.
            if (b.last - p >= 10 && p[8] == '\r' && p[9] == '\n' &&
                (str_detail::load_le(p, 8) | (uint64_t{1} << 56)) ==
                    str_detail::load_le("HTTP/1.1", 8)) {
              r.http_major = 1;
              r.http_minor = p[7] - '0';
              r.request_end = p + 8;
              p += 9;
              goto done;
            }
            state = rl_http_H;
            break;
          default:
            return ParseResult::InvalidRequest;
        }
        break;

      case rl_http_H:
        if (ch != 'T') return ParseResult::InvalidRequest;
        state = rl_http_HT;
        break;
      case rl_http_HT:
        if (ch != 'T') return ParseResult::InvalidRequest;
        state = rl_http_HTT;
        break;
      case rl_http_HTT:
        if (ch != 'P') return ParseResult::InvalidRequest;
        state = rl_http_HTTP;
        break;
      case rl_http_HTTP:
        if (ch != '/') return ParseResult::InvalidRequest;
        state = rl_first_major_digit;
        break;

      case rl_first_major_digit:
        if (ch < '1' || ch > '9') return ParseResult::InvalidRequest;
        r.http_major = ch - '0';
        if (r.http_major > 1) return ParseResult::InvalidVersion;
        state = rl_major_digit;
        break;

      case rl_major_digit:
        if (ch == '.') {
          state = rl_first_minor_digit;
          break;
        }
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        r.http_major = r.http_major * 10 + (ch - '0');
        if (r.http_major > 1) return ParseResult::InvalidVersion;
        break;

      case rl_first_minor_digit:
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        r.http_minor = ch - '0';
        state = rl_minor_digit;
        break;

      case rl_minor_digit:
        if (ch == '\r') {
          state = rl_almost_done;
          break;
        }
        if (ch == '\n') goto done;
        if (ch == ' ') {
          state = rl_spaces_after_digit;
          break;
        }
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        if (r.http_minor > 99) return ParseResult::InvalidRequest;
        r.http_minor = r.http_minor * 10 + (ch - '0');
        break;

      case rl_spaces_after_digit:
        switch (ch) {
          case ' ':
            break;
          case '\r':
            state = rl_almost_done;
            break;
          case '\n':
            goto done;
          default:
            return ParseResult::InvalidRequest;
        }
        break;

      case rl_almost_done:
        r.request_end = p - 1;
        if (ch == '\n') goto done;
        return ParseResult::InvalidRequest;
    }
  }
  b.pos = p;
  r.state = state;
  return ParseResult::Again;

done:
  b.pos = p + 1;
  if (r.request_end == nullptr) r.request_end = p;
  r.state = rl_start;
  if (r.http_major == 0 && r.http_minor == 9 && r.method != kGet)
    return ParseResult::Invalid09Method;
  return ParseResult::Ok;
}

namespace {
enum HlState {
  hl_start = 0,
  hl_name,
  hl_space_before_value,
  hl_value,
  hl_almost_done,
  hl_header_almost_done,
};
}  // namespace

ParseResult parse_header_line(HeaderLineState& r, Buffer& b, bool allow_underscores) {
  int state = r.state;
  int i = r.lowcase_index;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case hl_start:
        r.name_start = p;
        r.invalid = false;
        i = 0;
        if (kLowcase.v[ch] != 0) {
          // The name's first byte is the name loop's.
          state = hl_name;
          goto name;
        }
        if (ch == '\r') {
          r.value_end = p;
          if (b.last - p >= 2 && p[1] == '\n') {
            p++;
            goto header_done;
          }
          state = hl_header_almost_done;
          break;
        }
        if (ch == '\n') {
          r.value_end = p;
          goto header_done;
        }
        state = hl_name;
        if (ch == '_') {
          if (allow_underscores) {
            r.lowcase[i++] = '_';
          } else {
            r.invalid = true;
          }
          break;
        }
        if (ch <= 0x20 || ch == 0x7f || ch == ':') {
          r.value_end = p;
          return ParseResult::InvalidHeader;
        }
        r.invalid = true;
        break;

      case hl_name:
      name:
        // The name's token bytes sixteen at a time while the lower-case copy has room, then in a
        // tight loop, not a pass through the switch each.
        while (b.last - p >= 16 && i <= kLowcaseHeaderLen - 16) {
          int n = lowercase_name_bytes(p, r.lowcase + i);
          i = (i + n) & (kLowcaseHeaderLen - 1);
          p += n;
          if (n < 16) break;
        }
        if (p == b.last) goto again;
        ch = static_cast<unsigned char>(*p);
        for (char c; (c = kLowcase.v[ch]) != 0;) {
          r.lowcase[i++] = c;
          i &= kLowcaseHeaderLen - 1;
          if (++p == b.last) goto again;
          ch = static_cast<unsigned char>(*p);
        }
        if (ch == '_') {
          if (allow_underscores) {
            r.lowcase[i++] = '_';
            i &= kLowcaseHeaderLen - 1;
          } else {
            r.invalid = true;
          }
          break;
        }
        if (ch == ':') {
          r.name_end = p;
          state = hl_space_before_value;
          if (++p == b.last) goto again;
          ch = static_cast<unsigned char>(*p);
          goto space;
        }
        if (ch <= 0x20 || ch == 0x7f) {
          r.value_end = p;
          return ParseResult::InvalidHeader;
        }
        r.invalid = true;
        break;

      case hl_space_before_value:
      space:
        // Spaces only, as nginx 1.22: a tab is the value's.
        while (ch == ' ') {
          if (++p == b.last) goto again;
          ch = static_cast<unsigned char>(*p);
        }
        switch (ch) {
          case '\r':
            r.value_start = r.value_end = p;
            state = hl_almost_done;
            break;
          case '\n':
            r.value_start = r.value_end = p;
            goto done;
          case '\0':
            r.value_end = p;
            return ParseResult::InvalidHeader;
          default:
            r.value_start = p;
            state = hl_value;
            goto value;
        }
        break;

      case hl_value:
      value : {
        // To the byte that ends the value, eight at a time: the first byte below 0x0e of a word
        // is found at once; one that does not end the value (a tab) is stepped past.
        for (;;) {
          if (b.last - p >= 8) {
            uint64_t w;
            std::memcpy(&w, p, 8);
            uint64_t m = value_end_candidates(w);
            if (m == 0) {
              p += 8;
              continue;
            }
            p += first_flagged_byte(m);
          } else if (p == b.last) {
            goto again;
          }
          ch = static_cast<unsigned char>(*p);
          if (!kPlainValue.v[ch]) break;
          p++;
        }
        char* end = p;
        while (end[-1] == ' ') end--;  // value_start is not one
        r.value_end = end;
        if (ch == '\r') {
          if (b.last - p >= 2 && p[1] == '\n') {
            p++;
            goto done;
          }
          state = hl_almost_done;
          break;
        }
        if (ch == '\n') goto done;
        r.value_end = p;  // NUL
        return ParseResult::InvalidHeader;
      }

      case hl_almost_done:
        if (ch == '\n') goto done;
        if (ch == '\r') break;
        return ParseResult::InvalidHeader;

      case hl_header_almost_done:
        if (ch == '\n') goto header_done;
        return ParseResult::InvalidHeader;
    }
  }
again:
  b.pos = p;
  r.state = state;
  r.lowcase_index = i;
  return ParseResult::Again;

done:
  b.pos = p + 1;
  r.state = hl_start;
  r.lowcase_index = i;
  return ParseResult::Ok;

header_done:
  b.pos = p + 1;
  r.state = hl_start;
  return ParseResult::HeaderDone;
}

namespace {
enum CuState { cu_usual = 0, cu_slash, cu_dot, cu_dot_dot, cu_quoted, cu_quoted_second };
}

ParseResult parse_complex_uri(std::string_view raw, bool empty_path, bool merge_slashes, char* out,
                              ComplexUri& res) {
  char* const start = out;
  char* u = out;
  char* ext = nullptr;
  res.args = {};
  res.args_found = false;
  res.plus_in_uri = false;
  int state = cu_usual;
  int quoted_state = cu_usual;
  unsigned char decoded = 0;
  if (empty_path) *u++ = '/';

  // Climbing: drop the last path segment written ("/a/b/.." -> "/a/"); an error above the root.
  auto climb = [&]() -> bool {
    u -= 4;  // back over "/..", to the char before the segment's slash
    for (;;) {
      if (u < start) return false;
      if (*u == '/') {
        u++;
        return true;
      }
      u--;
    }
  };

  size_t i = 0;
  const size_t n = raw.size();
  // An extra virtual terminator lets the last character be processed like nginx's "always a LF
  // after".
  auto next = [&]() -> int { return i < n ? static_cast<unsigned char>(raw[i++]) : (i++, -1); };
  int ch = next();
  while (ch >= 0) {
    switch (state) {
      case cu_usual:
        if (usual(static_cast<unsigned char>(ch))) {
          *u++ = static_cast<char>(ch);
          ch = next();
          break;
        }
        switch (ch) {
          case '/':
            ext = nullptr;
            state = cu_slash;
            *u++ = '/';
            break;
          case '%':
            quoted_state = state;
            state = cu_quoted;
            break;
          case '?':
            res.args = raw.substr(i);
            res.args_found = true;
            goto args;
          case '#':
            goto done;
          case '.':
            ext = u + 1;
            *u++ = '.';
            break;
          case '+':
            res.plus_in_uri = true;
            [[fallthrough]];
          default:
            *u++ = static_cast<char>(ch);
            break;
        }
        ch = next();
        break;

      case cu_slash:
        if (usual(static_cast<unsigned char>(ch))) {
          state = cu_usual;
          *u++ = static_cast<char>(ch);
          ch = next();
          break;
        }
        switch (ch) {
          case '/':
            if (!merge_slashes) *u++ = '/';
            break;
          case '.':
            state = cu_dot;
            *u++ = '.';
            break;
          case '%':
            quoted_state = state;
            state = cu_quoted;
            break;
          case '?':
            res.args = raw.substr(i);
            res.args_found = true;
            goto args;
          case '#':
            goto done;
          case '+':
            res.plus_in_uri = true;
            [[fallthrough]];
          default:
            state = cu_usual;
            *u++ = static_cast<char>(ch);
            break;
        }
        ch = next();
        break;

      case cu_dot:
        if (usual(static_cast<unsigned char>(ch))) {
          state = cu_usual;
          *u++ = static_cast<char>(ch);
          ch = next();
          break;
        }
        switch (ch) {
          case '/':
            state = cu_slash;
            u--;
            break;
          case '.':
            state = cu_dot_dot;
            *u++ = '.';
            break;
          case '%':
            quoted_state = state;
            state = cu_quoted;
            break;
          case '?':
            u--;
            res.args = raw.substr(i);
            res.args_found = true;
            goto args;
          case '#':
            u--;
            goto done;
          case '+':
            res.plus_in_uri = true;
            [[fallthrough]];
          default:
            state = cu_usual;
            *u++ = static_cast<char>(ch);
            break;
        }
        ch = next();
        break;

      case cu_dot_dot:
        if (usual(static_cast<unsigned char>(ch))) {
          state = cu_usual;
          *u++ = static_cast<char>(ch);
          ch = next();
          break;
        }
        switch (ch) {
          case '/':
          case '?':
          case '#':
            if (!climb()) return ParseResult::InvalidRequest;
            if (ch == '?') {
              res.args = raw.substr(i);
              res.args_found = true;
              goto args;
            }
            if (ch == '#') goto done;
            state = cu_slash;
            break;
          case '%':
            quoted_state = state;
            state = cu_quoted;
            break;
          case '+':
            res.plus_in_uri = true;
            [[fallthrough]];
          default:
            state = cu_usual;
            *u++ = static_cast<char>(ch);
            break;
        }
        ch = next();
        break;

      case cu_quoted: {
        int v = hex_value(static_cast<char>(ch));
        if (v < 0) return ParseResult::InvalidRequest;
        decoded = static_cast<unsigned char>(v);
        state = cu_quoted_second;
        ch = next();
        break;
      }

      case cu_quoted_second: {
        int v = hex_value(static_cast<char>(ch));
        if (v < 0) return ParseResult::InvalidRequest;
        bool letter = !(ch >= '0' && ch <= '9');
        ch = (decoded << 4) + v;
        if (!letter) {
          if (ch == '%' || ch == '#') {
            state = cu_usual;
            *u++ = static_cast<char>(ch);
            ch = next();
            break;
          }
          if (ch == 0) return ParseResult::InvalidRequest;
        } else {
          if (ch == '?') {
            state = cu_usual;
            *u++ = static_cast<char>(ch);
            ch = next();
            break;
          }
          if (ch == '+') res.plus_in_uri = true;
        }
        // The decoded byte is processed as if it had been there literally.
        state = quoted_state;
        break;
      }
    }
  }

  if (state == cu_quoted || state == cu_quoted_second) return ParseResult::InvalidRequest;
  if (state == cu_dot) {
    u--;
  } else if (state == cu_dot_dot) {
    // "/.." at the very end: same as "/../".
    if (!climb()) return ParseResult::InvalidRequest;
  }

done:
  res.uri = std::string_view(start, u - start);
  res.exten = ext != nullptr && ext <= u ? std::string_view(ext, u - ext) : std::string_view();
  return ParseResult::Ok;

args:
  // The args end at a '#'.
  if (size_t hash = res.args.find('#'); hash != std::string_view::npos)
    res.args = res.args.substr(0, hash);
  res.uri = std::string_view(start, u - start);
  res.exten = ext != nullptr && ext <= u ? std::string_view(ext, u - ext) : std::string_view();
  return ParseResult::Ok;
}

std::string_view uri_exten(std::string_view uri) {
  for (size_t i = uri.size(); i-- > 0;) {
    if (uri[i] == '/') return {};
    if (uri[i] == '.') return uri.substr(i + 1);
  }
  return {};
}

}  // namespace weir::http
