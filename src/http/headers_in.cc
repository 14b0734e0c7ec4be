#include "http/headers_in.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "core/str.h"
#include "http/core_module.h"
#include "http/request.h"

namespace weir::http {

namespace {

// What validate_host must look at in a byte: most bytes of a name need nothing.
enum class HostByte : uint8_t { Plain, Upper, Bad, Special };
constexpr auto kHostBytes = [] {
  std::array<HostByte, 256> t{};
  for (int c = 0; c <= 0x20; c++) t[c] = HostByte::Bad;
  t[0x7f] = t['/'] = HostByte::Bad;
  for (int c = 'A'; c <= 'Z'; c++) t[c] = HostByte::Upper;
  for (unsigned char c : {'.', ':', '[', ']'}) t[c] = HostByte::Special;
  return t;
}();

}  // namespace

bool validate_host(std::string_view& host, Pool& pool) {
  size_t dot_pos = host.size();
  size_t host_len = host.size();
  enum { kUsual, kLiteral, kRest } state = kUsual;
  bool upper = false;
  for (size_t i = 0; i < host.size(); i++) {
    auto ch = static_cast<unsigned char>(host[i]);
    HostByte kind = kHostBytes[ch];
    if (kind == HostByte::Plain) continue;
    if (kind == HostByte::Upper) {
      upper = true;
      continue;
    }
    if (kind == HostByte::Bad) return false;
    switch (ch) {
      case '.':
        if (dot_pos == i - 1) return false;
        dot_pos = i;
        break;
      case ':':
        if (state == kUsual) {
          host_len = i;
          state = kRest;
        }
        break;
      case '[':
        if (i == 0) state = kLiteral;
        break;
      case ']':
        if (state == kLiteral) {
          host_len = i + 1;
          state = kRest;
        }
        break;
      default:
        break;
    }
  }
  if (dot_pos == host_len - 1) host_len--;
  if (host_len == 0) return false;
  host = host.substr(0, host_len);
  if (upper) {
    char* p = pool.alloc_bytes(host.size());
    lowercase_into(p, host);
    host = {p, host.size()};
  }
  return true;
}

Rc set_virtual_server(Request& r, std::string_view host) {
  CoreSrvConf* cscf = find_virtual_server(r, host);
  if (cscf == nullptr) return Rc::Ok;  // the default server stays
  r.srv_conf = cscf->ctx->srv_conf;
  r.loc_conf = cscf->ctx->loc_conf;
  r.connection->log->sink = conf_of<CoreLocConf>(cscf->ctx->loc_conf).error_log;
  return Rc::Ok;
}

namespace {

using HeaderHandler = Rc (*)(Request& r, Header* h, Header** slot);

Rc header_line(Request&, Header* h, Header** slot) {
  if (*slot == nullptr) *slot = h;
  return Rc::Ok;
}

// A header that may appear once came again: 400, logged with both lines ("header line", "host
// header").
Rc reject_duplicate(Request& r, const char* what, const Header& h, const Header& previous) {
  log_error(LogLevel::Info, r.log(), 0,
            "client sent duplicate %s: \"%.*s: %.*s\", previous value: \"%.*s: %.*s\"", what,
            static_cast<int>(h.key.size()), h.key.data(), static_cast<int>(h.value.size()),
            h.value.data(), static_cast<int>(previous.key.size()), previous.key.data(),
            static_cast<int>(previous.value.size()), previous.value.data());
  finalize_request(r, Code::status(400));
  return Rc::Error;
}

Rc unique_header_line(Request& r, Header* h, Header** slot) {
  if (*slot != nullptr) return reject_duplicate(r, "header line", *h, **slot);
  *slot = h;
  return Rc::Ok;
}

Rc host_header(Request& r, Header* h, Header** slot) {
  if (*slot != nullptr) return reject_duplicate(r, "host header", *h, **slot);
  *slot = h;
  std::string_view host = h->value;
  if (!validate_host(host, *r.pool)) {
    log_error(LogLevel::Info, r.log(), 0, "client sent invalid host header");
    finalize_request(r, Code::status(400));
    return Rc::Error;
  }
  if (!r.headers_in.server.empty()) return Rc::Ok;  // the request line's host wins
  if (set_virtual_server(r, host) != Rc::Ok) return Rc::Error;
  r.headers_in.server = host;
  return Rc::Ok;
}

Rc connection_header(Request& r, Header* h, Header** slot) {
  if (*slot == nullptr) *slot = h;
  if (ifind(h->value, "close") != std::string_view::npos) {
    r.headers_in.connection_type = ConnectionType::Close;
  } else if (ifind(h->value, "keep-alive") != std::string_view::npos) {
    r.headers_in.connection_type = ConnectionType::KeepAlive;
  }
  return Rc::Ok;
}

Rc user_agent_header(Request& r, Header* h, Header** slot) {
  if (*slot != nullptr) return Rc::Ok;
  *slot = h;
  detect_browser(r.headers_in, h->value);
  return Rc::Ok;
}

constexpr KnownHeader<HeadersIn, HeaderHandler> kKnownHeaders[] = {
    {"host", &HeadersIn::host, host_header},
    {"connection", &HeadersIn::connection, connection_header},
    {"if-modified-since", &HeadersIn::if_modified_since, unique_header_line},
    {"if-unmodified-since", &HeadersIn::if_unmodified_since, unique_header_line},
    {"if-match", &HeadersIn::if_match, unique_header_line},
    {"if-none-match", &HeadersIn::if_none_match, unique_header_line},
    {"user-agent", &HeadersIn::user_agent, user_agent_header},
    {"referer", &HeadersIn::referer, header_line},
    {"content-length", &HeadersIn::content_length, unique_header_line},
    {"content-range", &HeadersIn::content_range, unique_header_line},
    {"content-type", &HeadersIn::content_type, header_line},
    {"range", &HeadersIn::range, header_line},
    {"if-range", &HeadersIn::if_range, header_line},
    {"transfer-encoding", &HeadersIn::transfer_encoding, unique_header_line},
    {"te", &HeadersIn::te, header_line},
    {"expect", &HeadersIn::expect, unique_header_line},
    {"upgrade", &HeadersIn::upgrade, header_line},
    {"accept-encoding", &HeadersIn::accept_encoding, header_line},
    {"via", &HeadersIn::via, header_line},
    {"authorization", &HeadersIn::authorization, unique_header_line},
    {"keep-alive", &HeadersIn::keep_alive, header_line},
    {"x-forwarded-for", &HeadersIn::x_forwarded_for, header_line},
    {"cookie", &HeadersIn::cookie, header_line},
};

constexpr KnownHeaderIndex kKnownHeaderIndex(kKnownHeaders);

}  // namespace

// Browser quirks that keepalive_disable and msie_* directives act on.
void detect_browser(HeadersIn& in, std::string_view ua) {
  in.msie = in.msie6 = in.opera = in.gecko = in.chrome = in.safari = in.konqueror = false;
  if (size_t msie = ua.find("MSIE "); msie != std::string_view::npos && msie + 7 < ua.size()) {
    in.msie = true;
    if (ua[msie + 6] == '.') {
      switch (ua[msie + 5]) {
        case '4':
        case '5':
          in.msie6 = true;
          break;
        case '6':
          if (ua.find("SV1", msie + 8) == std::string_view::npos) in.msie6 = true;
          break;
      }
    }
  }
  if (ua.find("Opera") != std::string_view::npos) {
    in.opera = true;
    in.msie = false;
    in.msie6 = false;
  }
  if (!in.msie && !in.opera) {
    if (ua.find("Gecko/") != std::string_view::npos) {
      in.gecko = true;
    } else if (ua.find("Chrome/") != std::string_view::npos) {
      in.chrome = true;
    } else if (ua.find("Safari/") != std::string_view::npos &&
               ua.find("Mac OS X") != std::string_view::npos) {
      in.safari = true;
    } else if (ua.find("Konqueror") != std::string_view::npos) {
      in.konqueror = true;
    }
  }
}

Header** known_header_in(HeadersIn& in, std::string_view lowcase_key) {
  const auto* k = kKnownHeaderIndex.find(lowcase_key);
  return k != nullptr ? &(in.*(k->slot)) : nullptr;
}

Rc process_known_header(Request& r, Header* h) {
  const auto* k = kKnownHeaderIndex.find(h->lowcase_key);
  return k != nullptr ? k->handler(r, h, &(r.headers_in.*(k->slot))) : Rc::Ok;
}

Rc process_request_header(Request& r) {
  HeadersIn& in = r.headers_in;
  if (in.server.empty() && set_virtual_server(r, in.server) != Rc::Ok) return Rc::Error;
  if (in.host == nullptr && r.http_version > 1000) {
    log_error(LogLevel::Info, r.log(), 0, "client sent HTTP/1.1 request without \"Host\" header");
    finalize_request(r, Code::status(400));
    return Rc::Error;
  }
  if (in.content_length != nullptr) {
    auto v = parse_int(in.content_length->value);
    if (!v) {
      log_error(LogLevel::Info, r.log(), 0, "client sent invalid \"Content-Length\" header");
      finalize_request(r, Code::status(400));
      return Rc::Error;
    }
    in.content_length_n = *v;
  }
  if (in.transfer_encoding != nullptr) {
    if (r.http_version < 1001) {
      log_error(LogLevel::Info, r.log(), 0,
                "client sent HTTP/1.0 request with \"Transfer-Encoding\" header");
      finalize_request(r, Code::status(400));
      return Rc::Error;
    }
    std::string_view te = in.transfer_encoding->value;
    if (iequals(te, "chunked")) {
      if (in.content_length != nullptr) {
        log_error(
            LogLevel::Info, r.log(), 0,
            "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time");
        finalize_request(r, Code::status(400));
        return Rc::Error;
      }
      in.chunked = true;
    } else {
      // With chunked last the body could be framed, but in a coding weir does not decode (501, as
      // nginx); without it the body's length cannot be known (400 and close: RFC 9112 6.3).
      size_t comma = te.rfind(',');
      std::string_view last = trim_ows(comma == std::string_view::npos ? te : te.substr(comma + 1));
      bool framed = comma != std::string_view::npos && iequals(last, "chunked");
      log_error(LogLevel::Info, r.log(), 0, "client sent unknown \"Transfer-Encoding\": \"%.*s\"",
                static_cast<int>(te.size()), te.data());
      if (!framed) r.lingering_close = true;
      finalize_request(r, Code::status(framed ? 501 : 400));
      return Rc::Error;
    }
  }
  if (r.method == kConnect) {
    log_error(LogLevel::Info, r.log(), 0, "client sent CONNECT method");
    finalize_request(r, Code::status(405));
    return Rc::Error;
  }
  if (r.method == kTrace) {
    log_error(LogLevel::Info, r.log(), 0, "client sent TRACE method");
    finalize_request(r, Code::status(405));
    return Rc::Error;
  }
  return Rc::Ok;
}

}  // namespace weir::http
