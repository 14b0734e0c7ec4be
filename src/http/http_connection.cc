#include "http/http_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/escape.h"
#include "core/str.h"
#include "event/event_loop.h"
#include "event/listening.h"
#include "event/ssl_ocsp.h"
#include "http/core_module.h"
#include "http/http2.h"
#include "http/read_request.h"
#include "http/request.h"
#include "http/request_body.h"
#include "http/ssl_module.h"
#include "http/variables.h"

namespace weir::http {

namespace {

// HttpConnection objects are recycled per process, and made in blocks: an idle keep-alive
// connection holds one of these (no allocator header with it) and its preallocated Connection,
// nothing else. #15's budget for that is 200 bytes of user memory.
static_assert(sizeof(HttpConnection) <= 184, "an idle keep-alive connection holds one");
std::vector<HttpConnection*> g_free_hc;
std::vector<std::unique_ptr<HttpConnection[]>> g_hc_blocks;
constexpr size_t kHcBlock = 64;

HttpConnection* alloc_http_connection() {
  if (!kRecycleMemory) return new HttpConnection();
  if (g_free_hc.empty()) {
    g_hc_blocks.push_back(std::make_unique<HttpConnection[]>(kHcBlock));
    HttpConnection* block = g_hc_blocks.back().get();
    for (size_t i = kHcBlock; i-- > 0;) g_free_hc.push_back(&block[i]);
  }
  HttpConnection* hc = g_free_hc.back();
  g_free_hc.pop_back();
  return hc;
}

void release_http_connection(HttpConnection* hc) {
  if (!kRecycleMemory) {
    delete hc;  // sanitizer builds recycle nothing, so a use after free is caught
    return;
  }
  hc->request_pool.reset();
  hc->request = hc->active = nullptr;
  hc->busy = hc->free = nullptr;
  hc->lingering = nullptr;
  hc->addr_conf = nullptr;
  hc->conf_ctx = nullptr;
  hc->proxy_protocol_pending = false;
  hc->plain_http = false;
  hc->h2 = nullptr;
  hc->stream = nullptr;
  g_free_hc.push_back(hc);
}

void wait_request_handler(Event& ev);
void lingering_close_handler(Event& ev);
void empty_handler(Event&) {}

Buffer* ensure_buffer(Connection& c, size_t size) {
  if (c.buffer == nullptr) c.buffer = Buffer::create_temp(c.pool, size);
  return c.buffer;
}

// Whether bytes of a next request are waiting in the socket (or already in the buffer).
bool has_pending_request(Connection& c) {
  if (c.buffer != nullptr && c.buffer->pos < c.buffer->last) return true;
  return c.peek() == 1;
}

}  // namespace

// Half-closes the connection and reads (and drops) what the client still sends until it closes too:
// for at most `time` ms in all, `timeout` ms between reads. A request crossing our close then meets
// an orderly end of stream, and data still arriving cannot make the kernel reset what was sent.
void lingering_close_connection(Connection& c, uint64_t time, uint64_t timeout) {
  auto* hc = http_connection_of(c);
  // Made now, in the pool no request holds any more: never a pointer kept across a reset of it.
  hc->lingering = hc->request_pool.make<HttpConnection::Lingering>();
  hc->lingering->deadline = clock::msec() + time;
  hc->lingering->timeout = timeout;
  c.read.handler = lingering_close_handler;
  c.write.handler = empty_handler;
  if (::shutdown(c.fd, SHUT_WR) < 0) {
    log_error(LogLevel::Info, *c.log, errno, "shutdown() failed");
    close_http_connection(c);
    return;
  }
  c.close = false;
  c.idle = false;
  c.read.cancelable = false;
  ConnectionPool::current->set_reclaim(c, Reclaim::Idle);
  add_timer(c.read, timeout);
  if (c.read.ready) lingering_close_handler(c.read);
}

namespace {

// The PROXY protocol header at the start of the buffer (listen ... proxy_protocol): Ok once it is
// read (b.pos past it), Again while more of it is to come, Error (logged in nginx's words) when it
// is not one. The client_header_timeout that runs from the accept bounds the wait.
Rc read_proxy_protocol(Connection& c, HttpConnection& hc, Buffer& b) {
  std::string_view in(b.pos, static_cast<size_t>(b.last - b.pos));
  ProxyProtocolParse p =
      parse_proxy_protocol(in, static_cast<size_t>(b.end - b.pos), *hc.proxy_protocol);
  switch (p.rc) {
    case ProxyProtocolRc::Incomplete:
      return Rc::Again;
    case ProxyProtocolRc::Done:
      b.pos += p.length;
      hc.proxy_protocol_pending = false;
      c.log->action = "waiting for request";
      return Rc::Ok;
    case ProxyProtocolRc::Broken: {
      in = in.substr(0, 2 * kProxyProtocolV1Max);
      char text[8 * kProxyProtocolV1Max];
      log_error(LogLevel::Error, *c.log, 0, "broken header: \"%.*s\"",
                static_cast<int>(escape_for_log(text, in)), text);
      return Rc::Error;
    }
    case ProxyProtocolRc::UnknownVersion:
      log_error(LogLevel::Error, *c.log, 0, "unknown PROXY protocol version: %u", p.version);
      return Rc::Error;
    case ProxyProtocolRc::TooLarge:
      log_error(LogLevel::Error, *c.log, 0, "header is too large");
      return Rc::Error;
  }
  return Rc::Error;
}

// Reading the first bytes of a request on a new or idle keep-alive connection.
void wait_request_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* hc = http_connection_of(*c);
  WEIR_DEBUG(*c->log, c->requests > 0 ? "http keepalive handler" : "http wait request handler");
  if (c->close && c->idle && worker_exiting()) {
    // Graceful shutdown. nginx closes the idle connection outright, and a request that has just
    // arrived (or crosses the close) is answered by a reset. Here a request already received is
    // served, with "Connection: close"; otherwise the connection is half-closed and drained, so a
    // crossing request sees an orderly end of stream, which clients retry.
    c->close = false;
    if (c->read.pending_eof || !has_pending_request(*c)) {
      // One lingering_timeout in all; the first read also catches a request that came after the
      // peek.
      uint64_t timeout = *conf_of<CoreLocConf>(hc->conf_ctx->loc_conf).lingering_timeout;
      c->read.ready = true;
      lingering_close_connection(*c, timeout, timeout);
      return;
    }
  }
  if (ev.timedout || c->close) {
    if (ev.timedout && !c->idle) log_error(LogLevel::Info, *c->log, ETIMEDOUT, "client timed out");
    close_http_connection(*c);
    return;
  }
  // A peer that half-closed (EPOLLRDHUP) may still have a pipelined request in the socket: the read
  // below finds it, or the end of the stream.
  size_t size = *default_server(*hc).client_header_buffer_size;
  Buffer* b = ensure_buffer(*c, size);
  if (b->last == b->end) b->pos = b->last = b->start;
  IoResult got = c->recv(b->last, b->end - b->last);
  if (got.rc == Rc::Again) {
    if (!ev.timer_set && !c->idle) add_timer(ev, *default_server(*hc).client_header_timeout);
    // Hold no buffer memory while waiting.
    if (b->pos == b->last) {
      c->pool.reset();
      c->buffer = nullptr;
    }
    return;
  }
  if (got.rc == Rc::Error) {
    close_http_connection(*c);
    return;
  }
  if (got.rc == Rc::Done) {
    if (c->idle) {
      // nginx's keep-alive line names the client itself and carries no context.
      c->log->handler = nullptr;
      c->log->action = nullptr;
      std::string_view addr = hc->addr_text(*c);
      log_error(LogLevel::Info, *c->log, 0, "client %.*s closed keepalive connection",
                static_cast<int>(addr.size()), addr.data());
    } else {
      log_error(LogLevel::Info, *c->log, 0, "client closed connection");
    }
    close_http_connection(*c);
    return;
  }
  b->last += got.n;
  if (hc->proxy_protocol_pending) {
    Rc rc = read_proxy_protocol(*c, *hc, *b);
    if (rc == Rc::Error) {
      close_http_connection(*c);
      return;
    }
    if (rc == Rc::Again) return;
    if (b->pos == b->last) {  // nothing after the header yet
      b->pos = b->last = b->start;
      if (c->read.ready) wait_request_handler(ev);
      return;
    }
  }
  if (c->requests == 0 && !hc->plain_http && c->ssl == nullptr && http2_allowed(*hc)) {
    // HTTP/2 with prior knowledge: the client preface instead of the first request line.
    int preface = http2_preface({b->pos, static_cast<size_t>(b->last - b->pos)});
    if (preface == 1) {
      http2_init(*c);
      return;
    }
    if (preface == 0) {  // wait for the rest of it
      if (c->read.ready) wait_request_handler(ev);
      return;
    }
  }
  c->log->handler = log_error_handler;
  c->log->action = "reading client request line";
  // client_header_timeout bounds the whole header phase: from the accept for a new connection (as
  // in nginx), from this first byte for a keep-alive one (whose timer was keepalive_timeout).
  if (c->idle) del_timer(c->read);
  c->idle = false;
  c->read.cancelable = false;
  // A new connection keeps its place on the waiting list (its age counts from the accept); a
  // keep-alive one leaves the idle list, and joins the waiting one only if its header turns out
  // incomplete.
  if (c->reclaim == Reclaim::Idle) ConnectionPool::current->set_reclaim(*c, Reclaim::No);
  create_request(*c);
  c->read.handler = process_request_line;
  process_request_line(c->read);
}

void lingering_close_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* hc = http_connection_of(*c);
  WEIR_DEBUG(*c->log, "http lingering close handler");
  if (ev.timedout || c->close) {
    close_http_connection(*c);
    return;
  }
  uint64_t now = clock::msec();
  if (now >= hc->lingering->deadline) {
    close_http_connection(*c);
    return;
  }
  char buf[4096];
  do {
    IoResult got = c->recv(buf, sizeof buf);
    if (got.rc == Rc::Again) break;
    if (got.rc != Rc::Ok) {
      close_http_connection(*c);
      return;
    }
  } while (c->read.ready);
  uint64_t timer = hc->lingering->deadline - now;
  if (timer > hc->lingering->timeout) timer = hc->lingering->timeout;
  add_timer(c->read, timer);
}

