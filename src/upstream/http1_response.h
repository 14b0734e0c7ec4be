// The HTTP/1.x response codec for the protocols whose upstream answers in HTTP/1 (proxy; uwsgi
// next): the status line and header parsed strictly into u.headers_in (a line that is not HTTP/1.x
// is an invalid header, never passed through as HTTP/0.9; interim 1xx answers handed to the
// lifecycle), and the body's framing for both relays - copy bounded by Content-Length (extra bytes
// dropped, the connection not reused), chunked (strict framing), or up to the upstream's close.
// A protocol keeps one Http1Response per request and calls these from its callbacks.
// nginx: ngx_http_proxy_process_status_line, _process_header, the proxy's input filters
#pragma once

#include "http/parse.h"
#include "upstream/event_pipe.h"
#include "upstream/upstream.h"

namespace weir::http {

struct Http1Response {
  StatusLine status;
  HeaderLineState header;
  ChunkedState chunked;
  bool in_headers = false;  // the status line is parsed
  bool interim = false;     // parsing a 1xx response's header (handed to the lifecycle)
  bool head = false;        // the request was HEAD: no body follows
  bool extra = false;       // the upstream sent more than the body: do not reuse the connection
  const char* protocol = "proxy";  // in debug lines ("http proxy status 200 ...", "http uwsgi ...")

  // Before a retry: the parser starts over; what the request was stays.
  void reset() {
    Http1Response fresh;
    fresh.head = head;
    fresh.protocol = protocol;
    *this = fresh;
  }
};

// Parses what u.buffer holds of the status line and header.
HeaderResult http1_process_header(Request& r, Http1Response& s);
// After the header: u.length and the framing state.
Rc http1_input_filter_init(Request& r, Http1Response& s);
// The non-buffered relay: `bytes` just read at u.buffer.last.
Rc http1_input_filter(Request& r, Http1Response& s, size_t bytes);
// The event pipe: the new bytes of raw from `from` on.
Rc http1_pipe_filter(EventPipe& p, Buffer* raw, char* from, Http1Response& s);

}  // namespace weir::http
