// Reading the request head: the request line (and its URI, normalised) and the header lines from
// the connection's buffer (moving an unfinished line into a large header buffer when it is full),
// with the answers nginx gives to a malformed or too large one, then handing the request to the
// phases. nginx: ngx_http_request.c (ngx_http_process_request_line ... ngx_http_process_request)
#pragma once

#include "http/core_module.h"
#include "http/http_connection.h"

namespace weir::http {

// The read handler while a request's line is being read (a new request, or a pipelined one).
void process_request_line(Event& ev);
// The parsed request line's URI, normalised and split (uri, args, exten). Ok, or Error when it
// finalized the request with 400.
Rc process_request_uri(Request& r);
// The request head is complete: the phases begin (HTTP/1's last step, and each HTTP/2 stream's).
void process_request(Request& r);
// The address's default server, whose settings apply until the Host is known.
inline CoreSrvConf& default_server(const HttpConnection& hc) {
  return conf_of<CoreSrvConf>(hc.conf_ctx->srv_conf);
}

}  // namespace weir::http
