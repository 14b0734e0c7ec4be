// grpc: gRPC (HTTP/2) to an upstream on the upstream lifecycle, with libnghttp2 as the client
// session. The request is one stream on a connection of its own: the connection preface and
// nginx's SETTINGS (no header table, no push, the largest window), the HEADERS that nginx builds
// (:method, :scheme, :path, :authority from grpc_pass unless grpc_set_header Host, then the
// client's fields and grpc_set_header's, lower case), and the body streamed as DATA as the client
// sends it, within the peer's window. The response's HEADERS make the response header, its DATA
// is relayed as it comes (non-buffered, as nginx's gRPC), and its trailing HEADERS (grpc-status,
// grpc-message) become the response's trailers. The request side goes on after the response
// header (preserve_output): body, window updates, acknowledgements. nghttp2's callbacks only
// record what came; nothing of the request runs inside the library. grpcs:// offers h2 by ALPN,
// with the grpc_ssl_* settings shared with proxy_ssl_* (upstream/upstream_ssl).
// nginx: src/http/modules/ngx_http_grpc_module.c
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <string>
#include <vector>

#include "conf/cycle.h"
#include "core/escape.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "http/script.h"
#include "http/variables.h"
#include "upstream/set_headers.h"
#include "upstream/upstream.h"
#include "upstream/upstream_module.h"
#include "upstream/upstream_settings.h"
#include "upstream/upstream_ssl.h"

namespace weir::http {

extern Module http_grpc_module;

namespace {

constexpr int32_t kMaxWindow = 0x7fffffff;
constexpr size_t kOutputSize = 64 * 1024;  // a round of frames; a DATA frame is at most 16k + 9
constexpr size_t kHeldBody = 64 * 1024;    // body held back by the window before reading stops

struct GrpcLocConf {
  static constexpr Module* kModule = &http_grpc_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  bool pass_set = false;
  std::string host;  // :authority: host[:port] as grpc_pass wrote it ("localhost" for a socket)
  UpstreamGroup* group = nullptr;
  ComplexValue* url_value = nullptr;  // grpc_pass with variables
  bool ssl = false;                   // grpcs://
  std::string ssl_host;               // the grpc_pass host (the default grpc_ssl_name)

  UpstreamSettings up;
  UpstreamSsl ssl_settings;                       // grpc_ssl_* (upstream_ssl)
  std::vector<SetHeader>* set_headers = nullptr;  // as written at this level (nullptr: inherit)
  std::vector<SetHeader>* headers = nullptr;      // merged: written + nginx's defaults
  bool host_set = false;                          // grpc_set_header Host replaces :authority

  UpstreamConf upstream;
};

// A piece of the response's body that came before the relay began (with the header).
struct Early {
  char* data;
  size_t len;
};

// Per request: the client session, the body held for it, and what the response brought.
struct GrpcCtx {
  static constexpr Module* kModule = &http_grpc_module;
  Request* r = nullptr;
  nghttp2_session* session = nullptr;
  int32_t stream = -1;
  std::string_view authority;

  // The client's body, copied as it is taken and sent as the window allows.
  Buffer* held = nullptr;
  bool body_last = false;  // all of the body is held (or there is none)
  bool body_done = false;  // ... and went out (END_STREAM)

  Buffer* out = nullptr;  // frames of one round of pending_output

