// Request bodies: reading one (Content-Length or chunked) into memory buffers of
// client_body_buffer_size, spilling to a temp file under client_body_temp_path when it does not
// fit, for modules that need it; and discarding one that nobody needs, without blocking the
// response. "Expect: 100-continue" is answered here. nginx: src/http/ngx_http_request_body.c
#pragma once

#include <sys/types.h>

#include "core/buffer.h"
#include "core/file.h"
#include "http/parse.h"
#include "http/request.h"

namespace weir::http {

struct RequestBody {
  TempFile* temp_file = nullptr;
  // The body read so far: pieces of the header buffer and of the read buffer (not copied), ending
  // with an empty last_buf buffer; or, once the body is (or must be) in the temp file, one buffer
  // for the whole file.
  ChainLink* bufs = nullptr;
  ChainLink** bufs_tail = &bufs;
  Buffer* buf = nullptr;    // the buffer the socket is read into
  off_t rest = 0;           // bytes still expected (chunked: at least this many)
  off_t received = 0;       // body bytes so far
  uint64_t start_msec = 0;  // when reading began (client_body_min_rate)
  ChunkedState* chunked = nullptr;
  RequestHandler post_handler = nullptr;
  bool last_saved = false;  // the whole body has been taken in
  bool done = false;        // ... and reading is over
};

// Reads the whole body, then calls post_handler. Returns Ok/Again (the caller answers Done), or an
// HTTP status for errors found at once. With r.request_body_no_buffering (proxy_request_buffering
// off) post_handler runs at once with what has arrived in rb.bufs; the consumer takes the pieces
// from there and calls read_unbuffered_request_body for more.
Code read_client_request_body(Request& r, RequestHandler post_handler);
// No buffering: reads what the client has sent into rb.bufs, reusing the read buffer - so call it
// only once every piece taken before has been sent on. Ok when the body is complete (rb.done),
// Again when waiting for the client (or for room), or an HTTP status (400, 408, 413).
Code read_unbuffered_request_body(Request& r);
// Arranges for the body to be read and dropped. Ok, or an HTTP status.
Code discard_request_body(Request& r);
void discarded_request_body_handler(Request& r);
// The deadline for reading a discarded body after the response (lingering_time).
void set_lingering_deadline(Request& r);

}  // namespace weir::http
