// An HTTP/1.x connection: waiting for a request, reading the request line and headers (with large
// header buffers when they do not fit), keep-alive between requests (holding no request memory
// while idle), pipelining, lingering close. nginx: src/http/ngx_http_request.c
// (ngx_http_init_connection ... ngx_http_set_keepalive)
#pragma once

#include <memory>
#include <string_view>

#include "core/assert.h"
#include "core/buffer.h"
#include "core/pool.h"
#include "core/proxy_protocol.h"
#include "event/connection.h"

namespace weir {
struct HttpConfCtx;
}

namespace weir::http {

struct Request;
struct HttpAddr;
struct Http2Connection;
struct Http2Stream;

struct HttpConnection {
  const HttpAddr* addr_conf = nullptr;
  HttpConfCtx* conf_ctx = nullptr;  // the default server's configuration
  Pool request_pool;                // the current request's arena, reset after each request
  Request* request = nullptr;       // the main request (nullptr between requests)
  Request* active = nullptr;  // the request events go to: the main one or a subrequest in turn

  // Large header buffers (in the connection's pool): in use by the current request, and spare ones.
  ChainLink* busy = nullptr;
  ChainLink* free = nullptr;

  // A lingering close's bounds (in request_pool: only a closing connection has them).
  struct Lingering {
    uint64_t deadline = 0;  // ms
    uint64_t timeout = 0;
  };
  Lingering* lingering = nullptr;
  // listen ... proxy_protocol: what the header named (made for such connections only, and kept
  // with this struct when it is recycled).
  std::unique_ptr<ProxyProtocolAddrs> proxy_protocol;
  Http2Connection* h2 = nullptr;            // the connection speaks HTTP/2 (http/http2)
  Http2Stream* stream = nullptr;            // this is an HTTP/2 stream's connection
  bool proxy_protocol_pending : 1 = false;  // the header is still to come
  bool plain_http : 1 = false;  // plain HTTP came to a `listen ... ssl` address (answered 400)
  // The client's address as text: made when first asked for ($remote_addr, a log line), since
  // most connections are never asked (0: not yet). The longest text inet_ntop makes of an IPv6
  // address is 39 bytes (eight groups of four; a dotted IPv4 part comes only after "::" or
  // "::ffff:"); no NUL is kept. (An idle keep-alive connection holds this struct: 184 bytes.)
  uint8_t addr_len : 6 = 0;
  char addr_buf[39];

  // c: the connection this serves (its peer's address).
  std::string_view addr_text(const Connection& c);
  // Makes addr_buf the text of sa (realip's address, or the peer's).
  void set_addr_text(const sockaddr* sa);
};

// The client state behind a connection an HTTP listener accepted (nullptr once it is closed). An
// outbound connection (an upstream's) has no listener and never holds one.
inline HttpConnection* http_connection_of(Connection& c) {
  WEIR_ASSERT(c.listening != nullptr && !c.is_listening);
  return static_cast<HttpConnection*>(c.data);
}

// The listening socket's handler: a new connection.
void init_connection(Connection& c);
// Closes an HTTP connection and frees its state.
void close_http_connection(Connection& c);
// After a request: keep the connection for the next one, or close it.
void set_keepalive(Request& r);
// Frees the request and reads (and drops) what the client still sends before closing, so that a
// reset does not destroy the response in flight.
void set_lingering_close(Request& r);
// Half-closes the connection and drops what the client still sends until it closes too (for at most
// `time` ms, `timeout` ms between reads), then closes it.
void lingering_close_connection(Connection& c, uint64_t time, uint64_t timeout);
// A new request on this connection (pipelined or after keep-alive).
Request* create_request(Connection& c);
// The request's pool and memory go back; the connection stays.
void free_request(Request& r);

}  // namespace weir::http
