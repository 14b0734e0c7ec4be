// The upstream lifecycle (seed 000): connect to a peer the group's balancer picks, send the request
// a protocol module built, read and parse the response header, then relay the body to the client -
// non-buffered (one buffer, data leaves as it comes) or through the event pipe (many buffers,
// spilling to a temp file) - and finalize both sides, retrying other peers where
// proxy_next_upstream allows. The protocol (proxy, and later FastCGI, uwsgi, SCGI, memcached) plugs
// in through UpstreamProtocol; nothing here knows HTTP/1.x framing. nginx:
// src/http/ngx_http_upstream.c
#pragma once

#include <cstdint>
#include <string_view>

#include "core/buffer.h"
#include "core/file.h"
#include "core/string_table.h"
#include "event/peer_connection.h"
#include "event/resolver.h"
#include "http/headers.h"
#include "http/request.h"
#include "os/kernel_pipe.h"
#include "upstream/upstream_group.h"

struct ssl_ctx_st;

namespace weir::http {

class ComplexValue;
struct Upstream;
struct EventPipe;
struct CacheSettings;
struct UpstreamCache;

// proxy_next_upstream's conditions (bits).
enum : uint32_t {
  kNextError = 0x2,
  kNextTimeout = 0x4,
  kNextInvalidHeader = 0x8,
  kNext500 = 0x10,
  kNext502 = 0x20,
  kNext503 = 0x40,
  kNext504 = 0x80,
  kNext403 = 0x100,
  kNext404 = 0x200,
  kNext429 = 0x400,
  kNextNonIdempotent = 0x4000,
  kNextOff = 0x8000,
  kNextNoLive = 0x40000000,  // no peer was left to try (not a directive's name)
};

// proxy_ignore_headers and its twins: response headers whose meaning is ignored (bits).
enum : uint32_t {
  kIgnoreXAccelRedirect = 0x2,
  kIgnoreXAccelExpires = 0x4,
  kIgnoreExpires = 0x8,
  kIgnoreCacheControl = 0x10,
  kIgnoreSetCookie = 0x20,
  kIgnoreXAccelLimitRate = 0x40,
  kIgnoreXAccelBuffering = 0x80,
  kIgnoreXAccelCharset = 0x100,
  kIgnoreVary = 0x200,
};

// What a protocol's process_header answers.
enum class HeaderResult {
  Done,     // the whole header is parsed into u.headers_in
  Again,    // more bytes are needed
  Interim,  // a 1xx other than 101 is in u.headers_in (status, status_line, headers); call again
  Invalid,  // not a valid header (502, or the next peer: invalid_header)
  Error,    // no memory and the like (500)
};

// The per-location settings the lifecycle runs by: the protocol module merges its own directives
// (proxy_connect_timeout ...) into one of these. nginx: ngx_http_upstream_conf_t.
struct UpstreamConf {
  UpstreamGroup* group = nullptr;
  uint64_t connect_timeout = 60000;
  uint64_t send_timeout = 60000;
  uint64_t read_timeout = 60000;
  uint64_t next_upstream_timeout = 0;
  unsigned next_upstream_tries = 0;
  uint32_t next_upstream = kNextError | kNextTimeout;
  size_t buffer_size = 4096;
  Bufs bufs{8, 4096};
  size_t busy_buffers_size = 8192;
  off_t max_temp_file_size = 1024 * 1024 * 1024;
  size_t temp_file_write_size = 8192;
  const TempPath* temp_path = nullptr;
  bool buffering = true;
  bool change_buffering = false;  // X-Accel-Buffering may turn buffering on or off
  bool force_ranges = false;      // byte ranges of the response, whatever the upstream says
  off_t limit_rate = 0;           // proxy_limit_rate: bytes/s read from the upstream (buffered)
  uint32_t ignore_headers = 0;    // kIgnore* bits
  bool ignore_client_abort = false;
  bool intercept_errors = false;
  bool intercept_404 = false;  // a 404 is the client's 404 (error_page applies): memcached's miss
  bool socket_keepalive = false;
  bool pass_trailers = false;  // proxy_pass_trailers: a chunked response's trailer goes on
  // The request side goes on after the response header (gRPC: a streamed body, flow-control
  // frames); the protocol's pending_output gives what else is to be sent. nginx's preserve_output.
  bool preserve_output = false;
  const SockAddr* local = nullptr;            // proxy_bind
  const ComplexValue* local_value = nullptr;  // proxy_bind with variables
  std::string_view local_name;                // ... as written
  bool local_transparent = false;             // proxy_bind ... transparent
  // proxy_store: a 200 response read whole is kept as a file, at store_path (with variables) or
  // where root/alias map the URI, with store_access's mode.
  bool store = false;
  const ComplexValue* store_path = nullptr;
  uint32_t store_access = 0600;
  // proxy_cache and its family (upstream_cache.h); nullptr: no cache here.
  const CacheSettings* cache = nullptr;
  // Response headers not passed to the client (lower case), and the ones passed despite the
  // protocol's defaults.
  const StringTable<bool>* hide_headers = nullptr;
  BufTag tag = nullptr;  // the protocol module: its buffers
  // TLS to the peer (proxy_pass https://): the client context, and whether SNI is sent and the
  // peer's certificate checked (against the name the protocol gives, Upstream::ssl_name).
  ssl_ctx_st* ssl = nullptr;
  bool ssl_server_name = false;
  bool ssl_verify = false;
  bool ssl_session_reuse = true;
  mutable void* ssl_session = nullptr;  // this worker's last session, offered to the next handshake
  // *_ssl_certificate with variables: the certificate and key made for each connection (an empty
  // certificate name: none), and the key's passphrases.
  const ComplexValue* ssl_certificate = nullptr;
  const ComplexValue* ssl_certificate_key = nullptr;
  const std::vector<std::string>* ssl_passwords = nullptr;
  const std::string* ssl_conf_prefix = nullptr;  // where relative names are (the cycle's)
};

// The response header as the upstream sent it, and what the lifecycle needs to know of it.
struct UpstreamHeadersIn {
  HeaderList headers;
  HeaderList trailers;  // a chunked body's trailer section (proxy_pass_trailers)
  int status = 0;
  std::string_view status_line;  // "200 OK"
  off_t content_length_n = -1;
  bool chunked = false;
  bool connection_close = false;
  Header* location = nullptr;
  // The X-Accel-* headers, found by the lifecycle once the header is parsed.
  Header* x_accel_redirect = nullptr;
  Header* x_accel_buffering = nullptr;
  Header* x_accel_limit_rate = nullptr;
  Header* x_accel_charset = nullptr;
  Header* x_accel_expires = nullptr;  // for the cache
};

// One try (one peer) of a request, for the $upstream_* variables. nginx: ngx_http_upstream_state_t.
struct UpstreamState {
  std::string_view peer;
  uint32_t counts_index = 0;  // the peer's per-peer counters, as PeerConnection has it
  int status = 0;
  uint64_t start_msec = 0;
  int64_t connect_time = -1;  // ms; -1: not reached
  int64_t header_time = -1;
  int64_t response_time = -1;
  off_t response_length = 0;
  off_t bytes_received = 0;
  off_t bytes_sent = 0;
  UpstreamState* next = nullptr;
};

// The protocol seam: what a protocol module fills in. Every callback gets the request; the
// upstream is r.upstream.
struct UpstreamProtocol {
  // The cache key when no *_cache_key is written (proxy's: the proxied URL with the URI the
  // upstream gets, as nginx's); nullptr: the protocol has none, one must be written.
  std::string_view (*cache_key)(Request& r) = nullptr;
  // Builds u.request_bufs (the request as the upstream is to receive it). Ok or an HTTP status.
  Code (*create_request)(Request& r) = nullptr;
  // Before a retry on another peer: forget what the last one sent (parser state ...). The lifecycle
  // rewinds request_bufs itself (memory buffers to their start, file buffers to offset 0), so a
  // protocol builds them with that in mind.
  Code (*reinit_request)(Request& r) = nullptr;
  // No request buffering: frames the next pieces of the client's body for the wire (`last`: the
  // body ends with them; `in` may then be empty). nullptr sends them as they are.
  ChainLink* (*body_filter)(Request& r, ChainLink* in, bool last) = nullptr;
  // preserve_output: frames the protocol has to send besides the request and its body pieces
  // (acknowledgements, flow-control updates, body it held back), once what went before is sent;
  // nullptr when none. It asks for the call with post_upstream_output.
  ChainLink* (*pending_output)(Request& r) = nullptr;
  // Parses what u.buffer holds of the response header into u.headers_in.
  HeaderResult (*process_header)(Request& r) = nullptr;
  // The upstream's header is copied to the response and not sent yet: the protocol's own rewrites
  // (proxy_redirect, proxy_cookie_*). Optional.
  void (*rewrite_headers)(Request& r) = nullptr;
  // After the header: sets u.length (body bytes still to come, -1 unknown) and the filter state.
  // The three filters may be left out: the lifecycle then relays every byte after the header up to
  // u.length or the upstream's close (lifecycle.h, as nginx's defaults).
  Rc (*input_filter_init)(Request& r) = nullptr;
  // Non-buffered: `bytes` just read start at u.buffer.last; the filter moves last past them and
  // appends the body data among them to u.out_bufs (u.out_tail). Error: the response is broken.
  Rc (*input_filter)(Request& r, size_t bytes) = nullptr;
  // Buffered: the body data among the new bytes of a raw buffer goes to the pipe (event_pipe.h;
  // p.input_ctx is the Request).
  Rc (*pipe_input_filter)(EventPipe& p, Buffer* raw, char* from) = nullptr;
  // The client went away before the header was sent.
  void (*abort)(Request& r) = nullptr;
  // The upstream part of the request is over (rc: the status it ends with).
  void (*finalize)(Request& r, Code rc) = nullptr;
};

// Where the exchange with the upstream stands; every handler asserts the phases it runs in, so a
// handler reached out of turn (the request side after the response started, a retry after the
// header went out) fails loudly in the checked builds. The response side leads: the header may
// come while the request is still being sent, and then the request side stops for good.
enum class UpstreamPhase : uint8_t {
  Idle,           // created, not started
  Resolving,      // the peer's name is with the resolver
  Connecting,     // a connect is under way (to the first peer or the next one)
  Sending,        // the request goes out (and the header may already come)
  ReadingHeader,  // the whole request went out; the header is awaited
  Relaying,       // the header went to the client; the body is relayed
  Tunnel,         // an upgraded connection: bytes both ways
  Done,           // the upstream's part is over (released)
};

struct Upstream {
  const UpstreamConf* conf = nullptr;
  const UpstreamProtocol* protocol = nullptr;
  PeerConnection peer;

