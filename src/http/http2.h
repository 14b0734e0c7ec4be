// HTTP/2 (RFC 9113) with libnghttp2 doing the framing, flow control and HPACK: a connection that
// chose h2 by ALPN, or that opened with the client preface on a plain `listen ... http2` port (or
// one whose server has `http2 on`), becomes an Http2Connection. Each stream is an ordinary Request
// on a stream connection of its own, whose recv hands over the DATA frames' bytes and whose
// send_chain turns the response body into DATA frames, so the phases, filters and upstreams run
// unchanged; the HTTP/2 header filter sends the response head as a HEADERS frame. nginx:
// src/http/v2/ngx_http_v2.c, ngx_http_v2_filter_module.c, ngx_http_v2_module.c
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "conf/module.h"
#include "conf/setting.h"
#include "http/code.h"

namespace weir {
struct Connection;
}

namespace weir::http {

extern Module http_v2_module;

struct HttpConnection;
struct Request;
struct Http2Connection;
struct Http2Stream;

struct Http2MainConf {
  static constexpr Module* kModule = &http_v2_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  Setting<size_t> recv_buffer_size;  // http2_recv_buffer_size: what one read takes in
};

struct Http2SrvConf {
  static constexpr Module* kModule = &http_v2_module;
  static constexpr ConfLevel kLevel = ConfLevel::Srv;
  Setting<bool> enable;                    // http2 on|off (nginx 1.25's)
  Setting<size_t> max_concurrent_streams;  // SETTINGS_MAX_CONCURRENT_STREAMS
  Setting<size_t> body_preread_size;       // each stream's initial receive window
  Setting<size_t> streams_index_size;      // accepted and checked (nghttp2 indexes streams)
  Setting<size_t> pool_size;               // accepted and checked (weir's pools are its own)
};

struct Http2LocConf {
  static constexpr Module* kModule = &http_v2_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<size_t> chunk_size;  // the most one DATA frame carries
};

// Whether a new connection on this address may speak HTTP/2: `listen ... http2`, or `http2 on` in
// its default server (the server SNI chose, over TLS).
bool http2_allowed(const HttpConnection& hc);
// The connection's first bytes are the client preface, as far as they go: 1 all of it, 0 a part
// so far, -1 not HTTP/2.
int http2_preface(std::string_view first);
// Makes c an HTTP/2 connection: bytes already read (the preface, perhaps frames) are in c.buffer.
void http2_init(Connection& c);
// close_http_connection's part for an HTTP/2 connection (every stream ends first) and for a stream
// connection (the stream ends; the connection goes on).
void http2_close_connection(Connection& c);
void http2_close_stream_connection(Connection& c);
// One field of a response head, lower case.
struct Http2Field {
  std::string_view name;
  std::string_view value;
};
// Submits r's response head as its stream's HEADERS frame (with END_STREAM when r.header_only) and
// writes what the connection can.
Code http2_submit_response(Request& r, std::span<const Http2Field> fields);
// "h2" over TLS, "h2c" in plain, "" for HTTP/1.x.
std::string_view http2_variable(const Request& r);

}  // namespace weir::http
