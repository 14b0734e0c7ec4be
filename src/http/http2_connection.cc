// HTTP/2 connections and streams over libnghttp2 (see http2.h). nghttp2's callbacks only record
// what arrived and post events: requests run from the event loop, never inside the library, and
// output reaches the library (and the socket) only outside its callbacks. nginx:
// src/http/v2/ngx_http_v2.c
#include <nghttp2/nghttp2.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "core/str.h"
#include "event/event_loop.h"
#include "event/ssl.h"
#include "http/core_module.h"
#include "http/headers_in.h"
#include "http/http2.h"
#include "http/http_connection.h"
#include "http/read_request.h"
#include "http/request.h"

namespace weir::http {

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Frames wait here for the socket; one DATA frame of the largest size always fits.
constexpr size_t kOutSize = 64 * 1024;
constexpr int32_t kMaxWindow = 0x7fffffff;

}  // namespace

// One stream: its request runs on fc, a connection of its own whose ops are the stream's.
struct Http2Stream {
  Http2Connection* h2c = nullptr;
  int32_t id = 0;
  Connection fc;
  HttpConnection hc;

  // The request head as it arrives.
  std::string_view method, path, scheme;
  char* cookie = nullptr;  // the cookie fields joined with "; " (RFC 9113 8.2.3)
  size_t cookie_len = 0;
  size_t header_room = 0;  // large_client_header_buffers' size * num, less what came

  // The request body: DATA bytes not taken by recv yet (the window bounds them).
  std::unique_ptr<char[]> in;
  size_t in_size = 0, in_pos = 0, in_last = 0;
  // A body without Content-Length is handed over chunked (nginx marks such a request chunked):
  // the framing still to go out before the next bytes.
  bool chunked_body = false;
  char framing[24];
  uint8_t framing_pos = 0, framing_len = 0;
  size_t chunk_left = 0;
  bool last_chunk = false;

  // The response body: set during send_chain only, the chain the DATA source reads from.
  ChainLink* out = nullptr;
  off_t out_room = 0;

  bool headers_done = false;
  size_t header_block = 0;  // the request's HEADERS block as sent (compressed): $request_length
  bool headers_end_stream = false;  // END_STREAM came with the HEADERS: no body at all
  bool in_closed = false;           // END_STREAM came
  bool reset = false;               // the client reset it, or the connection went away
  bool out_eof = false;             // the last DATA frame (or a HEADERS with END_STREAM) is queued
  bool responded = false;           // the response head is submitted
  bool data_deferred = false;       // the DATA source said "deferred": resume it
  bool blocked = false;             // waits on h2c's list for room (window or socket)
  bool request_done = false;        // the request is over (fc closed)
  bool closed = false;              // nghttp2 closed it
  Http2Stream* next_blocked = nullptr;
  Http2Stream* next_free = nullptr;
};

struct Http2Connection {
  Connection* c = nullptr;
  HttpConnection* hc = nullptr;
  nghttp2_session* session = nullptr;
  std::unique_ptr<char[]> out_mem;
  size_t out_pos = 0, out_last = 0;
  std::vector<std::unique_ptr<Http2Stream>> all;
  Http2Stream* free_streams = nullptr;
  Http2Stream* blocked = nullptr;
  uint32_t active = 0;    // streams whose requests are running
  uint64_t requests = 0;  // streams begun (keepalive_requests)
  int in_library = 0;     // inside nghttp2's recv or send: no re-entry
  bool closing = false;   // close at the next chance (a fatal error, the client went away)
  bool goaway = false;    // no new streams; close when the last one ends
};

