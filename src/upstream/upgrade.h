// The tunnel an upgraded connection becomes (101 Switching Protocols: WebSocket and any other
// Upgrade): bytes flow both ways as they come, one buffer of proxy_buffer_size each way, with
// proxy_read_timeout on the upstream's silence and the send timeouts on each side's writes.
// nginx: ngx_http_upstream_upgrade, ngx_http_upstream_process_upgraded
#pragma once

namespace weir::http {

struct Request;
struct Upstream;

// The 101 header is sent: start relaying (called by the lifecycle instead of the body relays).
void start_upgraded(Request& r, Upstream& u);

}  // namespace weir::http