  // The response.
  bool in_header = true;       // the response's HEADERS are being read (not the trailers)
  bool header_done = false;    // a final (non-1xx) response header is complete
  bool ended = false;          // END_STREAM came
  bool trailers_only = false;  // ... with the response's HEADERS (gRPC's way to fail at once)
  bool failed = false;         // the stream or the connection broke; logged
  bool goaway = false;         // the upstream takes no more streams on this connection
  std::vector<Early>* early = nullptr;
};

GrpcLocConf& grpc_conf(Request& r) {
  return r.loc<GrpcLocConf>();
}

GrpcCtx& grpc_ctx(Request& r) {
  return *r.get_ctx<GrpcCtx>();
}

// --- nghttp2's callbacks: they record, nothing more ------------------------------------------

int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* data) {
  if (data == nullptr) return 0;  // a kept session between requests
  auto& ctx = *static_cast<GrpcCtx*>(data);
  if (frame->hd.stream_id != ctx.stream) return 0;
  Request& r = *ctx.r;
  Upstream& u = *r.upstream;
  std::string_view k(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (ctx.in_header && k == ":status") {
    auto status = parse_int(v);
    u.headers_in.status = status ? static_cast<int>(*status) : 0;
    return 0;
  }
  if (k.starts_with(':')) return 0;
  HeaderList& list = ctx.in_header ? u.headers_in.headers : u.headers_in.trailers;
  Header* h = list.push(*r.pool, r.pool->dup(k), r.pool->dup(v));
  h->lowcase_key = h->key;  // HTTP/2 field names are lower case (nghttp2 checks)
  if (ctx.in_header && k == "content-length") {
    if (auto n = parse_int(v)) u.headers_in.content_length_n = *n;
  }
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* data) {
  if (data == nullptr) return 0;  // a kept session between requests
  auto& ctx = *static_cast<GrpcCtx*>(data);
  Request& r = *ctx.r;
  Upstream& u = *r.upstream;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (frame->hd.stream_id != ctx.stream) break;
      if (ctx.in_header) {
        if (u.headers_in.status >= 100 && u.headers_in.status < 200) {
          u.headers_in = UpstreamHeadersIn{};  // an interim answer: the final one follows
          break;
        }
        ctx.in_header = false;
        ctx.header_done = true;
        ctx.trailers_only = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      }
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ctx.ended = true;
      break;
    case NGHTTP2_DATA:
      if (frame->hd.stream_id == ctx.stream && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        ctx.ended = true;
      }
      break;
    case NGHTTP2_RST_STREAM:
      if (frame->hd.stream_id != ctx.stream || ctx.ended) break;
      log_error(LogLevel::Error, r.log(), 0, "upstream rejected request with error %u",
                frame->rst_stream.error_code);
      ctx.failed = true;
      break;
    case NGHTTP2_GOAWAY:
      ctx.goaway = true;
      if (frame->goaway.last_stream_id >= ctx.stream || ctx.ended) break;
      log_error(LogLevel::Error, r.log(), 0, "upstream sent goaway with error %u",
                frame->goaway.error_code);
      ctx.failed = true;
      break;
    default:
      break;
  }
  return 0;
}

int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len,
                  void* user) {
  if (user == nullptr) return 0;  // a kept session between requests
  auto& ctx = *static_cast<GrpcCtx*>(user);
  if (stream != ctx.stream || len == 0) return 0;
  Request& r = *ctx.r;
  Upstream& u = *r.upstream;
  char* p = const_cast<char*>(reinterpret_cast<const char*>(data));
  if (ctx.header_done && u.header_sent && p >= u.buffer.start && p + len <= u.buffer.end) {
    add_non_buffered_out(r, u, p, p + len);  // the bytes stay where they were read
    return 0;
  }
  // With the header, before the relay: kept until it begins.
  if (ctx.early == nullptr) ctx.early = r.pool->make<std::vector<Early>>();
  char* copy = r.pool->alloc_bytes(len);
  std::memcpy(copy, data, len);
  ctx.early->push_back({copy, len});
  return 0;
}

int on_stream_close(nghttp2_session*, int32_t stream, uint32_t error, void* user) {
  if (user == nullptr) return 0;  // a kept session between requests
  auto& ctx = *static_cast<GrpcCtx*>(user);
  if (stream != ctx.stream || ctx.ended || ctx.failed) return 0;
  log_error(LogLevel::Error, ctx.r->log(), 0, "upstream closed stream with error %u", error);
  ctx.failed = true;
  return 0;
}

