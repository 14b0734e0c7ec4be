#include "http/parse.h"

#include <algorithm>
#include <cstring>

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

inline uint32_t hash_step(uint32_t h, char c) {
  return h * 31 + static_cast<unsigned char>(c);
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
        if (usual(ch)) break;
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
  hl_space_after_value,
  hl_almost_done,
  hl_header_almost_done,
};
}  // namespace

ParseResult parse_header_line(HeaderLineState& r, Buffer& b, bool allow_underscores) {
  int state = r.state;
  uint32_t hash = r.hash;
  int i = r.lowcase_index;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case hl_start:
        r.name_start = p;
        r.invalid = false;
        if (ch == '\r') {
          r.value_end = p;
          state = hl_header_almost_done;
          break;
        }
        if (ch == '\n') {
          r.value_end = p;
          goto header_done;
        }
        state = hl_name;
        if (char c = kLowcase.v[ch]; c != 0) {
          hash = hash_step(0, c);
          r.lowcase[0] = c;
          i = 1;
          break;
        }
        if (ch == '_') {
          if (allow_underscores) {
            hash = hash_step(0, '_');
            r.lowcase[0] = '_';
            i = 1;
          } else {
            hash = 0;
            i = 0;
            r.invalid = true;
          }
          break;
        }
        if (ch <= 0x20 || ch == 0x7f || ch == ':') {
          r.value_end = p;
          return ParseResult::InvalidHeader;
        }
        hash = 0;
        i = 0;
        r.invalid = true;
        break;

      case hl_name:
        if (char c = kLowcase.v[ch]; c != 0) {
          hash = hash_step(hash, c);
          r.lowcase[i++] = c;
          i &= kLowcaseHeaderLen - 1;
          break;
        }
        if (ch == '_') {
          if (allow_underscores) {
            hash = hash_step(hash, '_');
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
          break;
        }
        if (ch <= 0x20 || ch == 0x7f) {
          r.value_end = p;
          return ParseResult::InvalidHeader;
        }
        r.invalid = true;
        break;

      case hl_space_before_value:
        switch (ch) {
          case ' ':
          case '\t':
            break;
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
            break;
        }
        break;

      case hl_value:
        switch (ch) {
          case ' ':
          case '\t':
            r.value_end = p;
            state = hl_space_after_value;
            break;
          case '\r':
            r.value_end = p;
            state = hl_almost_done;
            break;
          case '\n':
            r.value_end = p;
            goto done;
          case '\0':
            r.value_end = p;
            return ParseResult::InvalidHeader;
        }
        break;

      case hl_space_after_value:
        switch (ch) {
          case ' ':
          case '\t':
            break;
          case '\r':
            state = hl_almost_done;
            break;
          case '\n':
            goto done;
          case '\0':
            r.value_end = p;
            return ParseResult::InvalidHeader;
          default:
            state = hl_value;
            break;
        }
        break;

      case hl_almost_done:
        if (ch == '\n') goto done;
        if (ch == '\r') break;
        return ParseResult::InvalidHeader;

      case hl_header_almost_done:
        if (ch == '\n') goto header_done;
        return ParseResult::InvalidHeader;
    }
  }
  b.pos = p;
  r.state = state;
  r.hash = hash;
  r.lowcase_index = i;
  return ParseResult::Again;

done:
  b.pos = p + 1;
  r.state = hl_start;
  r.hash = hash;
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

namespace {
enum ChState {
  ch_chunk_start = 0,
  ch_chunk_size,
  ch_chunk_extension,
  ch_chunk_extension_almost_done,
  ch_chunk_data,
  ch_after_data,
  ch_after_data_almost_done,
  ch_last_chunk_extension,
  ch_last_chunk_extension_almost_done,
  ch_trailer,
  ch_trailer_almost_done,
  ch_trailer_header,
  ch_trailer_header_almost_done,
};
// Larger sizes would overflow off_t on the next hex digit.
constexpr off_t kMaxChunkSize = INT64_MAX / 16 - 1;

// The least number of bytes a valid body still holds in each state, every line ending in CRLF: what
// a reader may ask the socket for without reading into a pipelined request.
off_t least_remaining(int state, off_t size) {
  constexpr off_t kLastChunk = 5;  // "0" CRLF CRLF
  switch (state) {
    case ch_chunk_start:
      return kLastChunk;
    case ch_chunk_size:
      return size == 0 ? 4 : 2 + size + 2 + kLastChunk;  // "0" read: CRLF CRLF
    case ch_chunk_extension:
      return 2 + size + 2 + kLastChunk;
    case ch_chunk_extension_almost_done:
      return 1 + size + 2 + kLastChunk;
    case ch_chunk_data:
      return size + 2 + kLastChunk;
    case ch_after_data:
      return 2 + kLastChunk;
    case ch_after_data_almost_done:
      return 1 + kLastChunk;
    case ch_last_chunk_extension:
      return 4;
    case ch_last_chunk_extension_almost_done:
      return 3;
    case ch_trailer:
      return 2;
    case ch_trailer_almost_done:
      return 1;
    case ch_trailer_header:
      return 4;
    case ch_trailer_header_almost_done:
      return 3;
  }
  return 1;
}
}  // namespace