// The handshake is over (and the client's certificate checked): HTTP/2 or requests.
void after_handshake(Connection& c) {
  if (ssl_alpn(c) == "h2") {
    http2_init(c);
    return;
  }
  c.log->action = "waiting for request";
  c.read.handler = wait_request_handler;
  c.write.handler = empty_handler;
  // The request may be in already (with the handshake's last flight, or buffered by OpenSSL).
  c.read.ready = true;
  wait_request_handler(c.read);
}

// While the certificate's OCSP answers are fetched, the client's bytes wait in the socket; only a
// timeout or a worker that exits ends the wait.
void wait_ocsp_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  if (ev.timedout) {
    log_error(LogLevel::Info, *c->log, ETIMEDOUT, "client timed out");
    close_http_connection(*c);
    return;
  }
  if (c->close) close_http_connection(*c);
}

// listen ... ssl: the PROXY protocol header first when the address has one (peeked, then taken
// off the socket, so OpenSSL reads from the TLS record on), then the first byte says TLS (a
// handshake record, or an SSLv2-style hello) or plain HTTP, which is read as a request and answered
// 400 "The plain HTTP request was sent to HTTPS port", as nginx. Then the handshake, with SNI
// choosing the server; requests follow as on any connection. nginx: ngx_http_ssl_handshake
void ssl_handshake_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* hc = http_connection_of(*c);
  if (ev.timedout) {
    log_error(LogLevel::Info, *c->log, ETIMEDOUT, "client timed out");
    close_http_connection(*c);
    return;
  }
  if (c->close) {
    close_http_connection(*c);
    return;
  }
  if (c->ssl == nullptr) {
    char buf[4 * kProxyProtocolV1Max];
    ssize_t n = ::recv(c->fd, buf, hc->proxy_protocol_pending ? sizeof buf : 1, MSG_PEEK);
    if (n < 0 && errno == EAGAIN) {
      c->read.ready = false;
      return;
    }
    if (n <= 0) {
      if (n < 0) log_error(LogLevel::Info, *c->log, errno, "recv() failed");
      close_http_connection(*c);
      return;
    }
    if (hc->proxy_protocol_pending) {
      Buffer b;
      b.start = b.pos = buf;
      b.last = buf + n;
      b.end = buf + sizeof buf;
      Rc rc = read_proxy_protocol(*c, *hc, b);
      if (rc == Rc::Again) {
        c->read.ready = false;
        return;
      }
      if (rc != Rc::Ok || ::recv(c->fd, buf, static_cast<size_t>(b.pos - buf), 0) != b.pos - buf) {
        close_http_connection(*c);
        return;
      }
      c->log->action = "SSL handshaking";
      ssl_handshake_handler(ev);  // the TLS bytes, if they came along
      return;
    }
    auto first = static_cast<unsigned char>(buf[0]);
    if (first != 0x16 && !(first & 0x80)) {
      hc->plain_http = true;
      c->log->action = "waiting for request";
      c->read.handler = wait_request_handler;
      wait_request_handler(ev);
      return;
    }
    const CoreSrvConf& def = default_server(*hc);
    if (Status st = ssl_create_connection(*c, server_ssl_context(def), server_ssl_buffer_size(def));
        !st.ok()) {
      log_error(LogLevel::Alert, *c->log, 0, "%s", st.message().c_str());
      close_http_connection(*c);
      return;
    }
  }
  Rc rc = ssl_handshake(*c);
  if (rc == Rc::Again) {
    c->write.handler = ssl_handshake_handler;  // it may wait for the socket to take its answer
    return;
  }
  if (rc != Rc::Ok) {
    close_http_connection(*c);
    return;
  }
  // ssl_ocsp: the client's certificate is checked before any request is read.
  rc = ssl_ocsp_validate(*c, after_handshake);
  if (rc == Rc::Again) {
    c->read.handler = c->write.handler = wait_ocsp_handler;
    return;
  }
  if (rc != Rc::Ok) {
    close_http_connection(*c);
    return;
  }
  after_handshake(*c);
}

}  // namespace