// The request body's DATA: what is held, within what nghttp2 asks for (the window).
ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                  nghttp2_data_source*, void* user) {
  if (user == nullptr) return NGHTTP2_ERR_DEFERRED;
  auto& ctx = *static_cast<GrpcCtx*>(user);
  Buffer* b = ctx.held;
  size_t n = b != nullptr ? std::min(length, static_cast<size_t>(b->last - b->pos)) : 0;
  if (n > 0) {
    std::memcpy(buf, b->pos, n);
    b->pos += n;
    if (b->pos == b->last) b->pos = b->last = b->start;
  }
  if (ctx.body_last && (b == nullptr || b->pos == b->last)) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    ctx.body_done = true;
    return static_cast<ssize_t>(n);
  }
  if (n == 0) return NGHTTP2_ERR_DEFERRED;
  return static_cast<ssize_t>(n);
}

nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_header_callback(c, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
    return c;
  }();
  return cbs;
}

// --- the request ------------------------------------------------------------------------------

bool hop_by_hop(std::string_view lc) {
  return lc == "connection" || lc == "keep-alive" || lc == "proxy-connection" ||
         lc == "transfer-encoding" || lc == "upgrade" || lc == "te" || lc == "host" ||
         lc == "content-length" || lc == "expect";
}

// :path as nginx sends it: the request line's URI when it is valid, else the URI escaped with its
// arguments.
std::string_view request_path(Request& r) {
  if (r.valid_unparsed_uri) return r.unparsed_uri;
  size_t escaped = escape_uri(nullptr, r.uri, Escape::Uri);
  char* p = r.pool->alloc_bytes(r.uri.size() + 2 * escaped + 1 + r.args.size());
  char* e = p + escape_uri(p, r.uri, Escape::Uri);
  if (!r.args.empty()) {
    *e++ = '?';
    e = put(e, r.args);
  }
  return {p, static_cast<size_t>(e - p)};
}

void delete_session(void* kept) {
  nghttp2_session_del(static_cast<nghttp2_session*>(static_cast<KeptState*>(kept)->data));
}

// A cached connection's session between requests: the peer's control frames (PING, SETTINGS,
// WINDOW_UPDATE; a gRPC server sends them after a stream) are taken and answered at once, so the
// connection stays cached; a GOAWAY, a close, or an answer that cannot go ends it.
bool idle_read(Connection& c, void* data) {
  auto* session = static_cast<nghttp2_session*>(data);
  char buf[4096];
  for (;;) {
    IoResult res = c.recv(buf, sizeof buf);
    if (res.rc == Rc::Again) break;
    if (res.rc != Rc::Ok) return false;
    if (nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(buf), res.n) < 0) {
      return false;
    }
  }
  if (nghttp2_session_check_request_allowed(session) == 0) return false;  // GOAWAY came
  for (;;) {
    const uint8_t* out;
    ssize_t n = nghttp2_session_mem_send(session, &out);
    if (n < 0) return false;
    if (n == 0) return true;
    Buffer b;
    b.start = b.pos = const_cast<char*>(reinterpret_cast<const char*>(out));
    b.last = b.end = b.pos + n;
    b.temporary = true;
    ChainLink cl{&b, nullptr};
    SendResult sent = c.send_chain(&cl, 0);
    if (sent.rc == Rc::Error || sent.rest != nullptr) return false;
  }
}

// The connection's session: the one it keeps from an earlier request (a connection from the
// keepalive cache), or a new one with nginx's settings and the connection's window opened wide,
// which the connection keeps from now on. nullptr: logged.
nghttp2_session* connection_session(Request& r, GrpcCtx& ctx, Connection& c) {
  if (c.kept != nullptr) {
    auto* session = static_cast<nghttp2_session*>(c.kept->data);
    nghttp2_session_set_user_data(session, &ctx);
    return session;
  }
  nghttp2_session* session = nullptr;
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_http_messaging(opt, 0);
  nghttp2_option_set_no_auto_window_update(opt, 0);
  int rv = nghttp2_session_client_new2(&session, callbacks(), &ctx, opt);
  nghttp2_option_del(opt);
  if (rv != 0) {
    log_error(LogLevel::Alert, r.log(), 0, "nghttp2_session_client_new2() failed: %s",
              nghttp2_strerror(rv));
    return nullptr;
  }
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0},
                                       {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kMaxWindow}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kMaxWindow);
  auto* kept = c.pool.make<KeptState>();
  kept->data = session;
  kept->idle_read = idle_read;
  c.kept = kept;
  c.pool.add_cleanup(delete_session, kept);
  return session;
}