// Every line of the framing ends in CRLF: a bare LF (which nginx accepts) is an error, as RFC 9112
// allows and as a server behind or in front of a lax parser must, lest the two disagree on where a
// body ends.
ChunkedResult parse_chunked(ChunkedState& ctx, Buffer& b) {
  int state = ctx.state;
  if (state == ch_chunk_data && ctx.size == 0) state = ch_after_data;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case ch_chunk_start: {
        int v = hex_value(static_cast<char>(ch));
        if (v < 0) goto invalid;
        state = ch_chunk_size;
        ctx.size = v;
        break;
      }
      case ch_chunk_size: {
        if (ctx.size > kMaxChunkSize) goto invalid;
        int v = hex_value(static_cast<char>(ch));
        if (v >= 0) {
          ctx.size = ctx.size * 16 + v;
          break;
        }
        bool last = ctx.size == 0;
        switch (ch) {
          case '\r':
            state = last ? ch_last_chunk_extension_almost_done : ch_chunk_extension_almost_done;
            break;
          case ';':
          case ' ':
          case '\t':
            state = last ? ch_last_chunk_extension : ch_chunk_extension;
            break;
          default:
            goto invalid;
        }
        break;
      }
      case ch_chunk_extension:
      case ch_last_chunk_extension:
        if (ch == '\r') {
          state = state == ch_chunk_extension ? ch_chunk_extension_almost_done
                                              : ch_last_chunk_extension_almost_done;
        } else if (ch == '\n' || ++ctx.metadata > kMaxChunkMetadata) {
          goto invalid;
        }
        break;
      case ch_chunk_extension_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_chunk_data;
        break;
      case ch_chunk_data:
        goto data;
      case ch_after_data:
        if (ch != '\r') goto invalid;
        state = ch_after_data_almost_done;
        break;
      case ch_after_data_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_chunk_start;
        break;
      case ch_last_chunk_extension_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_trailer;
        break;
      case ch_trailer:
        if (ch == '\r') {
          state = ch_trailer_almost_done;
        } else if (ch == '\n') {
          goto invalid;
        } else {
          state = ch_trailer_header;
          if (++ctx.metadata > kMaxChunkMetadata) goto invalid;
        }
        break;
      case ch_trailer_almost_done:
        if (ch != '\n') goto invalid;
        goto last;
      case ch_trailer_header:
        if (ch == '\r') {
          state = ch_trailer_header_almost_done;
        } else if (ch == '\n' || ++ctx.metadata > kMaxChunkMetadata) {
          goto invalid;
        }
        break;
      case ch_trailer_header_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_trailer;
        break;
    }
  }

data:
  ctx.state = state;
  b.pos = p;
  if (ctx.size > kMaxChunkSize) goto invalid;
  ctx.length = least_remaining(state, ctx.size);
  return (state == ch_chunk_data && p < b.last) ? ChunkedResult::Ok : ChunkedResult::Again;

last:
  ctx.state = 0;
  ctx.length = 0;
  b.pos = p + 1;
  return ChunkedResult::Done;

invalid:
  return ChunkedResult::Error;
}

namespace {
enum StState {
  st_start = 0,
  st_H,
  st_HT,
  st_HTT,
  st_HTTP,
  st_first_major_digit,
  st_major_digit,
  st_first_minor_digit,
  st_minor_digit,
  st_status,
  st_space_after_status,
  st_status_text,
  st_almost_done,
};
}  // namespace

