// Responses weir makes itself: error statuses with nginx's built-in HTML pages (and the version
// tail), `error_page` redirects to a URI, a named location or a URL, and MSIE's refresh for
// redirects. nginx: src/http/ngx_http_special_response.c
#pragma once

#include "http/request.h"

namespace weir::http {

Code special_response_handler(Request& r, int error);
// Replaces the response with an error from inside an output filter: the header fields and every
// module's context go (keep's is kept: its filter must let the error through), and the error is
// answered; the filter returns what this does (Error when the error went out), and the handler
// then sees an error and stops. nginx: ngx_http_filter_finalize_request
Rc filter_finalize_request(Request& r, const Module* keep, int status);
// The Server header line as a response sends it, and its value alone (HTTP/2 sends that); both
// follow server_tokens, as the HTML tail does.
inline std::string_view server_line(bool tokens_on) {
  return tokens_on ? std::string_view("Server: weir/" WEIR_VERSION "\r\n")
                   : std::string_view("Server: weir\r\n");
}
inline std::string_view server_string(bool tokens_on) {
  std::string_view line = server_line(tokens_on);
  return line.substr(8, line.size() - 10);  // without "Server: " and the CRLF
}

}  // namespace weir::http