// This try's stream on the connection's session: nginx's request fields, and the body (if any) as
// its data source. False: logged.
bool start_stream(Request& r, GrpcCtx& ctx, Connection& c) {
  ctx.session = connection_session(r, ctx, c);
  if (ctx.session == nullptr) return false;
  GrpcLocConf& glcf = grpc_conf(r);
  std::vector<nghttp2_nv> nv;
  auto add = [&](std::string_view k, std::string_view v) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
                  NGHTTP2_NV_FLAG_NONE});
  };
  add(":method", r.method_name);
  add(":scheme", r.upstream->ssl ? "https" : "http");
  add(":path", request_path(r));
  if (!glcf.host_set) add(":authority", ctx.authority);
  for (const SetHeader& h : *glcf.headers) {
    std::string_view v = h.value.eval(r);
    if (!v.empty()) add(h.lowcase_key, v);  // an empty value removes the field
  }
  if (*glcf.up.pass_request_headers) {
    for (Header* h : r.headers_in.headers) {
      if (h->hash == 0 || hop_by_hop(h->lowcase_key)) continue;
      bool overridden = false;
      for (const SetHeader& s : *glcf.headers)
        overridden = overridden || s.lowcase_key == h->lowcase_key;
      if (!overridden) add(h->lowcase_key, h->value);
    }
  }
  bool body =
      r.request_body != nullptr && (r.headers_in.chunked || r.headers_in.content_length_n > 0);
  ctx.body_last = !body;
  ctx.body_done = false;
  if (ctx.held != nullptr) ctx.held->pos = ctx.held->last = ctx.held->start;
  nghttp2_data_provider provider{};
  provider.read_callback = read_body;
  ctx.stream = nghttp2_submit_request(ctx.session, nullptr, nv.data(), nv.size(),
                                      body ? &provider : nullptr, nullptr);
  if (ctx.stream < 0) {
    log_error(LogLevel::Alert, r.log(), 0, "nghttp2_submit_request() failed: %s",
              nghttp2_strerror(ctx.stream));
    return false;
  }
  return true;
}

// What the session has to send, appended to b (the caller's buffer), or to a buffer of its own
// when a frame does not fit. nullptr when nothing.
ChainLink* take_frames(Request& r, GrpcCtx& ctx, Buffer* b) {
  ChainLink* head = nullptr;
  ChainLink** tail = &head;
  auto link = [&](Buffer* buf) {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = buf;
    cl->next = nullptr;
    *tail = cl;
    tail = &cl->next;
  };
  bool b_linked = false;
  for (;;) {
    if (b->end - b->last < 16 * 1024 + 64) break;  // the next round takes the rest
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(ctx.session, &data);
    if (n <= 0) break;
    auto len = static_cast<size_t>(n);
    if (static_cast<size_t>(b->end - b->last) < len) {
      link(Buffer::create_memory(*r.pool, {reinterpret_cast<const char*>(data), len}));
      continue;
    }
    std::memcpy(b->last, data, len);
    b->last += len;
    if (!b_linked) {
      link(b);
      b_linked = true;
    }
  }
  return head;
}

// The request's frames depend on the connection (a kept session numbers its streams on): they
// are made once it is known, by the first pending_output.
Code create_request(Request& r) {
  Upstream& u = *r.upstream;
  u.uri = request_path(r);
  u.request_bufs = nullptr;
  return Rc::Ok;
}

// Another peer: this try's session went with its connection; the next connection's makes the
// request again.
Code reinit_request(Request& r) {
  GrpcCtx& ctx = grpc_ctx(r);
  ctx.session = nullptr;
  ctx.in_header = true;
  ctx.header_done = ctx.ended = ctx.trailers_only = ctx.failed = ctx.goaway = false;
  ctx.early = nullptr;
  r.upstream->headers_in = UpstreamHeadersIn{};
  return Rc::Ok;
}

