// The last header filter: serialises the status line and headers into one buffer and hands it to
// the write filter (which may hold it back until the body's first bytes join it). nginx:
// src/http/ngx_http_header_filter_module.c
#include "http/header_filter.h"

#include <cstring>

#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/http_connection.h"
#include "http/special_response.h"

namespace weir::http {

namespace {}  // namespace

void prepare_response_head(Request& r, ResponseHead& head) {
  HeadersOut& out = r.headers_out;
  if (out.last_modified_time != -1 && out.status != 200 && out.status != 206 && out.status != 304) {
    out.last_modified_time = -1;
    out.last_modified = nullptr;
  }
  head.status_line = out.status_line;
  head.status = out.status;
  if (head.status_line.empty()) {
    if (head.status == 204) {
      r.header_only = true;
      out.content_type = {};
      out.last_modified_time = -1;
      out.last_modified = nullptr;
      out.content_length = nullptr;
      out.content_length_n = -1;
    } else if (head.status == 304) {
      r.header_only = true;
    }
    head.status_line = status_text(head.status);
  }

  CoreLocConf& clcf = core_loc(r);
  Connection& c = *r.connection;
  // Location: a relative redirect becomes absolute (absolute_redirect on).
  head.abs_location = out.location != nullptr && !out.location->value.empty() &&
                      out.location->value[0] == '/' && *clcf.absolute_redirect;
  if (!head.abs_location) return;
  out.location->hash = 0;
  if (*clcf.server_name_in_redirect) {
    head.host = core_srv(r).server_name;
  } else if (!r.headers_in.server.empty()) {
    head.host = r.headers_in.server;
  } else {
    SockAddr local;
    local_address(c.fd, local);
    size_t n = format_addr_text(local.sa(), head.addr, sizeof head.addr);
    head.host = {head.addr, n};
  }
  if (*clcf.port_in_redirect) {
    SockAddr local;
    const HttpAddr* a = r.http_connection->addr_conf;
    if (a != nullptr && !a->addr.is_wildcard()) {
      head.port = a->addr.port();
    } else if (local_address(c.fd, local)) {
      head.port = local.port();
    }
    if (head.port == (c.ssl != nullptr ? 443 : 80)) head.port = 0;
  }
}

namespace {

Code header_filter(Request& r, HeaderNext) {
  if (r.header_sent) return Rc::Ok;
  r.header_sent = true;
  if (!r.is_main()) return Rc::Ok;
  if (r.http_version < 1000) return Rc::Ok;  // HTTP/0.9: no header at all
  if (r.method == kHead) r.header_only = true;
  if (r.keepalive && worker_exiting()) r.keepalive = false;

  ResponseHead head;
  prepare_response_head(r, head);
  HeadersOut& out = r.headers_out;
  CoreLocConf& clcf = core_loc(r);
  Connection& c = *r.connection;
  std::string_view status_line = head.status_line;
  int status = head.status;
  bool abs_location = head.abs_location;
  std::string_view host = head.host;
  uint16_t port = head.port;

  // Size the buffer generously: the fixed parts, then every header.
  size_t len = 128 + status_line.size() + out.content_type.size() + out.charset.size() + 256;
  if (abs_location) len += host.size() + out.location->value.size() + 33;
  for (Header* h : out.headers) {
    if (h->hash != 0) len += h->key.size() + h->value.size() + 4;
  }
  Buffer* b = Buffer::create_temp(*r.pool, len);
  char* p = b->last;
  p = put(p, "HTTP/1.1 ");
  if (!status_line.empty()) {
    p = put(p, status_line);
  } else {
    p = put_uint_pad(p, static_cast<uint64_t>(status % 1000), 3);
    *p++ = ' ';
  }
  p = put(p, "\r\n");
  if (out.server == nullptr) p = put(p, server_line(*clcf.server_tokens != ServerTokens::Off));
  if (out.date == nullptr) p = put(p, clock::http_date_line());
  if (!out.content_type.empty()) {
    p = put(p, "Content-Type: ");
    p = put(p, out.content_type);
    if (out.content_type_len == out.content_type.size() && !out.charset.empty()) {
      p = put(p, "; charset=");
      p = put(p, out.charset);
    }
    p = put(p, "\r\n");
  }
  if (out.content_length == nullptr && out.content_length_n >= 0) {
    p = put(p, "Content-Length: ");
    p = put_uint(p, static_cast<uint64_t>(out.content_length_n));
    p = put(p, "\r\n");
  }
  if (out.last_modified == nullptr && out.last_modified_time != -1) {
    p = put(p, "Last-Modified: ");
    p = out.last_modified_text.size() == clock::kHttpTimeLen
            ? put(p, out.last_modified_text)
            : clock::format_http_time(p, out.last_modified_time);
    p = put(p, "\r\n");
  }
  if (abs_location) {
    p = put(p, "Location: ");
    char* url = p;
    p = put(p, c.ssl != nullptr ? "https://" : "http://");
    p = put(p, host);
    if (port != 0) {
      *p++ = ':';
      p = put_uint(p, port);
    }
    p = put(p, out.location->value);
    // What was sent, for $sent_http_location in the log (as nginx updates it).
    out.location->value = {url, static_cast<size_t>(p - url)};
    p = put(p, "\r\n");
  }
  if (r.chunked) p = put(p, "Transfer-Encoding: chunked\r\n");
  if (status == 101) {
    p = put(p, "Connection: upgrade\r\n");
  } else if (r.keepalive) {
    p = put(p, "Connection: keep-alive\r\n");
    if (*clcf.keepalive_header != 0) {
      p = put(p, "Keep-Alive: timeout=");
      p = put_uint(p, static_cast<uint64_t>(*clcf.keepalive_header));
      p = put(p, "\r\n");
    }
  } else {
    p = put(p, "Connection: close\r\n");
  }
  if ((r.gzip_vary && *clcf.gzip_vary) || r.vary_coding) p = put(p, "Vary: Accept-Encoding\r\n");
  for (Header* h : out.headers) {
    if (h->hash == 0) continue;
    if (whole_line(*h)) {
      p = put(p, {h->key.data(), h->line});
      continue;
    }
    p = put(p, h->key);
    *p++ = ':';
    *p++ = ' ';
    p = put(p, h->value);
    *p++ = '\r';
    *p++ = '\n';
  }
  p = put(p, "\r\n");
  b->last = p;
  r.header_size = b->last - b->pos;
  // The header as sent but its last empty line, as nginx's debug log shows it.
  WEIR_DEBUG(*r.connection->log, "%.*s", static_cast<int>(r.header_size - 2), b->pos);
  if (r.header_only) b->last_buf = true;
  ChainLink cl{b, nullptr};
  return write_filter(r, &cl);
}

Status init(ConfContext& cf) {
  register_header_filter(cf, FilterId::Header, header_filter);
  return {};
}

}  // namespace

Module http_header_filter_module{
    .name = "http_header_filter",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