void init_connection(Connection& c) {
  HttpConnection* hc = alloc_http_connection();
  c.data = hc;
  stub_stat_add(StubStat::Active, 1);
  auto* port = static_cast<HttpPort*>(c.listening->servers);
  const HttpAddr* addr = &port->addrs.front();
  if (port->addrs.size() > 1) {
    // A wildcard socket serving several addresses: which one did the client connect to?
    SockAddr local;
    if (local_address(c.fd, local)) {
      addr = &port->addrs.back();
      for (const HttpAddr& a : port->addrs) {
        if (a.addr == local) {
          addr = &a;
          break;
        }
      }
    }
  }
  hc->addr_conf = addr;
  hc->conf_ctx = addr->servers.default_server->ctx;
  hc->addr_len = 0;  // formatted when asked for
  c.log->data = &c;
  c.log->handler = log_error_handler;
  c.log->action = "waiting for request";
  if (hc->proxy_protocol != nullptr) *hc->proxy_protocol = {};
  if (addr->proxy_protocol) {
    if (hc->proxy_protocol == nullptr) hc->proxy_protocol = std::make_unique<ProxyProtocolAddrs>();
    hc->proxy_protocol_pending = true;
    c.log->action = "reading PROXY protocol";
  }
  c.read.handler = wait_request_handler;
  if (addr->ssl || server_ssl_enabled(default_server(*hc))) {
    c.read.handler = ssl_handshake_handler;
    if (!addr->proxy_protocol) c.log->action = "SSL handshaking";
  }
  c.write.handler = empty_handler;
  add_timer(c.read, *default_server(*hc).client_header_timeout);
  ConnectionPool::current->set_reclaim(c, Reclaim::Waiting);
  // A deferred accept (listen ... deferred: TCP_DEFER_ACCEPT) hands over a connection whose first
  // bytes have come: they are read now, as nginx reads them, not after a turn of the event loop.
  if (c.listening->opt.deferred) {
    c.read.ready = true;
    c.read.handler(c.read);
  }
}

