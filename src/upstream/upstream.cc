#include "upstream/upstream.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/assert.h"
#include "core/escape.h"
#include "core/inet.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "event/ssl.h"
#include "http/core_module.h"
#include "http/filter.h"
#include "http/http_connection.h"
#include "http/request_body.h"
#include "http/script.h"
#include "upstream/event_pipe.h"
#include "upstream/lifecycle.h"
#include "upstream/upgrade.h"
#include "upstream/upstream_cache.h"
#include "upstream/upstream_headers.h"
#include "upstream/upstream_module.h"

namespace weir::http {

namespace {

void connect_upstream(Request& r, Upstream& u, bool same_peer = false);
void next_upstream(Request& r, Upstream& u, uint32_t ft);
void process_header(Request& r, Upstream& u);
void send_request(Request& r, Upstream& u);
void start_upstream_ssl(Request& r, Upstream& u);

void dummy_handler(Request&, Upstream&) {}

uint64_t since(uint64_t start) {
  return clock::msec() - start;
}

// Events of the upstream connection go to the request's upstream handlers; then whatever the
// request posted runs, as after a client event.
void upstream_event_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* r = static_cast<Request*>(c->data);
  Connection& client = *r->connection;
  Upstream& u = *r->upstream;
  if (ev.write) {
    u.write_event_handler(*r, u);
  } else {
    u.read_event_handler(*r, u);
  }
  run_posted_requests(client);
}

// ", upstream: "http://127.0.0.1:8080/uri"" in error-log lines while the upstream serves.
char* log_upstream_part(const Request& r, char* p, char* end) {
  const Upstream* u = r.upstream;
  if (u == nullptr || u->peer.name.empty()) return p;
  int n = std::snprintf(p, static_cast<size_t>(end - p), ", upstream: \"%.*s%.*s%.*s\"",
                        static_cast<int>(u->schema.size()), u->schema.data(),
                        static_cast<int>(u->peer.name.size()), u->peer.name.data(),
                        static_cast<int>(u->uri.size()), u->uri.data());
  if (n < 0) return p;
  return p + std::min<ptrdiff_t>(n, end - p - 1);
}

void end_state(Upstream& u) {
  UpstreamState* s = u.state;
  if (s == nullptr || s->response_time != -1) return;
  s->response_time = static_cast<int64_t>(since(s->start_msec));
  if (Connection* c = u.peer.connection) s->bytes_sent = c->io.sent;
}

// Gives the peer back to the balancer and closes (or, through the keepalive cache's free, keeps)
// its connection.
void free_peer(Upstream& u, unsigned state) {
  end_state(u);
  if (u.peer.free != nullptr && u.peer.sockaddr != nullptr) {
    u.peer.free(u.peer, u.peer.data, state);
    u.peer.sockaddr = nullptr;
  }
  if (Connection* c = u.peer.connection) {
    WEIR_DEBUG(*c->log, "close http upstream connection: %d", c->fd);
    u.peer.connection = nullptr;
    close_connection(*c);
  }
}

void close_temp_file(Upstream& u) {
  if (u.pipe == nullptr || u.pipe->temp_file == nullptr) return;
  File& f = u.pipe->temp_file->file;
  if (f.fd >= 0) {
    ::close(f.fd);
    f.fd = -1;
  }
}

// The request is terminated (client gone, timeout, error): everything outside the pool ends now.
void upstream_cleanup(void* data) {
  auto& r = *static_cast<Request*>(data);
  Upstream& u = *r.upstream;
  u.cleanup = nullptr;
  Resolver::cancel(u.resolving);
  u.resolving = nullptr;
  if (u.protocol->finalize != nullptr) u.protocol->finalize(r, Rc::Done);
  free_peer(u, 0);
  close_temp_file(u);
}

// A client read event while the upstream works: a client that closed its side aborts the request
// (unless proxy_ignore_client_abort); pipelined data just waits. epoll's word that the client
// closed (EPOLLRDHUP) is enough, as it is for nginx, data or not.
void check_broken_connection(Request& r) {
  Connection& c = *r.connection;
  Upstream* u = r.upstream;
  // A post action runs after the client's exchange: whether the client is still there is no
  // matter to it (as nginx, which never watches for it then).
  if (u == nullptr || c.error || r.post_action) return;
  bool rdhup = c.read.pending_eof;
  int n = rdhup ? 0 : c.peek();
  int err = n < 0 ? errno : 0;
  if (n > 0 || (n < 0 && (err == EAGAIN || err == EINTR))) return;
  c.error = true;
  // proxy_store and a response that may be cached read on for the file, as
  // proxy_ignore_client_abort does for the upstream's sake.
  bool for_file = u->conf->store || (u->cache != nullptr && u->cache->may_store);
  if ((u->conf->ignore_client_abort || for_file) && u->peer.connection != nullptr) return;
  log_error(LogLevel::Info, *c.log, err,
            "%sclient prematurely closed connection, so upstream "
            "connection is closed too",
            rdhup ? "epoll_wait() reported that " : "");
  finalize_upstream(r, *u, Code::status(kHttpClientClosedRequest));
}

bool idempotent(const Request& r) {
  return (r.method & (kPost | kLock | kPatch)) == 0;
}

// proxy_next_upstream's http_* conditions and their statuses.
struct NextStatus {
  int status;
  uint32_t ft;
};
constexpr NextStatus kNextStatuses[] = {
    {500, kNext500}, {502, kNext502}, {503, kNext503}, {504, kNext504},
    {403, kNext403}, {404, kNext404}, {429, kNext429},
};

// The status a failure ends the request with when no other peer takes it.
int status_of(uint32_t ft) {
  if (ft == kNextTimeout) return 504;
  for (const NextStatus& n : kNextStatuses) {
    if (n.ft == ft) return n.status;
  }
  return 502;
}

// Whether another peer may take the request after a failure of kind ft: proxy_next_upstream names
// it, tries and proxy_next_upstream_timeout are left, and the request may be repeated.
bool may_retry(const Request& r, const Upstream& u, uint32_t ft, unsigned tries_left) {
  const UpstreamConf& conf = *u.conf;
  if (!(conf.next_upstream & ft) || tries_left == 0 || u.body_taken) return false;
  if (u.request_sent && !idempotent(r) && !(conf.next_upstream & kNextNonIdempotent)) return false;
  return conf.next_upstream_timeout == 0 || since(u.peer.start_msec) < conf.next_upstream_timeout;
}

// A cached connection that failed before a byte of the response came back was most likely closed by
// the upstream as it was reused (its own idle timer raced ours): the request goes again, once, on a
// new connection to the same peer, and the peer is not blamed, whatever the number of servers.
// True when it did.
bool retry_on_new_connection(Request& r, Upstream& u, uint32_t ft) {
  if (ft != kNextError || !u.peer.cached || u.fresh_retry || u.buffer.last != u.buffer.start ||
      !may_retry(r, u, ft, 1)) {
    return false;
  }
  u.fresh_retry = true;
  end_state(u);
  if (u.state->status == 0) u.state->status = 502;
  Connection* c = u.peer.connection;
  u.peer.connection = nullptr;
  close_connection(*c);
  connect_upstream(r, u, true);
  return true;
}

void next_upstream(Request& r, Upstream& u, uint32_t ft) {
  // Once the header went to the client the response is this peer's: no other may answer it.
  WEIR_ASSERT(!u.header_sent);
  if (u.header_sent) {
    finalize_upstream(r, u, Rc::Error);
    return;
  }
  if (retry_on_new_connection(r, u, ft)) return;
  // 403 and 404 say nothing of the peer's health; a 429 counts toward max_fails, as in nginx.
  unsigned state = (ft == kNext403 || ft == kNext404) ? kPeerNext : kPeerFailed;
  if (ft != kNextNoLive) {
    // A cached connection that failed says nothing of the peer: this try does not count.
    if (u.peer.cached && ft == kNextError) {
      state = 0;
      u.peer.tries++;
    }
    free_peer(u, state);
  }
  int status = status_of(ft);
  if (u.state != nullptr && u.state->status == 0) u.state->status = status;
  if (r.connection->error) {
    finalize_upstream(r, u, Code::status(kHttpClientClosedRequest));
    return;
  }
  if (ft == kNextNoLive || !may_retry(r, u, ft, u.peer.tries)) {
    if (serve_stale(r, u, ft)) return;
    finalize_upstream(r, u, Code::status(status));
    return;
  }
  connect_upstream(r, u);
}

// Puts the request back as create_request made it, for another peer.
void reinit_upstream(Request& r, Upstream& u) {
  if (u.protocol->reinit_request != nullptr) (void)u.protocol->reinit_request(r);
  // The send chain moved the buffers' positions: each starts again from where it began.
  size_t i = 0;
  for (ChainLink* cl = u.request_bufs; cl != nullptr && u.request_starts != nullptr;
       cl = cl->next, i++) {
    Buffer* b = cl->buf;
    if (b->in_file) {
      b->file_pos = u.request_starts[i];
    } else {
      b->pos = b->start + u.request_starts[i];
    }
  }
  u.request_out = nullptr;
  u.request_sent = false;
  u.request_body_sent = false;
  u.headers_in = UpstreamHeadersIn{};
  u.buffer.pos = u.buffer.last = u.buffer.start;
  u.length = -1;
  u.keepalive = false;
}

// Whether the request side may run in the upstream's phase: before the response, or throughout
// with preserve_output.
bool may_send(const Upstream& u) {
  return u.phase == UpstreamPhase::Connecting || u.phase == UpstreamPhase::Sending ||
         (u.conf->preserve_output &&
          (u.phase == UpstreamPhase::ReadingHeader || u.phase == UpstreamPhase::Relaying));
}

void send_request_handler(Request& r, Upstream& u) {
  WEIR_ASSERT(may_send(u));
  Connection& c = *u.peer.connection;
  if (c.write.timedout) {
    c.write.timedout = false;
    log_error(LogLevel::Error, *c.log, ETIMEDOUT, "upstream timed out");
    if (u.header_sent) {
      finalize_upstream(r, u, Code::status(504));
      return;
    }
    next_upstream(r, u, kNextTimeout);
    return;
  }
  send_request(r, u);
}

void process_header_handler(Request& r, Upstream& u) {
  WEIR_ASSERT(u.phase == UpstreamPhase::Connecting || u.phase == UpstreamPhase::Sending ||
              u.phase == UpstreamPhase::ReadingHeader);
  Connection& c = *u.peer.connection;
  if (c.read.timedout) {
    c.read.timedout = false;
    c.log->action = "reading response header from upstream";
    log_error(LogLevel::Error, *c.log, ETIMEDOUT, "upstream timed out");
    next_upstream(r, u, kNextTimeout);
    return;
  }
  if (!u.request_sent) {
    // A read event before the connect completed: it failed.
    send_request(r, u);
    return;
  }
  process_header(r, u);
}

// Connects to the peer the balancer picks, or (same_peer) again to the one it picked before.
void connect_upstream(Request& r, Upstream& u, bool same_peer) {
  if (u.request_sent) reinit_upstream(r, u);
  auto* s = r.pool->make<UpstreamState>();
  s->start_msec = clock::msec();
  *u.states_tail = s;
  u.states_tail = &s->next;
  u.state = s;
  u.phase = UpstreamPhase::Connecting;
  r.connection->log->action = "connecting to upstream";

  Rc rc = same_peer ? open_peer(u.peer) : connect_peer(u.peer);
  s->peer = u.peer.name;
  s->counts_index = u.peer.counts_index;
  if (rc == Rc::Error) {
    s->status = 500;
    finalize_upstream(r, u, Code::status(500));
    return;
  }
  if (rc == Rc::Busy) {
    s->peer = (u.group != nullptr ? u.group : u.conf->group)->host;
    log_error(LogLevel::Error, *r.connection->log, 0, "no live upstreams");
    next_upstream(r, u, kNextNoLive);
    return;
  }
  if (rc == Rc::Declined) {
    next_upstream(r, u, kNextError);
    return;
  }
  Connection& c = *u.peer.connection;
  c.data = &r;
  c.read.handler = c.write.handler = upstream_event_handler;
  u.write_event_handler = send_request_handler;
  u.read_event_handler = process_header_handler;
  if (rc == Rc::Again) {
    add_timer(c.write, u.conf->connect_timeout);
    return;
  }
  send_request(r, u);
}

// No request buffering: what the client has sent since goes to u.request_out through the protocol's
// framing (called once everything taken before is sent). Ok when the body is complete and taken,
// Again when more is to come, or the client's error status.
Code take_body_pieces(Request& r, Upstream& u) {
  RequestBody& rb = *r.request_body;
  if (rb.bufs == nullptr) {
    Code rc = read_unbuffered_request_body(r);
    if (rc != Rc::Ok && rc != Rc::Again) return rc;
  }
  ChainLink* in = nullptr;
  ChainLink** tail = &in;
  for (ChainLink* cl = rb.bufs; cl != nullptr;) {
    ChainLink* next = cl->next;
    if (cl->buf->special() || cl->buf->size() == 0) {
      r.pool->free_link(cl);
    } else {
      *tail = cl;
      tail = &cl->next;
    }
    cl = next;
  }
  *tail = nullptr;
  rb.bufs = nullptr;
  rb.bufs_tail = &rb.bufs;
  bool last = rb.done;
  if (in == nullptr && !last) return Rc::Again;
  if (in != nullptr) u.body_taken = true;
  ChainLink* out = u.protocol->body_filter != nullptr ? u.protocol->body_filter(r, in, last) : in;
  u.request_out = out;
  if (last) {
    u.body_streaming = false;
    return u.request_out == nullptr ? Rc::Ok : Rc::Again;
  }
  return Rc::Again;
}

// No request buffering: a client read event while the body goes on.
void streaming_body_handler(Request& r) {
  Upstream& u = *r.upstream;
  if (u.peer.connection == nullptr || !u.request_sent || u.request_out != nullptr) {
    return;  // not connected yet, or the upstream is slower: its write event goes on
  }
  if (r.connection->read.timedout) {
    r.connection->timedout = true;
    log_error(LogLevel::Info, *r.connection->log, ETIMEDOUT, "client timed out");
    finalize_upstream(r, u, Code::status(408));
    return;
  }
  send_request(r, u);
}

// Notes where each buffer of the request begins, once (a retry sends the same buffers again).
void note_request_starts(Request& r, Upstream& u) {
  if (u.request_starts != nullptr) return;
  size_t n = 0;
  for (const ChainLink* cl = u.request_bufs; cl != nullptr; cl = cl->next) n++;
  u.request_starts =
      static_cast<off_t*>(r.pool->alloc(sizeof(off_t) * (n ? n : 1), alignof(off_t)));
  size_t i = 0;
  for (const ChainLink* cl = u.request_bufs; cl != nullptr; cl = cl->next) {
    const Buffer* b = cl->buf;
    u.request_starts[i++] = b->in_file ? b->file_pos : b->pos - b->start;
  }
}

// TLS to the peer (proxy_pass https://): the handshake on the new connection, under
// proxy_connect_timeout, then the certificate check (proxy_ssl_verify) and the session kept for the
// next one; a failure tries the next peer as a connect error does. nginx:
// ngx_http_upstream_ssl_init_connection, ngx_http_upstream_ssl_handshake
void upstream_ssl_handshake(Request& r, Upstream& u) {
  WEIR_ASSERT(u.phase == UpstreamPhase::Connecting);
  Connection& c = *u.peer.connection;
  const UpstreamConf& conf = *u.conf;
  if (c.read.timedout || c.write.timedout) {
    c.read.timedout = c.write.timedout = false;
    log_error(LogLevel::Error, *c.log, ETIMEDOUT, "upstream timed out");
    next_upstream(r, u, kNextTimeout);
    return;
  }
  Rc rc = ssl_handshake(c);
  if (rc == Rc::Again) {
    if (!c.write.timer_set) add_timer(c.write, conf.connect_timeout);
    return;
  }
  if (c.write.timer_set) del_timer(c.write);
  if (rc != Rc::Ok) {
    next_upstream(r, u, kNextError);
    return;
  }
  if (conf.ssl_verify) {
    std::string err = ssl_verify_peer(c, u.ssl_name);
    if (!err.empty()) {
      log_error(LogLevel::Error, *c.log, 0, "%s", err.c_str());
      next_upstream(r, u, kNextError);
      return;
    }
  }
  if (conf.ssl_session_reuse) {
    if (conf.ssl_session != nullptr) ssl_free_session(conf.ssl_session);
    conf.ssl_session = ssl_get_session(c);
  }
  u.write_event_handler = send_request_handler;
  u.read_event_handler = process_header_handler;
  send_request(r, u);
}

namespace {

// The name may come from $http_host or $proxy_host: its port is cut off, as nginx's
// ngx_http_upstream_ssl_name does ("[::1]:8443" is "[::1]").
std::string_view ssl_name_without_port(std::string_view name) {
  size_t host_end = name.starts_with('[') ? name.find(']') : 0;
  return name.substr(0, name.find(':', host_end == std::string_view::npos ? 0 : host_end));
}

// RFC 6066: a literal address is never sent as the server name.
bool may_send_as_sni(std::string_view name) {
  SockAddr addr;
  return !name.empty() && name[0] != '[' && !parse_addr_port(name, addr);
}

// *_ssl_certificate with variables: this connection's certificate and key, named for the request
// (relative names by the configuration's directory); an empty name sends none. nginx:
// ngx_http_upstream_ssl_certificate
bool use_ssl_certificate(Request& r, Connection& c, const UpstreamConf& conf) {
  std::string_view cert = conf.ssl_certificate->eval(r);
  WEIR_DEBUG(*c.log, "http upstream ssl cert: \"%.*s\"", static_cast<int>(cert.size()),
             cert.data());
  if (cert.empty()) return true;
  std::string cert_name = ssl_pem_name(cert, *conf.ssl_conf_prefix);
  std::string key_name = ssl_pem_name(conf.ssl_certificate_key->eval(r), *conf.ssl_conf_prefix);
  WEIR_DEBUG(*c.log, "http upstream ssl key: \"%s\"", key_name.c_str());
  static const std::vector<std::string> kNoPasswords;
  Status st = ssl_use_certificate(
      c, cert_name, key_name, conf.ssl_passwords != nullptr ? *conf.ssl_passwords : kNoPasswords);
  if (!st.ok()) log_error(LogLevel::Error, *c.log, 0, "%s", st.message().c_str());
  return st.ok();
}

}  // namespace

void start_upstream_ssl(Request& r, Upstream& u) {
  Connection& c = *u.peer.connection;
  const UpstreamConf& conf = *u.conf;
  u.ssl_name = ssl_name_without_port(u.ssl_name);
  std::string name =
      conf.ssl_server_name && may_send_as_sni(u.ssl_name) ? std::string(u.ssl_name) : std::string();
  if (Status st = ssl_create_client_connection(c, conf.ssl, name,
                                               conf.ssl_session_reuse ? conf.ssl_session : nullptr);
      !st.ok()) {
    log_error(LogLevel::Alert, *c.log, 0, "%s", st.message().c_str());
    next_upstream(r, u, kNextError);
    return;
  }
  if (conf.ssl_certificate != nullptr && !use_ssl_certificate(r, c, conf)) {
    finalize_upstream(r, u, Code::status(500));
    return;
  }
  c.log->action = "SSL handshaking to upstream";
  u.write_event_handler = u.read_event_handler = upstream_ssl_handshake;
  upstream_ssl_handshake(r, u);
}

void send_request(Request& r, Upstream& u) {
  WEIR_ASSERT(may_send(u));
  Connection& c = *u.peer.connection;
  WEIR_DEBUG(*c.log, "http upstream send request");
  if (!u.request_sent) {
    if (!u.peer.cached) {
      if (int err = connect_error(c); err != 0) {
        log_error(LogLevel::Error, *c.log, err, "connect() failed");
        next_upstream(r, u, kNextError);
        return;
      }
    }
    if (u.ssl && c.ssl == nullptr) {
      start_upstream_ssl(r, u);  // then here again
      return;
    }
    u.state->connect_time = static_cast<int64_t>(since(u.state->start_msec));
    u.request_sent = true;
    u.request_out = u.request_bufs;
    note_request_starts(r, u);
    u.phase = UpstreamPhase::Sending;
  }
  bool answering = u.phase == UpstreamPhase::ReadingHeader || u.phase == UpstreamPhase::Relaying;
  if (!answering) c.log->action = "sending request to upstream";
  for (;;) {
    if (u.request_out == nullptr && u.conf->preserve_output) {
      u.request_out = u.protocol->pending_output(r);
    }
    if (u.request_out != nullptr) {
      SendResult sent = c.send_chain(u.request_out, 0);
      if (sent.rc == Rc::Error) {
        if (u.header_sent) {
          finalize_upstream(r, u, Rc::Error);
          return;
        }
        next_upstream(r, u, kNextError);
        return;
      }
      u.request_out = sent.rest;
      if (sent.rest != nullptr) {
        add_timer(c.write, u.conf->send_timeout);
        return;
      }
      continue;  // preserve_output: more may be pending
    }
    if (!u.body_streaming) break;
    if (u.body_held) {
      if (c.write.timer_set) del_timer(c.write);
      return;  // waiting for the peer's window
    }
    Code rc = take_body_pieces(r, u);
    if (rc == Rc::Ok) break;  // the whole body went out
    if (rc == Rc::Again) {
      if (u.request_out != nullptr) continue;
      if (c.write.timer_set) del_timer(c.write);
      return;  // waiting for the client
    }
    finalize_upstream(r, u, rc);
    return;
  }
  if (c.write.timer_set) del_timer(c.write);
  r.read_event_handler = check_broken_connection;
  u.request_body_sent = true;
  if (answering) return;  // preserve_output: the response side reads on; later output may come
  u.phase = UpstreamPhase::ReadingHeader;
  if (!u.conf->preserve_output) u.write_event_handler = dummy_handler;
  r.connection->log->action = "reading response header from upstream";
  add_timer(c.read, u.conf->read_timeout);
  if (c.read.ready) process_header(r, u);
}

// The status asks for another peer (proxy_next_upstream http_502 ...) and one may take it: true
// when the request went on to it.
bool test_next(Request& r, Upstream& u) {
  for (const NextStatus& n : kNextStatuses) {
    if (n.status != u.headers_in.status) continue;
    // This peer's try is not over yet: it counts among the tries left until next_upstream frees it.
    if (!may_retry(r, u, n.ft, u.peer.tries > 0 ? u.peer.tries - 1 : 0)) {
      u.state->status = n.status;
      return serve_stale(r, u, n.ft);
    }
    u.state->status = n.status;
    next_upstream(r, u, n.ft);
    return true;
  }
  return false;
}

bool intercept_error(Request& r, Upstream& u) {
  int status = u.headers_in.status;
  if (status == 404 && u.conf->intercept_404) {
    u.state->status = status;
    finalize_upstream(r, u, Code::status(status));
    return true;
  }
  if (!u.conf->intercept_errors || status < 300) return false;
  for (const ErrorPage& ep : core_loc(r).error_pages) {
    if (ep.status == status) {
      u.state->status = status;
      // The body is not read: the connection cannot be reused.
      finalize_upstream(r, u, Code::status(status));
      return true;
    }
  }
  return false;
}

// A 1xx response other than 101 (103 Early Hints with its Link headers ...) goes on to an HTTP/1.1
// client ahead of the answer (RFC 9110 15.2), less the hop-by-hop and hidden fields; never to an
// HTTP/1.0 client or from a subrequest. A 100 Continue goes on only while the client's body is
// still streaming and weir did not answer its Expect itself: otherwise the client has nothing to
// continue. The bytes wait in the write filter ahead of the answer's header.
Rc forward_interim(Request& r, Upstream& u) {
  const UpstreamHeadersIn& in = u.headers_in;
  if (r.http_version < 1001 || &r != r.main || r.header_sent) return Rc::Ok;
  bool answered_expect = r.expect_tested && r.headers_in.expect != nullptr;
  if (in.status == 100 && (!u.body_streaming || answered_expect)) return Rc::Ok;
  auto passed = [&](const Header* h) { return passes_with_interim(u, *h); };
  constexpr std::string_view kVersion = "HTTP/1.1 ";
  size_t len = kVersion.size() + in.status_line.size() + 4;
  for (const Header* h : in.headers) {
    if (passed(h)) len += h->key.size() + h->value.size() + 4;
  }
  Buffer* b = Buffer::create_temp(*r.pool, len);
  auto put = [&](std::string_view piece) {
    std::memcpy(b->last, piece.data(), piece.size());
    b->last += piece.size();
  };
  put(kVersion);
  put(in.status_line);
  put("\r\n");
  for (const Header* h : in.headers) {
    if (!passed(h)) continue;
    put(h->key);
    put(": ");
    put(h->value);
    put("\r\n");
  }
  put("\r\n");
  b->flush = true;
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  return write_filter(r, cl) == Rc::Error ? Rc::Error : Rc::Ok;
}

}  // namespace