namespace {

Http2Stream& stream_of(Connection& fc) {
  return *static_cast<HttpConnection*>(fc.data)->stream;
}

CoreLocConf& default_loc(const Http2Connection& h2c) {
  return conf_of<CoreLocConf>(h2c.hc->conf_ctx->loc_conf);
}

void flush(Http2Connection& h2c);
void finish(Http2Connection& h2c);

// Runs the real connection's write handler after the current event: flushing, closing.
void schedule(Http2Connection& h2c) {
  if (!h2c.c->write.posted) post_event(h2c.c->write);
}

void wake_blocked(Http2Connection& h2c) {
  Http2Stream* s = h2c.blocked;
  h2c.blocked = nullptr;
  for (; s != nullptr; s = s->next_blocked) {
    s->blocked = false;
    if (s->request_done) continue;
    s->fc.write.ready = true;
    post_event(s->fc.write);
  }
}

void block(Http2Stream& s) {
  if (s.blocked) return;
  s.blocked = true;
  s.next_blocked = s.h2c->blocked;
  s.h2c->blocked = &s;
}

// --- the stream connection's ops ---------------------------------------------------------------

// Hands over request body bytes (framed as chunks when the body has no length).
IoResult stream_recv(Connection& fc, char* buf, size_t size) {
  Http2Stream& s = stream_of(fc);
  if (s.reset) {
    fc.read.ready = false;
    fc.error = true;
    return {Rc::Error, 0};
  }
  size_t n = 0;
  size_t data = 0;
  while (n < size) {
    if (s.framing_pos < s.framing_len) {
      size_t k = std::min<size_t>(size - n, s.framing_len - s.framing_pos);
      std::memcpy(buf + n, s.framing + s.framing_pos, k);
      s.framing_pos += k;
      n += k;
      continue;
    }
    size_t avail = s.in_last - s.in_pos;
    if (s.chunked_body && s.chunk_left == 0) {
      if (avail > 0) {
        s.chunk_left = avail;
        int len = std::snprintf(s.framing, sizeof s.framing, "%s%zx\r\n",
                                s.framing_len > 0 ? "\r\n" : "", avail);
        s.framing_pos = 0;
        s.framing_len = static_cast<uint8_t>(len);
        continue;
      }
      if (s.in_closed && !s.last_chunk) {
        s.last_chunk = true;
        int len = std::snprintf(s.framing, sizeof s.framing, "%s0\r\n\r\n",
                                s.framing_len > 0 ? "\r\n" : "");
        s.framing_pos = 0;
        s.framing_len = static_cast<uint8_t>(len);
        continue;
      }
      break;
    }
    if (avail == 0) break;
    size_t k = std::min(size - n, avail);
    if (s.chunked_body) k = std::min(k, s.chunk_left);
    std::memcpy(buf + n, s.in.get() + s.in_pos, k);
    s.in_pos += k;
    if (s.chunked_body) s.chunk_left -= k;
    n += k;
    data += k;
  }
  if (s.in_pos == s.in_last) s.in_pos = s.in_last = 0;
  if (data > 0) {
    // The window opens by what the request took (nghttp2 sends WINDOW_UPDATE when it is worth it).
    nghttp2_session_consume(s.h2c->session, s.id, data);
    schedule(*s.h2c);
  }
  if (n > 0) return {Rc::Ok, n};
  if (s.in_closed && (!s.chunked_body || s.last_chunk)) {
    fc.read.ready = false;
    fc.read.eof = true;
    return {Rc::Done, 0};
  }
  fc.read.ready = false;
  return {Rc::Again, 0};
}

IoResult stream_recv_chain(Connection& fc, ChainLink* chain, off_t limit) {
  size_t total = 0;
  for (ChainLink* cl = chain; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    size_t room = static_cast<size_t>(b.end - b.last);
    if (limit > 0) room = std::min<size_t>(room, static_cast<size_t>(limit) - total);
    if (room == 0) continue;
    IoResult got = stream_recv(fc, b.last, room);
    if (got.rc != Rc::Ok) return total > 0 ? IoResult{Rc::Ok, total} : got;
    total += got.n;
    if (got.n < room) break;
    if (limit > 0 && total >= static_cast<size_t>(limit)) break;
  }
  return {total > 0 ? Rc::Ok : Rc::Again, total};
}

int stream_peek(Connection& fc) {
  Http2Stream& s = stream_of(fc);
  if (s.reset) return 0;  // as a closed socket: the request notices its client left
  if (s.in_last > s.in_pos) return 1;
  errno = EAGAIN;  // a half-closed stream is no closed connection
  return -1;
}

// The write filter's output: the DATA source reads it during this call's flush; what it did not
// take is returned, and the stream waits on the blocked list for window or socket room.
SendResult stream_send_chain(Connection& fc, ChainLink* in, off_t limit) {
  Http2Stream& s = stream_of(fc);
  Http2Connection& h2c = *s.h2c;
  if (s.reset || h2c.closing) {
    fc.error = true;
    return {Rc::Error, in};
  }
  s.out = in;
  s.out_room = limit > 0 ? limit : std::numeric_limits<off_t>::max();
  if (s.responded && !s.out_eof) {
    if (s.data_deferred) {
      s.data_deferred = false;
      nghttp2_session_resume_data(h2c.session, s.id);
    }
    flush(h2c);
  }
  s.out = nullptr;
  // Links the source emptied are done; a flush or sync buffer is done once reached.
  ChainLink* rest = in;
  while (rest != nullptr) {
    Buffer& b = *rest->buf;
    if (b.size() > 0 || (b.last_buf && !s.out_eof)) break;
    rest = rest->next;
  }
  if (rest != nullptr) {
    fc.write.ready = false;
    block(s);
    return {Rc::Again, rest};
  }
  return {Rc::Ok, nullptr};
}

constexpr ConnectionOps kStreamOps{stream_recv, stream_recv_chain, stream_send_chain, stream_peek};

// nghttp2's DATA source: copies from the chain send_chain lent it, up to the frame nghttp2 offers.
ssize_t read_data(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                  nghttp2_data_source* source, void*) {
  auto* s = static_cast<Http2Stream*>(source->ptr);
  if (s->out == nullptr) {
    s->data_deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  Request* r = s->hc.request;
  size_t want = length;
  if (r != nullptr) want = std::min<size_t>(want, *r->loc<Http2LocConf>().chunk_size);
  want = std::min<size_t>(want, static_cast<size_t>(s->out_room));
  size_t n = 0;
  for (ChainLink* cl = s->out; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    while (b.size() > 0 && n < want) {
      size_t k = std::min<size_t>(want - n, static_cast<size_t>(b.size()));
      if (b.in_memory()) {
        std::memcpy(buf + n, b.pos, k);
        b.pos += k;
      } else {
        ssize_t got = ::pread(b.file->fd, buf + n, k, b.file_pos);
        if (got <= 0) {
          log_error(LogLevel::Crit, *s->fc.log, got < 0 ? errno : 0, "pread() \"%s\" failed",
                    std::string(b.file->name).c_str());
          s->fc.error = true;
          return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        b.file_pos += got;
        k = static_cast<size_t>(got);
      }
      n += k;
    }
    if (b.size() > 0) break;  // the frame is full
    if (b.last_buf) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      s->out_eof = true;
      if (r != nullptr && !r->headers_out.trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nv;
        for (Header* h : r->headers_out.trailers) {
          if (h->hash == 0) continue;
          char* name = r->pool->alloc_bytes(h->key.size());
          for (size_t i = 0; i < h->key.size(); i++) name[i] = to_lower(h->key[i]);
          nv.push_back({reinterpret_cast<uint8_t*>(name),
                        reinterpret_cast<uint8_t*>(const_cast<char*>(h->value.data())),
                        h->key.size(), h->value.size(), NGHTTP2_NV_FLAG_NONE});
        }
        nghttp2_submit_trailer(s->h2c->session, s->id, nv.data(), nv.size());
      }
      break;
    }
  }
  s->out_room -= static_cast<off_t>(n);
  s->fc.io.sent += static_cast<off_t>(n);
  if (n == 0 && !s->out_eof) {
    s->data_deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// --- streams ---------------------------------------------------------------------------------

void stream_event_noop(Event&) {}
void run_request(Event& ev);

Http2Stream* new_stream(Http2Connection& h2c, int32_t id) {
  Http2Stream* s = h2c.free_streams;
  if (s != nullptr) {
    h2c.free_streams = s->next_free;
  } else {
    h2c.all.push_back(std::make_unique<Http2Stream>());
    s = h2c.all.back().get();
  }
  Http2Stream& st = *s;
  Connection& c = *h2c.c;
  HttpConnection& real = *h2c.hc;
  st.h2c = &h2c;
  st.id = id;
  st.method = st.path = st.scheme = {};
  st.cookie = nullptr;
  st.cookie_len = 0;
  const CoreSrvConf& cscf = conf_of<CoreSrvConf>(real.conf_ctx->srv_conf);
  st.header_room = cscf.large_client_header_buffers->size *
                   static_cast<size_t>(cscf.large_client_header_buffers->num);
  st.in_pos = st.in_last = 0;
  st.chunked_body = false;
  st.framing_pos = st.framing_len = 0;
  st.chunk_left = 0;
  st.last_chunk = false;
  st.out = nullptr;
  st.headers_done = st.headers_end_stream = st.in_closed = st.reset = st.out_eof = st.responded =
      false;
  st.data_deferred = st.blocked = st.request_done = st.closed = false;
  st.next_blocked = st.next_free = nullptr;

  HttpConnection& hc = st.hc;
  hc.addr_conf = real.addr_conf;
  hc.conf_ctx = real.conf_ctx;
  hc.request = hc.active = nullptr;
  hc.busy = hc.free = nullptr;
  hc.addr_len = real.addr_len;
  std::memcpy(hc.addr_buf, real.addr_buf, real.addr_len);
  if (real.proxy_protocol != nullptr) {
    hc.proxy_protocol = std::make_unique<ProxyProtocolAddrs>(*real.proxy_protocol);
  }
  hc.stream = &st;
  hc.h2 = nullptr;

  Connection& fc = st.fc;
  fc.data = &hc;
  fc.read = Event{};
  fc.write = Event{};
  fc.write.write = true;
  fc.read.data = fc.write.data = &fc;
  fc.read.handler = fc.write.handler = stream_event_noop;
  // As a registered socket that can take a write (the window and the socket decide later).
  fc.read.active = fc.write.active = true;
  fc.write.ready = true;
  fc.own_log = *c.log;
  fc.own_log.data = &fc;
  fc.own_log.action = nullptr;
  fc.log = &fc.own_log;
  fc.read.log = fc.write.log = fc.log;
  fc.fd = c.fd;  // for the local address; stream connections never touch the socket
  fc.io = SendState{};
  fc.io.fd = -1;
  fc.listening = c.listening;
  fc.peer = c.peer;
  fc.peer_len = c.peer_len;
  fc.addr_text = c.addr_text;
  fc.buffer = nullptr;
  fc.ssl = c.ssl;  // $https, $ssl_*: the connection's
  fc.ops = &kStreamOps;
  fc.number = c.number;
  fc.start_msec = clock::msec();
  fc.buffered = 0;
  fc.error = fc.timedout = fc.destroyed = fc.idle = fc.close = false;
  fc.tcp_nodelay_set = true;
  fc.need_last_buf = true;
  fc.outbound = false;

  fc.requests = h2c.requests;  // $connection_requests counts the connection's streams
  Request* r = create_request(fc);
  r->http_version = 2000;
  r->http_protocol = "HTTP/2.0";
  h2c.active++;
  h2c.requests++;
  if (h2c.c->reclaim != Reclaim::No) ConnectionPool::current->set_reclaim(*h2c.c, Reclaim::No);
  h2c.c->idle = false;
  del_timer(h2c.c->read);
  return &st;
}

void recycle(Http2Stream& s) {
  Http2Connection& h2c = *s.h2c;
  s.in.reset();
  s.in_size = 0;
  s.hc.proxy_protocol.reset();
  s.fc.pool.reset();
  s.next_free = h2c.free_streams;
  h2c.free_streams = &s;
}

// The request is over (its connection closed): the stream ends too, reset if the response or the
// request body is unfinished.
void end_request(Http2Stream& s) {
  Http2Connection& h2c = *s.h2c;
  Connection& fc = s.fc;
  if (fc.read.timer_set) del_timer(fc.read);
  if (fc.write.timer_set) del_timer(fc.write);
  delete_posted_event(fc.read);
  delete_posted_event(fc.write);
  fc.read.handler = fc.write.handler = stream_event_noop;
  fc.destroyed = true;
  s.request_done = true;
  h2c.active--;
  if (s.closed) {
    recycle(s);
  } else if (h2c.session != nullptr) {
    // The stream goes once nghttp2 closes it (its DATA source must not meet a new stream's).
    if (!s.out_eof) {
      nghttp2_submit_rst_stream(h2c.session, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
    } else if (!s.in_closed) {
      nghttp2_submit_rst_stream(h2c.session, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_NO_ERROR);
    }
  }
  schedule(h2c);
}

// The request line nginx shows for an HTTP/2 request ("GET /path HTTP/2.0"), parsed by the same
// parser as HTTP/1's so the URI is checked and normalised alike.
bool parse_request_head(Http2Stream& s, Request& r) {
  std::string_view path = s.path;
  size_t len = s.method.size() + 1 + path.size() + sizeof " HTTP/1.1\r\n" - 1;
  char* p = r.pool->alloc_bytes(len);
  char* q = put(p, s.method);
  *q++ = ' ';
  put(put(q, path), " HTTP/1.1\r\n");
  auto* b = r.pool->make<Buffer>();
  b->start = b->pos = p;
  b->last = b->end = p + len;
  b->temporary = true;
  r.header_in = b;
  ParseResult rc = parse_request_line(r.line, *b);
  RequestLineState& l = r.line;
  if (rc != ParseResult::Ok || l.schema_end != nullptr) {
    r.request_line = {p, len - 2};
    log_error(LogLevel::Info, r.log(), 0,
              rc == ParseResult::InvalidMethod ? "client sent invalid method"
                                               : "client sent invalid :path header");
    finalize_request(r, Code::status(400));
    return false;
  }
  put(p + len - 5, "2.0");  // what the logs show
  r.request_line = {l.request_start, static_cast<size_t>(l.request_end - l.request_start)};
  r.method = l.method;
  r.method_name = {l.request_start, static_cast<size_t>(l.method_end + 1 - l.request_start)};
  r.request_length = static_cast<off_t>(s.header_block);  // as nginx counts it, body added
  r.schema = s.scheme;
  return true;
}

void run_request(Event& ev) {
  auto& fc = *static_cast<Connection*>(ev.data);
  Http2Stream& s = stream_of(fc);
  Request& r = *s.hc.request;
  fc.read.handler = request_event_handler;
  fc.write.handler = request_event_handler;
  if (s.reset) {
    // Reset before its head was whole: by the client (499), or by nghttp2 for a malformed one.
    close_request(r, s.headers_done ? kHttpClientClosedRequest : 400);
    return;
  }
  if (!parse_request_head(s, r)) {
    run_posted_requests(fc);
    return;
  }
  // process_request_uri's part: the same normalisation as HTTP/1's.
  if (process_request_uri(r) != Rc::Ok) {
    run_posted_requests(fc);
    return;
  }
  if (s.cookie != nullptr) {
    Header* h = r.headers_in.headers.push(*r.pool, "cookie", {s.cookie, s.cookie_len});
    h->lowcase_key = h->key;
  }
  const CoreSrvConf& cscf = core_srv(r);
  for (Header* h : r.headers_in.headers) {
    if (r.headers_in.count++ >= *cscf.max_headers) {
      log_error(LogLevel::Info, r.log(), 0, "client sent too many header lines");
      finalize_request(r, Code::status(400));
      run_posted_requests(fc);
      return;
    }
    if (process_known_header(r, h) != Rc::Ok) {
      run_posted_requests(fc);
      return;
    }
  }
  if (process_request_header(r) != Rc::Ok) {
    run_posted_requests(fc);
    return;
  }
  if (r.headers_in.content_length_n > 0 && s.headers_end_stream) {
    log_error(LogLevel::Info, r.log(), 0, "client prematurely closed stream");
    finalize_request(r, Code::status(400));
    run_posted_requests(fc);
    return;
  }
  if (r.headers_in.content_length_n == -1 && !s.headers_end_stream) {
    r.headers_in.chunked = true;
    s.chunked_body = true;
  }
  fc.read.ready = s.in_last > s.in_pos || s.in_closed;
  process_request(r);
}

// --- nghttp2's callbacks -----------------------------------------------------------------------

Http2Stream* stream_by_id(Http2Connection& h2c, int32_t id) {
  return static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(h2c.session, id));
}

int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto& h2c = *static_cast<Http2Connection*>(ud);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (h2c.goaway || h2c.closing) {
    nghttp2_submit_rst_stream(h2c.session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  // Streams the client reset still hold their requests until these end: a client that ignores
  // SETTINGS_MAX_CONCURRENT_STREAMS is refused, as nginx does.
  size_t limit = *conf_of<Http2SrvConf>(h2c.hc->conf_ctx->srv_conf).max_concurrent_streams;
  if (h2c.active >= limit) {
    log_error(LogLevel::Info, *h2c.c->log, 0, "concurrent streams exceeded %u", h2c.active);
    nghttp2_submit_rst_stream(h2c.session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  Http2Stream* s = new_stream(h2c, frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(h2c.session, frame->hd.stream_id, s);
  // keepalive_requests: this stream is the last the connection takes.
  if (h2c.requests >= *default_loc(h2c).keepalive_requests) {
    h2c.goaway = true;
    nghttp2_submit_goaway(h2c.session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR,
                          nullptr, 0);
  }
  return 0;
}

std::string_view dup(Pool& pool, const uint8_t* p, size_t n) {
  return pool.dup({reinterpret_cast<const char*>(p), n});
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  auto& h2c = *static_cast<Http2Connection*>(ud);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Http2Stream* s = stream_by_id(h2c, frame->hd.stream_id);
  if (s == nullptr || s->hc.request == nullptr) return 0;
  Request& r = *s->hc.request;
  const CoreSrvConf& cscf = conf_of<CoreSrvConf>(h2c.hc->conf_ctx->srv_conf);
  if (namelen > cscf.large_client_header_buffers->size ||
      valuelen > cscf.large_client_header_buffers->size) {
    log_error(LogLevel::Info, *h2c.c->log, 0, "client sent too large header field");
    nghttp2_session_terminate_session(h2c.session, NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
  }
  if (namelen + valuelen > s->header_room) {
    log_error(LogLevel::Info, *h2c.c->log, 0, "client sent too large header");
    nghttp2_session_terminate_session(h2c.session, NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
  }
  s->header_room -= namelen + valuelen;
  std::string_view key(reinterpret_cast<const char*>(name), namelen);
  if (key.starts_with(':')) {
    if (key == ":method") {
      s->method = dup(*r.pool, value, valuelen);
    } else if (key == ":path") {
      s->path = dup(*r.pool, value, valuelen);
    } else if (key == ":scheme") {
      s->scheme = dup(*r.pool, value, valuelen);
    } else if (key == ":authority") {
      Header* h = r.headers_in.headers.push(*r.pool, "host", dup(*r.pool, value, valuelen));
      h->lowcase_key = h->key;
    }
    return 0;
  }
  if (key == "cookie") {
    size_t len = s->cookie_len + (s->cookie_len > 0 ? 2 : 0) + valuelen;
    char* p = r.pool->alloc_bytes(len);
    if (s->cookie_len > 0) {
      std::memcpy(p, s->cookie, s->cookie_len);
      put(p + s->cookie_len, "; ");
    }
    std::memcpy(p + len - valuelen, value, valuelen);
    s->cookie = p;
    s->cookie_len = len;
    return 0;
  }
  // Taken in run_request, outside the library, as HTTP/1's lines are.
  std::string_view k = dup(*r.pool, name, namelen);
  Header* h = r.headers_in.headers.push(*r.pool, k, dup(*r.pool, value, valuelen));
  h->lowcase_key = k;
  return 0;
}

int on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                  void* ud) {
  auto& h2c = *static_cast<Http2Connection*>(ud);
  Http2Stream* s = stream_by_id(h2c, id);
  if (s == nullptr || s->hc.request == nullptr) {
    nghttp2_session_consume(h2c.session, id, len);
    return 0;
  }
  if (s->in_last + len > s->in_size) {
    if (s->in_pos > 0) {
      std::memmove(s->in.get(), s->in.get() + s->in_pos, s->in_last - s->in_pos);
      s->in_last -= s->in_pos;
      s->in_pos = 0;
    }
    if (s->in_last + len > s->in_size) {
      size_t size = std::max(s->in_size * 2, s->in_last + len);
      auto bigger = std::make_unique<char[]>(size);
      if (s->in_last > 0) std::memcpy(bigger.get(), s->in.get(), s->in_last);
      s->in = std::move(bigger);
      s->in_size = size;
    }
  }
  std::memcpy(s->in.get() + s->in_last, data, len);
  s->in_last += len;
  if (s->headers_done) {
    s->fc.read.ready = true;
    post_event(s->fc.read);
  }
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto& h2c = *static_cast<Http2Connection*>(ud);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      Http2Stream* s = stream_by_id(h2c, frame->hd.stream_id);
      if (s == nullptr || s->hc.request == nullptr) return 0;
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->in_closed = true;
      if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        size_t priority = (frame->hd.flags & NGHTTP2_FLAG_PRIORITY) != 0 ? 5 : 0;
        s->header_block =
            frame->hd.length - std::min(frame->hd.length, frame->headers.padlen + priority);
        s->headers_done = true;
        s->headers_end_stream = s->in_closed;
        s->fc.read.handler = run_request;
        post_event(s->fc.read);
      } else if (s->headers_done && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        s->fc.read.ready = true;
        post_event(s->fc.read);
      }
      return 0;
    }
    case NGHTTP2_WINDOW_UPDATE:
    case NGHTTP2_SETTINGS:
      wake_blocked(h2c);
      return 0;
    default:
      return 0;
  }
}

int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* ud) {
  auto& h2c = *static_cast<Http2Connection*>(ud);
  Http2Stream* s = stream_by_id(h2c, id);
  if (s == nullptr) return 0;
  s->closed = true;
  if (s->request_done) {
    recycle(*s);
    return 0;
  }
  // Closed under a running request: the client reset it (or the stream failed).
  if (!s->out_eof || error_code != NGHTTP2_NO_ERROR) {
    if (error_code == NGHTTP2_CANCEL) {
      log_error(LogLevel::Info, *s->fc.log, 0, "client canceled stream %d", id);
    } else if (error_code != NGHTTP2_NO_ERROR) {
      log_error(LogLevel::Info, *s->fc.log, 0, "client terminated stream %d with status %u", id,
                error_code);
    }
    s->reset = true;
    s->fc.error = true;
    s->fc.read.ready = s->fc.write.ready = true;
    // A request still being read ends in run_request; a running one notices on its events.
    if (!s->headers_done) s->fc.read.handler = run_request;
    post_event(s->fc.read);
    post_event(s->fc.write);
  }
  return 0;
}

// Frames go into the output buffer, and from there to the socket when it fills.
ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t length, int, void* ud) {
  auto& h2c = *static_cast<Http2Connection*>(ud);
  if (h2c.out_last == kOutSize) {
    if (h2c.out_pos == h2c.out_last) {
      h2c.out_pos = h2c.out_last = 0;
    } else {
      return NGHTTP2_ERR_WOULDBLOCK;
    }
  }
  size_t n = std::min(length, kOutSize - h2c.out_last);
  std::memcpy(h2c.out_mem.get() + h2c.out_last, data, n);
  h2c.out_last += n;
  return static_cast<ssize_t>(n);
}

// --- the connection ----------------------------------------------------------------------------

// Writes the output buffer; false when the socket failed.
bool write_out(Http2Connection& h2c) {
  Connection& c = *h2c.c;
  while (h2c.out_pos < h2c.out_last || (c.buffered & kLowlevelBuffered)) {
    if (!c.write.ready) return true;
    Buffer b;
    b.start = b.pos = h2c.out_mem.get() + h2c.out_pos;
    b.last = b.end = h2c.out_mem.get() + h2c.out_last;
    b.memory = true;
    b.flush = true;
    ChainLink cl{&b, nullptr};
    SendResult sr = c.send_chain(h2c.out_pos < h2c.out_last ? &cl : nullptr, 0);
    if (sr.rc == Rc::Error) return false;
    h2c.out_pos = static_cast<size_t>(b.pos - h2c.out_mem.get());  // what send_chain took
    if (h2c.out_pos == h2c.out_last) h2c.out_pos = h2c.out_last = 0;
    if (sr.rc == Rc::Again) return true;  // the socket is full: its write event goes on
    if (h2c.out_last == 0 && !(c.buffered & kLowlevelBuffered)) break;
  }
  return true;
}

// Serialises what nghttp2 has queued into the output buffer. The socket gets it when the buffer is
// full, else once at the end of this round of events, so that the frames of many streams go in one
// write (a full socket's write event continues instead).
void flush(Http2Connection& h2c) {
  Connection& c = *h2c.c;
  if (h2c.in_library > 0 || h2c.closing) {
    schedule(h2c);
    return;
  }
  h2c.in_library++;
  for (;;) {
    if (nghttp2_session_want_write(h2c.session)) {
      if (int rv = nghttp2_session_send(h2c.session); rv != 0) {
        log_error(LogLevel::Info, *c.log, 0, "http2 send failed: %s", nghttp2_strerror(rv));
        h2c.closing = true;
        break;
      }
    }
    if (h2c.out_last < kOutSize) break;  // nghttp2 has nothing more it can send now
    if (!write_out(h2c)) {
      h2c.closing = true;
      break;
    }
    if (h2c.out_last > 0) break;  // the socket is full
  }
  h2c.in_library--;
  if (h2c.closing) {
    schedule(h2c);
  } else if ((h2c.out_last > 0 || (c.buffered & kLowlevelBuffered)) && c.write.ready &&
             !c.write.posted && !c.write.posted_next_round) {
    post_event_next_round(c.write);
  }
}

void release(HttpConnection& hc);

// Closes the connection. After a GOAWAY it lingers (half-closed, draining what the client still
// sends) so that the client reads the GOAWAY rather than a reset, as nginx does.
void close_now(Http2Connection& h2c, bool linger) {
  Connection& c = *h2c.c;
  if (!linger || c.error || c.timedout || c.read.eof) {
    close_http_connection(c);
    return;
  }
  HttpConnection& hc = *h2c.hc;
  const CoreLocConf& clcf = default_loc(h2c);
  uint64_t time = *clcf.lingering_time, timeout = *clcf.lingering_timeout;
  release(hc);
  lingering_close_connection(c, time, timeout);
}

// Whether the connection is done: closing, or going away with no stream left, or the library is
// done with it (it sent a GOAWAY for an error); otherwise the idle state when no stream runs.
void finish(Http2Connection& h2c) {
  Connection& c = *h2c.c;
  if (h2c.closing) {
    close_now(h2c, h2c.goaway);
    return;
  }
  bool want = nghttp2_session_want_read(h2c.session) || nghttp2_session_want_write(h2c.session);
  bool written = h2c.out_last == 0 && !(c.buffered & kLowlevelBuffered);
  if (!want && written) {
    close_now(h2c, true);
    return;
  }
  if (h2c.active > 0) return;
  if (worker_exiting() && !h2c.goaway) {
    h2c.goaway = true;
    nghttp2_submit_goaway(h2c.session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h2c.session), NGHTTP2_NO_ERROR,
                          nullptr, 0);
    flush(h2c);
    written = h2c.out_last == 0 && !(c.buffered & kLowlevelBuffered);
  }
  if (h2c.goaway && written) {
    close_now(h2c, true);
    return;
  }
  if (!c.idle) {
    c.idle = true;
    c.log->action = "keepalive";
    ConnectionPool::current->set_reclaim(c, Reclaim::Idle);
    add_timer(c.read, *default_loc(h2c).keepalive_timeout);
    c.read.cancelable = true;
  }
}

Http2Connection& h2c_of(Connection& c) {
  return *http_connection_of(c)->h2;
}

void write_handler(Event& ev) {
  auto& c = *static_cast<Connection*>(ev.data);
  Http2Connection& h2c = h2c_of(c);
  if (ev.timedout) {
    log_error(LogLevel::Info, *c.log, ETIMEDOUT, "client timed out");
    c.timedout = true;
    h2c.closing = true;
  }
  if (!h2c.closing && !write_out(h2c)) h2c.closing = true;
  if (!h2c.closing && h2c.out_last == 0) {
    flush(h2c);  // what nghttp2 holds beyond the buffer
    if (h2c.out_last < kOutSize && c.write.ready) wake_blocked(h2c);
  }
  finish(h2c);
}

// Each worker reads into one buffer: nghttp2 keeps what it needs of each read.
char* recv_buffer(size_t size) {
  static std::unique_ptr<char[]> buf;
  static size_t buf_size = 0;
  if (buf_size < size) {
    buf = std::make_unique<char[]>(size);
    buf_size = size;
  }
  return buf.get();
}

void feed(Http2Connection& h2c, const char* p, size_t n) {
  h2c.in_library++;
  ssize_t rv = nghttp2_session_mem_recv(h2c.session, reinterpret_cast<const uint8_t*>(p), n);
  h2c.in_library--;
  if (rv < 0) {
    // A broken preface or a fatal protocol error: nghttp2 has queued GOAWAY where it could.
    log_error(LogLevel::Info, *h2c.c->log, 0, "client sent invalid HTTP/2 data: %s",
              nghttp2_strerror(static_cast<int>(rv)));
    h2c.goaway = true;
    flush(h2c);
    h2c.closing = true;
  }
}

void read_handler(Event& ev) {
  auto& c = *static_cast<Connection*>(ev.data);
  Http2Connection& h2c = h2c_of(c);
  if (ev.timedout || c.close) {
    if (ev.timedout && !c.idle) log_error(LogLevel::Info, *c.log, ETIMEDOUT, "client timed out");
    if (h2c.active == 0 && !c.close) {
      close_now(h2c, false);
      return;
    }
    if (c.close && h2c.active == 0 && !h2c.goaway) {
      // Graceful shutdown of an idle connection: GOAWAY first.
      h2c.goaway = true;
      nghttp2_submit_goaway(h2c.session, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(h2c.session), NGHTTP2_NO_ERROR,
                            nullptr, 0);
      flush(h2c);
      if (write_out(h2c) && h2c.out_last == 0) {
        close_now(h2c, true);  // lingering, so that the client reads the GOAWAY
        return;
      }
    }
    close_now(h2c, false);
    return;
  }
  size_t size = *conf_of<Http2MainConf>(h2c.hc->conf_ctx->main_conf).recv_buffer_size;
  char* buf = recv_buffer(size);
  while (c.read.ready && !h2c.closing) {
    IoResult got = c.recv(buf, size);
    if (got.rc == Rc::Again) break;
    if (got.rc != Rc::Ok) {
      // The client went away: every stream ends with it.
      h2c.closing = true;
      break;
    }
    if (c.idle) {
      c.idle = false;
      c.log->action = "processing HTTP/2 connection";
      c.read.cancelable = false;
      del_timer(c.read);
      if (c.reclaim != Reclaim::No) ConnectionPool::current->set_reclaim(c, Reclaim::No);
    }
    feed(h2c, buf, got.n);
  }
  flush(h2c);
  finish(h2c);
}

// Every running request ends now (its upstream and cleanups with it), then the session goes.
void release(HttpConnection& hc) {
  Http2Connection* h2c = hc.h2;
  h2c->closing = true;
  for (auto& sp : h2c->all) {
    Http2Stream& s = *sp;
    if (s.request_done || s.hc.request == nullptr) continue;
    s.reset = true;
    s.fc.error = true;
    s.fc.close = true;
    request_event_handler(s.fc.read);
  }
  hc.h2 = nullptr;
  if (h2c->session != nullptr) nghttp2_session_del(h2c->session);
  delete h2c;
}

}  // namespace

int http2_preface(std::string_view first) {
  size_t n = std::min(first.size(), kPreface.size());
  if (first.substr(0, n) != kPreface.substr(0, n)) return -1;
  return n == kPreface.size() ? 1 : 0;
}

void http2_init(Connection& c) {
  HttpConnection& hc = *http_connection_of(c);
  auto* h2c = new Http2Connection;
  h2c->c = &c;
  h2c->hc = &hc;
  h2c->out_mem = std::make_unique<char[]>(kOutSize);
  hc.h2 = h2c;

  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(cb, on_send);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // Flood limits (CVE-2023-44487 rapid reset, CONTINUATION floods, SETTINGS floods).
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  int rv = nghttp2_session_server_new2(&h2c->session, cb, h2c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    log_error(LogLevel::Alert, *c.log, 0, "nghttp2_session_server_new2() failed: %s",
              nghttp2_strerror(rv));
    close_http_connection(c);
    return;
  }
  const CoreSrvConf& cscf = conf_of<CoreSrvConf>(hc.conf_ctx->srv_conf);
  const Http2SrvConf& h2scf = conf_of<Http2SrvConf>(hc.conf_ctx->srv_conf);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
       static_cast<uint32_t>(*h2scf.max_concurrent_streams)},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(*h2scf.body_preread_size)},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 16384},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(cscf.large_client_header_buffers->size *
                             cscf.large_client_header_buffers->num)},
  };
  nghttp2_submit_settings(h2c->session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection's window is as large as it goes: each stream's window does the limiting.
  nghttp2_session_set_local_window_size(h2c->session, NGHTTP2_FLAG_NONE, 0, kMaxWindow);

  c.read.handler = read_handler;
  c.write.handler = write_handler;
  c.log->action = "processing HTTP/2 connection";
  // Frames are written as they are ready: Nagle would hold a small one back for an ACK.
  if (*conf_of<CoreLocConf>(hc.conf_ctx->loc_conf).tcp_nodelay) c.set_tcp_nodelay();
  del_timer(c.read);
  if (c.reclaim != Reclaim::No) ConnectionPool::current->set_reclaim(c, Reclaim::No);
  c.idle = false;
  // What was read before HTTP/2 was recognised (the preface, perhaps frames).
  if (c.buffer != nullptr && c.buffer->last > c.buffer->pos) {
    feed(*h2c, c.buffer->pos, static_cast<size_t>(c.buffer->last - c.buffer->pos));
    c.buffer->pos = c.buffer->last;
  }
  c.buffer = nullptr;
  c.pool.reset();
  read_handler(c.read);
}