// The client's body pieces: held (copied: the reader reuses its buffer) for the stream's data
// source; the frames go with the next round of output.
ChainLink* body_filter(Request& r, ChainLink* in, bool last) {
  GrpcCtx& ctx = grpc_ctx(r);
  Upstream& u = *r.upstream;
  size_t size = 0;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) size += cl->buf->size();
  if (ctx.held == nullptr) ctx.held = Buffer::create_temp(*r.pool, kHeldBody + 16 * 1024);
  Buffer* b = ctx.held;
  if (static_cast<size_t>(b->end - b->last) < size) {
    // Move what is held to the start, or make room for a piece larger than the rest.
    size_t held = b->last - b->pos;
    if (static_cast<size_t>(b->end - b->start) - held < size) {
      Buffer* bigger = Buffer::create_temp(*r.pool, held + size);
      bigger->last = put(bigger->last, {b->pos, held});
      ctx.held = b = bigger;
    } else {
      std::memmove(b->start, b->pos, held);
      b->pos = b->start;
      b->last = b->start + held;
    }
  }
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    b->last = put(b->last, {cl->buf->pos, static_cast<size_t>(cl->buf->size())});
    cl->buf->pos = cl->buf->last;
  }
  if (last) ctx.body_last = true;
  nghttp2_session_resume_data(ctx.session, ctx.stream);
  u.body_held = static_cast<size_t>(b->last - b->pos) >= kHeldBody;
  if (ctx.out == nullptr) ctx.out = Buffer::create_temp(*r.pool, kOutputSize);
  Buffer* out = ctx.out;
  out->pos = out->last = out->start;
  return take_frames(r, ctx, out);
}

// Frames due besides the body's pieces: the rest of the body as the window opened, window updates,
// acknowledgements. Called once what went before is sent, so the round's buffer is free again.
ChainLink* pending_output(Request& r) {
  GrpcCtx& ctx = grpc_ctx(r);
  Upstream& u = *r.upstream;
  if (ctx.session == nullptr && !start_stream(r, ctx, *u.peer.connection)) {
    u.body_held = true;  // nothing can be sent on this connection
    return nullptr;
  }
  if (!nghttp2_session_want_write(ctx.session)) return nullptr;
  if (ctx.out == nullptr) ctx.out = Buffer::create_temp(*r.pool, kOutputSize);
  Buffer* out = ctx.out;
  out->pos = out->last = out->start;
  ChainLink* frames = take_frames(r, ctx, out);
  if (u.body_held && ctx.held != nullptr &&
      static_cast<size_t>(ctx.held->last - ctx.held->pos) < kHeldBody) {
    u.body_held = false;
  }
  return frames;
}

// Feeds the session the bytes [from, from + n); false when the connection broke (logged).
bool feed(Request& r, GrpcCtx& ctx, const char* from, size_t n) {
  ssize_t rv = nghttp2_session_mem_recv(ctx.session, reinterpret_cast<const uint8_t*>(from), n);
  if (rv < 0) {
    log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid http2 frames: %s",
              nghttp2_strerror(static_cast<int>(rv)));
    return false;
  }
  if (nghttp2_session_want_write(ctx.session)) post_upstream_output(*r.upstream);
  return true;
}

HeaderResult process_header(Request& r) {
  GrpcCtx& ctx = grpc_ctx(r);
  Upstream& u = *r.upstream;
  bool ok = feed(r, ctx, u.buffer.pos, static_cast<size_t>(u.buffer.last - u.buffer.pos));
  // Everything was taken (the body's early pieces copied): the buffer is free again.
  u.buffer.pos = u.buffer.last = u.buffer.start;
  if (!ok || ctx.failed) return HeaderResult::Invalid;
  if (!ctx.header_done) {
    if (ctx.ended) {
      log_error(LogLevel::Error, r.log(), 0, "upstream prematurely closed stream");
      return HeaderResult::Invalid;
    }
    return HeaderResult::Again;
  }
  // Trailers only (an error status, as gRPC sends it): nothing follows the header.
  if (ctx.trailers_only) u.headers_in.content_length_n = 0;
  if (u.headers_in.status < 200) {
    log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid status \"%d\"",
              u.headers_in.status);
    return HeaderResult::Invalid;
  }
  return HeaderResult::Done;
}