// The upstream's part ends (its connection cached or closed, its temp file kept for the response);
// the request goes on. Once only: the relay no longer has an upstream.
void release_upstream(Request& r, Upstream& u, Code rc) {
  if (u.phase == UpstreamPhase::Done) return;
  u.phase = UpstreamPhase::Done;
  Resolver::cancel(u.resolving);
  u.resolving = nullptr;
  if (u.cleanup != nullptr) {
    u.cleanup->handler = nullptr;
    u.cleanup = nullptr;
  }
  if (u.protocol->finalize != nullptr) u.protocol->finalize(r, rc);
  if (u.state != nullptr && u.pipe != nullptr) {
    // The preread came with the header: process_header counted it as received already. A splice
    // relay before the pipe counted its own bytes.
    u.state->bytes_received += u.pipe->read_length - u.pipe->preread_size;
    u.state->response_length += u.pipe->read_length;
  }
  if (u.pipe != nullptr) u.pipe->upstream = nullptr;
  // Reused only at a request boundary: all of the request went out (an upstream may answer before
  // it has read the body; the body's rest would then prefix the next client's request) and the
  // response was well framed.
  bool reuse = u.keepalive && u.request_body_sent;
  free_peer(u, reuse ? unsigned{kPeerKeepalive} : 0u);
  r.log_upstream = nullptr;
  r.connection->log->action = "sending to client";
}