void http2_close_connection(Connection& c) {
  release(*http_connection_of(c));
}

void http2_close_stream_connection(Connection& fc) {
  HttpConnection& hc = *static_cast<HttpConnection*>(fc.data);
  Http2Stream& s = *hc.stream;
  if (hc.request != nullptr) free_request(*hc.request);
  end_request(s);
}

Code http2_submit_response(Request& r, std::span<const Http2Field> fields) {
  Http2Stream& s = *r.http_connection->stream;
  Http2Connection& h2c = *s.h2c;
  if (s.reset || h2c.closing || h2c.session == nullptr) {
    r.connection->error = true;
    return Rc::Error;
  }
  auto* nv = r.pool->make_array<nghttp2_nv>(fields.size());
  size_t size = 0;
  for (size_t i = 0; i < fields.size(); i++) {
    const Http2Field& f = fields[i];
    nv[i] = {reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
             reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
             f.value.size(), NGHTTP2_NV_FLAG_NONE};
    size += f.name.size() + f.value.size() + 2;
  }
  nghttp2_data_provider body{};
  body.source.ptr = &s;
  body.read_callback = read_data;
  int rv = nghttp2_submit_response(h2c.session, s.id, nv, fields.size(),
                                   r.header_only ? nullptr : &body);
  if (rv != 0) {
    log_error(LogLevel::Alert, r.log(), 0, "nghttp2_submit_response() failed: %s",
              nghttp2_strerror(rv));
    return Rc::Error;
  }
  s.responded = true;
  if (r.header_only) s.out_eof = true;
  r.header_size = static_cast<off_t>(size);
  r.connection->io.sent += static_cast<off_t>(size);
  flush(h2c);
  return Rc::Ok;
}

std::string_view http2_variable(const Request& r) {
  const HttpConnection* hc = r.http_connection;
  if (hc == nullptr || hc->stream == nullptr) return {};
  return r.connection->ssl != nullptr ? "h2" : "h2c";
}

}  // namespace weir::http
