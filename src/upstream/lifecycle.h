// What the lifecycle's own files share (upstream.cc: connect, send, the header; upstream_relay.cc:
// the body; upstream_resolve.cc: a peer named at run time). Not for protocol modules: they see
// upstream.h.
#pragma once

#include "upstream/upstream.h"

namespace weir::http {

// The peer is known (a group, or u.group made from resolved addresses): the balancer sets up the
// tries and the first connect starts.
void start_upstream(Request& r, Upstream& u);
// u.resolve_host names the peer: resolve it, then start_upstream (or finalize with 502).
void resolve_peer(Request& r, Upstream& u);
// The upstream's part ends (its connection cached or closed, its temp file kept for the
// response); the request goes on. Once only.
void release_upstream(Request& r, Upstream& u, Code rc);
// The response header went to the client: the protocol's input filter starts and the body is
// relayed (non-buffered or through the event pipe) to its end.
void start_relay(Request& r, Upstream& u);

// The lifecycle's input filters for a protocol that leaves them out, as nginx's defaults: the body
// is every byte after the header, up to u.length when the protocol's init set one (more is dropped
// with nginx's warning), else up to the upstream's close. nginx:
// ngx_http_upstream_non_buffered_filter, ngx_event_pipe_copy_input_filter
Rc default_input_filter_init(Request& r);
Rc default_input_filter(Request& r, size_t bytes);
Rc default_pipe_input_filter(EventPipe& p, Buffer* raw, char* from);

}  // namespace weir::http