namespace {

// X-Accel-Redirect: the upstream's answer is a URI (or named location) whose response the client
// gets instead; the upstream's connection is done with (its body is not read).
void accel_redirect(Request& r, Upstream& u) {
  std::string_view target = u.headers_in.x_accel_redirect->value;
  u.keepalive = false;
  release_upstream(r, u, Rc::Declined);
  r.read_event_handler = block_reading;
  if (Code rc = copy_header_lines(r, u, true); rc != Rc::Ok) {
    finalize_request(r, rc);
    return;
  }
  if (target.starts_with('@')) {
    (void)named_location(r, target);
    finalize_request(r, Rc::Done);
    return;
  }
  std::string_view uri, args;
  if (!parse_unsafe_uri(r, target, uri, args)) {
    log_error(LogLevel::Error, r.log(), 0, "unsafe URI \"%.*s\" was detected",
              static_cast<int>(target.size()), target.data());
    finalize_request(r, Code::status(404));
    return;
  }
  if (r.method != kHead) {
    r.method = kGet;
    r.method_name = "GET";
  }
  (void)internal_redirect(r, uri, args);
  finalize_request(r, Rc::Done);
}

// The response has begun: the request side is over. Whatever of the request is still unsent stays
// so (the upstream answered without it; the connection is then not reused), its send timer goes,
// and a streamed client body is no longer taken.
void stop_sending(Request& r, Upstream& u) {
  WEIR_ASSERT(u.phase == UpstreamPhase::Sending || u.phase == UpstreamPhase::ReadingHeader);
  u.phase = u.upgrade ? UpstreamPhase::Tunnel : UpstreamPhase::Relaying;
  if (u.conf->preserve_output && !u.upgrade) return;  // the request side goes on
  u.write_event_handler = dummy_handler;
  Connection& c = *u.peer.connection;
  if (c.write.timer_set) del_timer(c.write);
  if (u.request_body_sent) return;
  u.request_out = nullptr;
  if (u.body_streaming) {
    u.body_streaming = false;
    r.read_event_handler = check_broken_connection;
  }
}

void send_response(Request& r, Upstream& u) {
  if (u.upgrade) r.keepalive = false;  // the connection is the tunnel's until it closes
  Code rc = send_header(r);
  // A post action wants the upstream to have been asked, not its answer.
  if (rc == Rc::Error || rc.is_status() || r.post_action) {
    finalize_upstream(r, u, rc);
    return;
  }
  u.header_sent = true;
  stop_sending(r, u);
  if (u.upgrade) {
    // The 101 header leaves at once; then the connection is a tunnel.
    if (send_special(r, false, true) == Rc::Error) {
      finalize_upstream(r, u, Rc::Error);
      return;
    }
    start_upgraded(r, u);
    return;
  }
  start_relay(r, u);
}

void process_header(Request& r, Upstream& u) {
  WEIR_ASSERT(u.phase == UpstreamPhase::Sending || u.phase == UpstreamPhase::ReadingHeader);
  Connection& c = *u.peer.connection;
  WEIR_DEBUG(*c.log, "http upstream process header");
  c.log->action = "reading response header from upstream";
  if (u.buffer.start == nullptr) {
    Buffer* b = Buffer::create_temp(*r.pool, u.conf->buffer_size);
    u.buffer = *b;
    u.buffer.tag = u.conf->tag;
  }
  // A recv with no room would read as the upstream's close.
  WEIR_ASSERT(u.buffer.last < u.buffer.end);
  for (;;) {
    IoResult res = c.recv(u.buffer.last, static_cast<size_t>(u.buffer.end - u.buffer.last));
    if (res.rc == Rc::Again) {
      if (!c.read.timer_set) add_timer(c.read, u.conf->read_timeout);
      return;
    }
    if (res.rc == Rc::Error) {
      next_upstream(r, u, kNextError);
      return;
    }
    if (res.rc == Rc::Done) {
      log_error(LogLevel::Error, *c.log, 0, "upstream prematurely closed connection");
      next_upstream(r, u, kNextError);
      return;
    }
    u.buffer.last += res.n;
    u.state->bytes_received += static_cast<off_t>(res.n);
    HeaderResult hr = u.protocol->process_header(r);
    while (hr == HeaderResult::Interim) {
      if (forward_interim(r, u) != Rc::Ok) {
        finalize_upstream(r, u, Code::status(kHttpClientClosedRequest));
        return;
      }
      u.headers_in = UpstreamHeadersIn{};
      hr = u.protocol->process_header(r);
    }
    if (hr == HeaderResult::Again) {
      if (u.buffer.last == u.buffer.end) {
        log_error(LogLevel::Error, *c.log, 0, "upstream sent too big header");
        next_upstream(r, u, kNextInvalidHeader);
        return;
      }
      continue;
    }
    if (hr == HeaderResult::Invalid) {
      next_upstream(r, u, kNextInvalidHeader);
      return;
    }
    if (hr == HeaderResult::Error) {
      finalize_upstream(r, u, Code::status(500));
      return;
    }
    break;
  }
  u.state->header_time = static_cast<int64_t>(since(u.state->start_msec));
  u.state->status = u.headers_in.status;
  if (c.read.timer_set) del_timer(c.read);
  if (test_next(r, u) || serve_revalidated(r, u)) return;
  if (intercept_error(r, u)) return;
  find_accel_headers(u);
  if (u.headers_in.x_accel_redirect != nullptr &&
      !(u.conf->ignore_headers & kIgnoreXAccelRedirect)) {
    accel_redirect(r, u);
    return;
  }
  decide_caching(r, u);
  if (Code rc = copy_headers(r, u); rc != Rc::Ok) {
    finalize_upstream(r, u, rc);
    return;
  }
  apply_accel_headers(r, u);
  if (u.cache != nullptr && !u.buffering) u.cache->store = u.cache->may_store = false;
  if (u.protocol->rewrite_headers != nullptr) u.protocol->rewrite_headers(r);
  send_response(r, u);
}

}  // namespace