std::string_view HttpConnection::addr_text(const Connection& c) {
  if (addr_len == 0) {
    if (c.peer.sa.sa_family == AF_UNIX) {
      std::memcpy(addr_buf, "unix:", 5);
      addr_len = 5;
    } else {
      set_addr_text(&c.peer.sa);
    }
  }
  return {addr_buf, addr_len};
}

void HttpConnection::set_addr_text(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN];
  size_t n = std::min(format_addr_text(sa, text, sizeof text), sizeof addr_buf);
  std::memcpy(addr_buf, text, n);
  addr_len = static_cast<uint8_t>(n) & 0x3f;
}

Request* create_request(Connection& c) {
  auto* hc = http_connection_of(c);
  c.requests++;
  c.io.sent = 0;
  Pool& pool = hc->request_pool;
  auto* r = pool.make<Request>();
  r->pool = &pool;
  r->http_connection = hc;
  r->connection = &c;
  r->main = r;
  r->main_conf = hc->conf_ctx->main_conf;
  r->srv_conf = hc->conf_ctx->srv_conf;
  r->loc_conf = hc->conf_ctx->loc_conf;
  r->read_event_handler = block_reading;
  r->header_in = hc->busy != nullptr ? hc->busy->buf : c.buffer;
  // The modules' contexts and the variables' slots start zeroed: one allocation, one memset.
  size_t ctx_bytes = sizeof(void*) * module_count(ModuleType::Http);
  size_t vars_bytes = variable_values_bytes(core_main(*r).variables.count());
  auto* zeroed = static_cast<char*>(pool.alloc_zeroed(ctx_bytes + vars_bytes));
  r->ctx = reinterpret_cast<void**>(zeroed);
  r->variables = reinterpret_cast<VariableValue*>(zeroed + ctx_bytes);
  r->start_sec = clock::now();
  r->start_msec = clock::wall_msec();
  hc->request = r;
  hc->active = r;
  stub_stat_add(StubStat::Requests, 1);
  stub_stat_add(StubStat::Reading, 1);
  r->stat_reading = true;
  return r;
}

