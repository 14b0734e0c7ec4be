// What the HTTP/1 header filter and the HTTP/2 one both decide before they write a response head:
// the status line, header_only for 204/304/HEAD, Last-Modified kept only where it means something,
// and a relative Location made absolute (absolute_redirect, server_name_in_redirect,
// port_in_redirect). nginx: the first half of ngx_http_header_filter and ngx_http_v2_header_filter
#pragma once

#include <cstdint>
#include <string_view>

namespace weir::http {

struct Request;

struct ResponseHead {
  std::string_view status_line;  // "200 OK", or empty for a status without text
  int status = 0;
  bool abs_location = false;  // Location is written as scheme://host[:port] + its value
  std::string_view host;
  uint16_t port = 0;  // 0: the scheme's default, left out
  char addr[128];     // the local address as text, when host is it
};

void prepare_response_head(Request& r, ResponseHead& head);

}  // namespace weir::http