// The exchange is over both ways, well framed: the connection may serve another request.
void note_keepalive(GrpcCtx& ctx, Upstream& u) {
  if (ctx.ended && ctx.body_done && !ctx.failed && !ctx.goaway) u.keepalive = true;
}

Rc input_filter_init(Request& r) {
  GrpcCtx& ctx = grpc_ctx(r);
  Upstream& u = *r.upstream;
  r.expect_trailers = true;  // grpc-status comes after the body
  if (ctx.early != nullptr) {
    for (const Early& e : *ctx.early) add_non_buffered_out(r, u, e.data, e.data + e.len);
    ctx.early = nullptr;
  }
  u.length = ctx.ended ? 0 : 1;  // 1: at least END_STREAM is to come
  note_keepalive(ctx, u);
  return Rc::Ok;
}

Rc input_filter(Request& r, size_t bytes) {
  GrpcCtx& ctx = grpc_ctx(r);
  Upstream& u = *r.upstream;
  char* from = u.buffer.last;
  u.buffer.last += bytes;
  if (!feed(r, ctx, from, bytes) || ctx.failed) return Rc::Error;
  if (ctx.ended) u.length = 0;
  note_keepalive(ctx, u);
  return Rc::Ok;
}

// The session stays with the connection (deleted with it, or kept in the keepalive cache when the
// exchange ended cleanly both ways with nothing left to send); it no longer reports to this
// request.
void finalize(Request& r, Code) {
  GrpcCtx* ctx = r.get_ctx<GrpcCtx>();
  if (ctx == nullptr || ctx->session == nullptr) return;
  Upstream& u = *r.upstream;
  if (u.keepalive && nghttp2_session_want_write(ctx->session) && u.peer.connection != nullptr) {
    // What is still due (the acknowledgement of the peer's last SETTINGS, a window update) goes
    // now; the connection is kept only if all of it went.
    if (ctx->out == nullptr) ctx->out = Buffer::create_temp(*r.pool, kOutputSize);
    ctx->out->pos = ctx->out->last = ctx->out->start;
    ChainLink* frames = take_frames(r, *ctx, ctx->out);
    SendResult sent = u.peer.connection->send_chain(frames, 0);
    if (sent.rc == Rc::Error || sent.rest != nullptr) u.keepalive = false;
  }
  if (nghttp2_session_want_write(ctx->session) || !nghttp2_session_want_read(ctx->session)) {
    u.keepalive = false;
  }
  nghttp2_session_set_user_data(ctx->session, nullptr);
  ctx->session = nullptr;
}

constexpr UpstreamProtocol kGrpcProtocol{
    .create_request = create_request,
    .reinit_request = reinit_request,
    .body_filter = body_filter,
    .pending_output = pending_output,
    .process_header = process_header,
    .rewrite_headers = nullptr,
    .input_filter_init = input_filter_init,
    .input_filter = input_filter,
    .pipe_input_filter = nullptr,
    .abort = nullptr,
    .finalize = finalize,
};

// grpc_pass's address taken apart: "[grpc://]host[:port]", or "unix:/path". Views into the text.
struct GrpcUrl {
  bool ssl = false;  // grpcs://
  std::string_view host;
  uint16_t port = 0;           // 0: none written
  std::string_view authority;  // host[:port] as written; "localhost" for a socket
};

