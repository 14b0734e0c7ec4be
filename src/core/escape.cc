#include "core/escape.h"

#include <algorithm>
#include <cstdint>

#include "core/str.h"

namespace weir {

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
      set(" \"#%'<>\\^`{|}");
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

size_t escape_for_log(char* dst, std::string_view src) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  char* p = dst;
  for (char ch : src) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = 'x';
      *p++ = kHex[c >> 4];
      *p++ = kHex[c & 0xf];
    } else {
      *p++ = ch;
    }
  }
  return static_cast<size_t>(p - dst);
}

bool is_unsafe_header_char(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

void append_html_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
}

}  // namespace weir