ParseResult parse_status_line(StatusLine& s, Buffer& b) {
  int state = s.state;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case st_start:
        if (ch != 'H') return ParseResult::InvalidRequest;
        state = st_H;
        break;
      case st_H:
        if (ch != 'T') return ParseResult::InvalidRequest;
        state = st_HT;
        break;
      case st_HT:
        if (ch != 'T') return ParseResult::InvalidRequest;
        state = st_HTT;
        break;
      case st_HTT:
        if (ch != 'P') return ParseResult::InvalidRequest;
        state = st_HTTP;
        break;
      case st_HTTP:
        if (ch != '/') return ParseResult::InvalidRequest;
        state = st_first_major_digit;
        break;
      case st_first_major_digit:
        if (ch < '1' || ch > '9') return ParseResult::InvalidRequest;
        s.http_major = ch - '0';
        state = st_major_digit;
        break;
      case st_major_digit:
        if (ch == '.') {
          state = st_first_minor_digit;
          break;
        }
        if (ch < '0' || ch > '9' || s.http_major > 99) return ParseResult::InvalidRequest;
        s.http_major = s.http_major * 10 + (ch - '0');
        break;
      case st_first_minor_digit:
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        s.http_minor = ch - '0';
        state = st_minor_digit;
        break;
      case st_minor_digit:
        if (ch == ' ') {
          state = st_status;
          break;
        }
        if (ch < '0' || ch > '9' || s.http_minor > 99) return ParseResult::InvalidRequest;
        s.http_minor = s.http_minor * 10 + (ch - '0');
        break;
      case st_status:
        if (ch == ' ') break;
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        s.code = s.code * 10 + (ch - '0');
        if (++s.count == 3) {
          state = st_space_after_status;
          s.start = p - 2;
        }
        break;
      case st_space_after_status:
        switch (ch) {
          case ' ':
          case '.':
            state = st_status_text;
            break;
          case '\r':
            state = st_almost_done;
            break;
          case '\n':
            goto done;
          default:
            return ParseResult::InvalidRequest;
        }
        break;
      case st_status_text:
        if (ch == '\r')
          state = st_almost_done;
        else if (ch == '\n')
          goto done;
        break;
      case st_almost_done:
        s.end = p - 1;
        if (ch == '\n') goto done;
        return ParseResult::InvalidRequest;
    }
  }
  b.pos = p;
  s.state = state;
  return ParseResult::Again;
done:
  b.pos = p + 1;
  if (s.end == nullptr) s.end = p;
  s.state = st_start;
  return ParseResult::Ok;
}

size_t unescape_uri(char* dst, std::string_view src, Unescape type) {
  char* d = dst;
  size_t i = 0;
  auto copy_rest = [&]() {
    std::memcpy(d, src.data() + i, src.size() - i);
    d += src.size() - i;
    i = src.size();
  };
  while (i < src.size()) {
    char ch = src[i];
    if (ch == '?' && type != Unescape::Plain) {
      copy_rest();  // the args stay as they are
      break;
    }
    if (ch == '%' && i + 2 < src.size() && hex_value(src[i + 1]) >= 0 &&
        hex_value(src[i + 2]) >= 0) {
      auto c = static_cast<unsigned char>(hex_value(src[i + 1]) * 16 + hex_value(src[i + 2]));
      if (type == Unescape::Redirect && !(c > '%' && c < 0x7f)) {
        // A redirect keeps bytes that would change the URI's meaning escaped.
        d = std::copy_n(src.data() + i, 3, d);
      } else {
        *d++ = static_cast<char>(c);
      }
      i += 3;
      if (type == Unescape::Uri && c == '?') copy_rest();
      continue;
    }
    *d++ = ch;
    i++;
  }
  return d - dst;
}

namespace {

struct EscapeTable {
  bool v[256];
};

constexpr EscapeTable make_escape(Escape type) {
  EscapeTable t{};
  for (int c = 0; c < 0x20; c++) t.v[c] = true;
  for (int c = 0x7f; c < 0x100; c++) t.v[c] = true;
  auto set = [&](std::string_view chars) {
    for (char c : chars) t.v[static_cast<unsigned char>(c)] = true;
  };
  switch (type) {
    case Escape::Uri:
      set(" \"#%<>?\\^`{|}");
      break;
    case Escape::Args:
      set(" \"#%&+;<>?\\^`{|}");
      break;
    case Escape::UriComponent:
      for (int c = 0x20; c < 0x7f; c++) {
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        t.v[c] = !keep;
      }
      break;
    case Escape::Html:
      set(" #\"%'");
      break;
    case Escape::RefreshUri:
      set(" \"'");
      break;
    case Escape::Memcached:
      for (int c = 0x7f; c < 0x100; c++) t.v[c] = false;
      set(" %");
      break;
    case Escape::MailAuth:
      set(" %");
      break;
  }
  return t;
}

constexpr EscapeTable kEscapes[] = {
    make_escape(Escape::Uri),          make_escape(Escape::Args),
    make_escape(Escape::UriComponent), make_escape(Escape::Html),
    make_escape(Escape::RefreshUri),   make_escape(Escape::Memcached),
    make_escape(Escape::MailAuth)};

}  // namespace

size_t escape_uri(char* dst, std::string_view src, Escape type) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const EscapeTable& t = kEscapes[static_cast<int>(type)];
  if (dst == nullptr) {
    size_t n = src.size();
    for (unsigned char c : src) n += t.v[c] ? 2 : 0;
    return n;
  }
  char* d = dst;
  for (unsigned char c : src) {
    if (t.v[c]) {
      *d++ = '%';
      *d++ = kHex[c >> 4];
      *d++ = kHex[c & 0xf];
    } else {
      *d++ = static_cast<char>(c);
    }
  }
  return d - dst;
}

bool is_unsafe_header_char(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

}  // namespace weir::http
