// Responses weir makes itself: error statuses with nginx's built-in HTML pages (and the version
// tail), `error_page` redirects to a URI, a named location or a URL, and MSIE's refresh for
// redirects. nginx: src/http/ngx_http_special_response.c
#pragma once

#include "http/request.h"

namespace weir::http {

Code special_response_handler(Request& r, int error);
// The "Server" header's value and the HTML tail follow server_tokens.
std::string_view server_string(bool tokens_on);
// The Server header line as a response sends it.
inline std::string_view server_line(bool tokens_on) {
  return tokens_on ? std::string_view("Server: weir/" WEIR_VERSION "\r\n")
                   : std::string_view("Server: weir\r\n");
}

}  // namespace weir::http
