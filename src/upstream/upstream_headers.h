// The upstream's response header as the client's: its lines copied into the response (hidden ones,
// hop-by-hop and framing fields left out, Content-Type, Location, Last-Modified and Cache-Control
// parsed into their places), and the X-Accel-* fields found and applied (buffering, limit rate,
// charset). For every protocol on the upstream lifecycle. nginx: ngx_http_upstream_process_headers,
// the ngx_http_upstream_headers_in table
#pragma once

#include "http/code.h"
#include "upstream/upstream.h"

namespace weir::http {

// The header lines; for an X-Accel-Redirect (redirect) only the ones the redirect keeps.
Code copy_header_lines(Request& r, Upstream& u, bool redirect);
// The lines, the status and the length: the upstream's answer is the response's.
Code copy_headers(Request& r, Upstream& u);
// Whether a line of a 1xx response (or of the trailer) goes on to the client: not hop-by-hop or
// framing, not hidden.
bool passes_with_interim(const Upstream& u, const Header& h);
// proxy_pass_trailers: the trailer section's lines that pass become the response's trailers (the
// chunked filter writes them). nginx 1.27: ngx_http_upstream_process_trailers
void copy_trailers(Request& r, Upstream& u);
// Finds the X-Accel-* fields among the upstream's header.
void find_accel_headers(Upstream& u);
// Applies those that change how the response is relayed.
void apply_accel_headers(Request& r, Upstream& u);

}  // namespace weir::http