void post_upstream_output(Upstream& u) {
  if (u.peer.connection != nullptr && u.request_sent && may_send(u)) {
    post_event(u.peer.connection->write);
  }
}

namespace {

// proxy_bind's address for this request, and its text as written or made, which logs name: the
// configured one, or its variables' value (none when empty; an error logged, and none, when it is
// not an address). nginx: ngx_http_upstream_set_local
void set_local_address(Request& r, const UpstreamConf& conf, PeerConnection& pc) {
  pc.transparent = conf.local_transparent;
  if (conf.local_value == nullptr) {
    pc.local = conf.local;
    pc.local_name = conf.local_name;
    return;
  }
  pc.local = nullptr;
  std::string_view text = conf.local_value->eval(r);
  if (text.empty()) return;
  auto* addr = r.pool->make<SockAddr>();
  if (!parse_addr_port(text, *addr)) {
    log_error(LogLevel::Error, r.log(), 0, "invalid local address \"%.*s\"",
              static_cast<int>(text.size()), text.data());
    return;
  }
  pc.local = addr;
  pc.local_name = text;
}

}  // namespace

// The peer is known: the group's balancer sets up the tries, and the first connect starts.
void start_upstream(Request& r, Upstream& u) {
  UpstreamGroup& g = u.group != nullptr ? *u.group : *u.conf->group;
  if (Status s = g.init_peer(r, g, u.peer); !s.ok()) {
    log_error(LogLevel::Error, r.log(), 0, "%s", s.message().c_str());
    finalize_upstream(r, u, Code::status(500));
    return;
  }
  if (u.conf->next_upstream_tries != 0 && u.peer.tries > u.conf->next_upstream_tries) {
    u.peer.tries = u.conf->next_upstream_tries;
  }
  set_local_address(r, *u.conf, u.peer);
  u.peer.so_keepalive = u.conf->socket_keepalive;
  u.peer.start_msec = clock::msec();
  connect_upstream(r, u);
}