  ChainLink* request_bufs = nullptr;  // the request, from create_request
  ChainLink* request_out = nullptr;   // what is still to be sent of it
  // Where each buffer of request_bufs began (memory: its pos past start; file: its file_pos), noted
  // at the first send: a retry rewinds each slice to there (a protocol's record in the middle of a
  // buffer or a file), not to the start.
  off_t* request_starts = nullptr;
  Buffer buffer;  // the response header (and the non-buffered body)
  UpstreamHeadersIn headers_in;
  off_t length = -1;  // body bytes still to come from the upstream; -1: until it closes

  // The non-buffered relay (seed 000): out_bufs go to the client; busy_bufs are still being sent;
  // free_bufs are links ready for reuse.
  ChainLink* out_bufs = nullptr;
  ChainLink** out_tail = &out_bufs;
  ChainLink* busy_bufs = nullptr;
  ChainLink* free_bufs = nullptr;

  EventPipe* pipe = nullptr;
  UpstreamCache* cache = nullptr;    // the request's cache key and status, when the cache is on
  void* input_filter_ctx = nullptr;  // the protocol's parser state

  UpstreamState* state = nullptr;   // the current try
  UpstreamState* states = nullptr;  // every try, in order
  UpstreamState** states_tail = &states;

  void (*read_event_handler)(Request& r, Upstream& u) = nullptr;
  void (*write_event_handler)(Request& r, Upstream& u) = nullptr;
  RequestCleanup* cleanup = nullptr;