Result<GrpcUrl> parse_grpc_url(std::string_view url) {
  GrpcUrl g;
  if (istarts_with(url, "grpcs://")) {
    g.ssl = true;
    url.remove_prefix(8);
  } else if (istarts_with(url, "grpc://")) {
    url.remove_prefix(7);
  }
  if (istarts_with(url, "unix:")) {
    if (url.size() <= 5) return Status::error("no path in the unix domain socket");
    g.host = url;
    g.authority = "localhost";
    return g;
  }
  if (url.empty()) return Status::error("no host in upstream \"\"");
  if (url.find('/') != std::string_view::npos) {
    return Status::errorf("invalid host in upstream \"%.*s\"", static_cast<int>(url.size()),
                          url.data());
  }
  g.host = url;
  g.authority = url;
  size_t colon = url.rfind(':');
  if (colon != std::string_view::npos && url.find(']', colon) == std::string_view::npos) {
    g.host = url.substr(0, colon);
    auto v = parse_int(url.substr(colon + 1));
    if (!v || *v < 1 || *v > 65535) {
      return Status::errorf("invalid port in upstream \"%.*s\"", static_cast<int>(url.size()),
                            url.data());
    }
    g.port = static_cast<uint16_t>(*v);
  }
  return g;
}

Code grpc_handler(Request& r) {
  GrpcLocConf& glcf = grpc_conf(r);
  Upstream* u = create_upstream(r);
  u->conf = &glcf.upstream;
  u->protocol = &kGrpcProtocol;
  u->schema = glcf.ssl ? "grpcs://" : "grpc://";
  u->ssl = glcf.ssl;
  auto* ctx = r.pool->make<GrpcCtx>();
  ctx->r = &r;
  ctx->authority = glcf.host;
  r.set_ctx(ctx);
  std::string_view host = glcf.ssl_host;
  if (glcf.url_value != nullptr) {
    std::string_view url = glcf.url_value->eval(r);
    Result<GrpcUrl> parsed = parse_grpc_url(url);
    if (!parsed.ok()) {
      log_error(LogLevel::Error, r.log(), 0, "%s", parsed.status().message().c_str());
      return Code::status(500);
    }
    ctx->authority = parsed->authority;
    host = parsed->host;
    u->ssl = parsed->ssl;
    u->schema = u->ssl ? "grpcs://" : "grpc://";
    if (UpstreamGroup* g = find_upstream_group(r, parsed->host, parsed->port)) {
      u->group = g;
    } else if (parsed->port == 0 && !istarts_with(parsed->host, "unix:")) {
      // An address needs its port: grpc has no default one (nginx's words).
      log_error(LogLevel::Error, r.log(), 0, "no port in upstream \"%.*s\"",
                static_cast<int>(parsed->host.size()), parsed->host.data());
      return Code::status(500);
    } else {
      u->resolve_host = parsed->host;
      u->resolve_port = parsed->port;
    }
  }
  if (u->ssl) {
    const UpstreamSsl& ssl = glcf.ssl_settings;
    u->ssl_name = ssl.name != nullptr ? ssl.name->eval(r) : host;
  }
  // gRPC streams the body both ways, as nginx's: the request body is never buffered.
  r.request_body_no_buffering = true;
  Code rc = read_client_request_body(r, init_upstream);
  if (rc.is_status() && rc.http_status() >= kHttpSpecialResponse) return rc;
  return Rc::Done;
}

// $grpc_internal_trailers: "trailers" when the client's TE asks for them (the default TE field).
void var_internal_trailers(Request& r, VariableValue& v, uintptr_t) {
  for (Header* h : r.headers_in.headers) {
    if (h->hash == 0 || h->lowcase_key != "te") continue;
    if (h->value.find("trailers") != std::string_view::npos) {
      v.set("trailers");
      return;
    }
  }
  v.set_not_found();
}