Upstream* create_upstream(Request& r) {
  auto* u = r.pool->make<Upstream>();
  u->peer.log = r.connection->log;
  r.upstream = u;
  return u;
}

void init_upstream(Request& r) {
  Upstream& u = *r.upstream;
  Connection& c = *r.connection;
  WEIR_DEBUG(*c.log, "http init upstream, client timer: %d", c.read.timer_set ? 1 : 0);
  if (c.read.timer_set) del_timer(c.read);
  u.buffering = u.conf->buffering;
  if (serve_from_cache(r, u)) return;  // a HIT: the upstream is not asked
  u.cleanup = add_request_cleanup(r, upstream_cleanup, &r);
  if (u.cleanup == nullptr) {
    finalize_request(r, Code::status(500));
    return;
  }
  if (Code rc = u.protocol->create_request(r); rc != Rc::Ok) {
    finalize_request(r, rc);
    return;
  }
  u.body_streaming = r.request_body_no_buffering && r.request_body != nullptr;
  r.read_event_handler = u.body_streaming ? streaming_body_handler : check_broken_connection;
  r.write_event_handler = request_empty_handler;
  r.log_upstream = log_upstream_part;
  // The client closed its side with the request (the FIN read with it): no new event will say so.
  if (!u.body_streaming && c.read.pending_eof) post_event(c.read);
  if (!u.resolve_host.empty()) {
    resolve_peer(r, u);
    return;
  }
  start_upstream(r, u);
}