void free_request(Request& r) {
  Connection& c = *r.connection;
  auto* hc = r.http_connection;
  if (r.stat_reading) stub_stat_add(StubStat::Reading, -1);
  if (r.stat_writing) stub_stat_add(StubStat::Writing, -1);
  WEIR_DEBUG(*c.log, "http close request");
  run_request_cleanups(r);
  if (!r.logged) {
    c.log->action = "logging request";  // what the log handlers' errors say, as nginx's
    log_request(r);
  }
  c.log->action = "closing request";
  hc->request = nullptr;
  hc->active = nullptr;
  hc->request_pool.reset();
}

void close_http_connection(Connection& c) {
  auto* hc = http_connection_of(c);
  if (hc != nullptr && hc->stream != nullptr) {
    http2_close_stream_connection(c);  // the stream ends; its connection goes on
    return;
  }
  if (hc != nullptr && hc->h2 != nullptr) http2_close_connection(c);
  if (hc != nullptr) {
    if (hc->request != nullptr) {
      // A request still attached (errors before it was finalized): log it and free it.
      free_request(*hc->request);
    }
    release_http_connection(hc);
    stub_stat_add(StubStat::Active, -1);
  }
  WEIR_DEBUG(*c.log, "close http connection: %d", c.fd);
  c.data = nullptr;
  c.destroyed = true;
  close_connection(c);
}

void set_keepalive(Request& r) {
  Connection& c = *r.connection;
  auto* hc = r.http_connection;
  CoreLocConf& clcf = core_loc(r);
  uint64_t keepalive_timeout = *clcf.keepalive_timeout;
  bool nodelay = *clcf.tcp_nodelay;
  Buffer* b = r.header_in;
  bool pipelined = b != nullptr && b->pos < b->last;

  if (pipelined) {
    // The pipelined request stays where it is; every other large buffer becomes spare.
    ChainLink* keep = nullptr;
    for (ChainLink* cl = hc->busy; cl != nullptr;) {
      ChainLink* next = cl->next;
      if (cl->buf == b) {
        keep = cl;
      } else {
        cl->buf->pos = cl->buf->last = cl->buf->start;
        cl->next = hc->free;
        hc->free = cl;
      }
      cl = next;
    }
    if (keep != nullptr) keep->next = nullptr;
    hc->busy = keep;
  }

  WEIR_DEBUG(*c.log, "set http keepalive handler");
  r.keepalive = false;
  free_request(r);
  c.write.handler = empty_handler;

  if (pipelined) {
    c.log->action = "reading client pipelined request line";
    create_request(c);
    del_timer(c.read);
    c.read.handler = process_request_line;
    post_event(c.read);
    return;
  }

  // An idle connection keeps no buffers: they go back with the connection's pool.
  hc->busy = hc->free = nullptr;
  c.buffer = nullptr;
  c.pool.reset();
  ssl_free_buffer(c);

  c.read.handler = wait_request_handler;
  c.log->action = "keepalive";
  if (nodelay) c.set_tcp_nodelay();
  c.idle = true;
  ConnectionPool::current->set_reclaim(c, Reclaim::Idle);
  add_timer(c.read, keepalive_timeout);
  c.read.cancelable = true;
  if (c.read.ready) post_event(c.read);
}

void set_lingering_close(Request& r) {
  Connection& c = *r.connection;
  CoreLocConf& clcf = core_loc(r);
  uint64_t time = *clcf.lingering_time, timeout = *clcf.lingering_timeout;
  free_request(r);
  lingering_close_connection(c, time, timeout);
}

}  // namespace weir::http