constexpr VariableDef kVars[] = {
    {"grpc_internal_trailers", var_internal_trailers, nullptr, kVarNoCacheable},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

// --- directives -------------------------------------------------------------------------------

Status set_pass(ConfContext& cf, const ConfNode& n, GrpcLocConf& glcf) {
  if (glcf.pass_set) return Status::error("is duplicate");
  std::string_view url = n.args[1];
  CoreLocConf& clcf = conf_of<CoreLocConf>(cf.http->loc_conf);
  glcf.pass_set = true;
  set_location_handler(cf, grpc_handler);
  if (!clcf.name.empty() && clcf.name.back() == '/') clcf.auto_redirect = true;
  if (url.find('$') != std::string_view::npos) {
    glcf.url_value = cf.pool.make<ComplexValue>();
    return glcf.url_value->compile(cf, url);
  }
  Result<GrpcUrl> parsed = parse_grpc_url(url);
  if (!parsed.ok()) return parsed.status();
  glcf.host = std::string(parsed->authority);
  glcf.ssl = parsed->ssl;
  glcf.ssl_host = std::string(parsed->host);
  // No default port: an address without one is an error unless it names an upstream block.
  glcf.group = add_upstream_group(cf, parsed->host, parsed->port, 0);
  return {};
}

Status set_header(ConfContext& cf, const ConfNode& n, GrpcLocConf& glcf) {
  return add_set_header(cf, n, glcf.set_headers);
}

GrpcLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<GrpcLocConf>();
}

constexpr const char* kHiddenByDefault[] = {
    "date",
    "server",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
};

Status merge_loc_conf(ConfContext& cf, const GrpcLocConf& prev, GrpcLocConf& conf) {
  if (!conf.pass_set && prev.pass_set && conf.group == nullptr) {
    conf.host = prev.host;
    conf.group = prev.group;
    conf.url_value = prev.url_value;
    conf.ssl = prev.ssl;
    conf.ssl_host = prev.ssl_host;
  }
  if (Status st = merge_upstream_settings(cf, "grpc", SettingsKind::Full, prev.up, conf.up,
                                          kHiddenByDefault, conf.upstream);
      !st.ok()) {
    return st;
  }
  // grpc_set_header: a level with its own lines does not inherit; nginx's defaults come after.
  static constexpr std::pair<const char*, const char*> kDefaults[] = {
      {"Content-Length", "$content_length"}, {"TE", "$grpc_internal_trailers"}};
  Result<std::vector<SetHeader>*> headers =
      merge_set_headers(cf, prev.set_headers, conf.set_headers, kDefaults);
  if (!headers.ok()) return headers.status();
  conf.headers = *headers;
  conf.host_set = false;
  for (const SetHeader& h : *conf.headers) conf.host_set = conf.host_set || h.lowcase_key == "host";
  conf.upstream.group = conf.group;
  conf.upstream.tag = &http_grpc_module;
  conf.upstream.buffering = false;  // gRPC is relayed as it comes, as nginx's
  conf.upstream.preserve_output = true;
  conf.upstream.pass_trailers = true;
  // grpc_ssl_*: a client context offering h2 by ALPN where the location may speak TLS.
  return merge_upstream_ssl(cf, "grpc", prev.ssl_settings, conf.ssl_settings,
                            conf.ssl || conf.url_value != nullptr, "h2", conf.upstream);
}

using G = GrpcLocConf;
using S = UpstreamSettings;
using namespace settings_detail;
constexpr Directive kOwnDirectives[] = {
    directive<set_pass>("grpc_pass", kHttpLocConf | kHttpLifConf | kTake1),
    directive<set_header>("grpc_set_header", kHttpMainSrvLoc | kTake2),
    row<G, &G::up, "grpc", "_intercept_errors", slot::flag<&S::intercept_errors>>(kHttpMainSrvLoc |
                                                                                  kFlag),
    row<G, &G::up, "grpc", "_hide_header", add_hide_header>(kHttpMainSrvLoc | kTake1),
    row<G, &G::up, "grpc", "_pass_header", add_pass_header>(kHttpMainSrvLoc | kTake1),
    row<G, &G::up, "grpc", "_ignore_headers", set_ignore_headers>(kHttpMainSrvLoc | kOneMore),
};
constexpr auto kDirectives = join_directives(
    join_directives(std::to_array(kOwnDirectives),
                    upstream_directives<G, &G::up, "grpc", SettingsKind::Connection>()),
    upstream_ssl_directives<G, &G::ssl_settings, "grpc">());
static_assert(directives_of(kDirectives, &http_grpc_module));

}  // namespace

Module http_grpc_module{
    .name = "http_grpc",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