void finalize_upstream(Request& r, Upstream& u, Code rc) {
  WEIR_DEBUG(r.log(), "finalize http upstream request: %d", rc.number());
  release_upstream(r, u, rc);
  bool client_gone =
      rc.is_status() && (rc.http_status() == 408 || rc.http_status() == kHttpClientClosedRequest);
  if (!u.header_sent || client_gone) {
    if (client_gone) close_temp_file(u);
    finalize_request(r, rc);
    return;
  }
  bool flush = false;
  if (rc == Rc::Error || rc.is_status()) {
    // The header went out: the client can only learn of the failure by the connection closing
    // before the response's end.
    rc = Rc::Error;
    flush = true;
  }
  if (r.header_only || (u.pipe != nullptr && u.pipe->downstream_error)) {
    finalize_request(r, rc);
    return;
  }
  if (rc == Rc::Ok) {
    copy_trailers(r, u);
    rc = send_special(r, true, false);
  } else if (flush) {
    r.keepalive = false;
    (void)send_special(r, false, true);
  }
  finalize_request(r, rc);
}

off_t append_request_body(Request& r, ChainLink**& tail) {
  off_t size = 0;
  for (ChainLink* in = r.request_body->bufs; in != nullptr; in = in->next) {
    if (in->buf->special()) continue;
    auto* b = r.pool->make<Buffer>(*in->buf);
    b->last_buf = false;
    if (b->in_memory()) b->start = b->pos;
    size += b->size();
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = b;
    cl->next = nullptr;
    *tail = cl;
    tail = &cl->next;
  }
  return size;
}

}  // namespace weir::http