  // Chosen at request time (proxy_pass with variables): a group, or a peer by name or address
  // that the lifecycle resolves (through `resolver`) before it connects.
  UpstreamGroup* group = nullptr;
  std::string_view resolve_host;
  uint16_t resolve_port = 0;
  ResolveQuery* resolving = nullptr;

  UpstreamPhase phase = UpstreamPhase::Idle;
  std::string_view ssl_name;  // TLS: the name for SNI and verification (proxy_ssl_name)
  std::string_view schema;    // "http://", for logs
  std::string_view uri;       // the upstream URI, for the error log's upstream part
  bool buffering : 1 = true;
  bool keepalive : 1 = false;  // the response was well framed: the connection may be reused
  // The protocol's non-buffered filter found the body at fault: what it passed goes out, then the
  // response ends cut short (nginx's u->error).
  bool error : 1 = false;
  bool upgrade : 1 = false;
  bool header_sent : 1 = false;
  bool request_sent : 1 = false;       // sending has begun on this peer
  bool request_body_sent : 1 = false;  // all of the request went out: a request boundary
  bool body_streaming : 1 = false;     // the client's body goes on as it arrives (no buffering)
  bool body_taken : 1 = false;   // ... and some of it went out: the request cannot be repeated
  bool fresh_retry : 1 = false;  // a cached connection failed: the peer was tried again afresh
  // The protocol holds as much of the streamed body as it may (the peer's flow-control window is
  // shut): no more is taken from the client until post_upstream_output.
  bool body_held : 1 = false;
  bool ssl : 1 = false;  // TLS to the peer (conf->ssl is the context)
  // Set by the protocol's input_filter_init: the body after the header is the response's body as
  // it is, up to u.length (or the close when -1), so a relay may move it without the input filter;
  // and whether the connection may then be reused once u.length is reached.
  bool body_as_is : 1 = false;
  bool keepalive_at_end : 1 = false;
  bool spliced : 1 = false;  // the rest of the body goes through `kernel_pipe` (non-buffered)
  KernelPipe kernel_pipe;
};

// Makes r.upstream (a content handler calls it first).
Upstream* create_upstream(Request& r);
// Starts it: the request body is read (r.request_body), the protocol set. Call from the body's post
// handler.
void init_upstream(Request& r);

// Ends the upstream part with rc: the connection is released (cached or closed), the response
// finished or the error sent.
void finalize_upstream(Request& r, Upstream& u, Code rc);

// For a protocol's non-buffered input filter: a piece of u.buffer ([pos, last)) goes on to the
// client (u.out_bufs).
void add_non_buffered_out(Request& r, Upstream& u, char* pos, char* last);

// For create_request: the client's body as the foundation read it, appended at tail as buffers of
// the request's own (sending and a retry move only them); its size.
off_t append_request_body(Request& r, ChainLink**& tail);

// preserve_output: the protocol has something to send (pending_output) or may take the body again
// (body_held cleared): the request side runs once more, from the upstream's write event.
void post_upstream_output(Upstream& u);

// The upstream of a request (nullptr when none).
inline Upstream* upstream_of(Request& r) {
  return r.upstream;
}

}  // namespace weir::http
