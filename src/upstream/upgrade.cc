#include "upstream/upgrade.h"

#include <algorithm>
#include <cerrno>

#include "core/str.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "upstream/upstream.h"

namespace weir::http {

namespace {

// What the client sent after the upgrade request, on its way to the upstream (the upstream's
// bytes go the other way through u.buffer).
struct Tunnel {
  Buffer* from_client = nullptr;
};

Tunnel& tunnel_of(Upstream& u) {
  return *static_cast<Tunnel*>(u.input_filter_ctx);
}

bool empty(const Buffer& b) {
  return b.pos == b.last;
}

// Moves what src has to dst through b, as far as both sockets allow; then decides whether the
// tunnel is over and sets the timers of what it waits for. False when it ended the request.
bool relay(Request& r, Upstream& u, bool from_upstream, bool do_write) {
  Connection& up = *u.peer.connection;
  Connection& down = *r.connection;
  Connection& src = from_upstream ? up : down;
  Connection& dst = from_upstream ? down : up;
  Buffer& b = from_upstream ? u.buffer : *tunnel_of(u).from_client;
  for (;;) {
    if (do_write && !empty(b) && dst.write.ready) {
      ChainLink cl{&b, nullptr};
      if (dst.send_chain(&cl, 0).rc == Rc::Error) {
        finalize_upstream(r, u, Rc::Error);
        return false;
      }
      if (empty(b)) b.pos = b.last = b.start;
    }
    if (b.last < b.end && src.read.ready && !src.read.eof) {
      IoResult res = src.recv(b.last, static_cast<size_t>(b.end - b.last));
      if (res.rc == Rc::Ok) {
        b.last += res.n;
        if (from_upstream) u.state->bytes_received += static_cast<off_t>(res.n);
        do_write = true;
        continue;
      }
      if (res.rc == Rc::Error) src.read.eof = true;  // logged by recv; the tunnel ends
    }
    break;
  }
  Buffer& to_client = u.buffer;
  Buffer& to_upstream = *tunnel_of(u).from_client;
  if ((up.read.eof && empty(to_client)) || (down.read.eof && empty(to_upstream))) {
    finalize_upstream(r, u, Rc::Ok);
    return false;
  }
  // Each side's writes wait under its send timeout; the upstream's silence under
  // proxy_read_timeout, as nginx (the client may stay silent).
  auto timer = [](Event& ev, bool wait, uint64_t ms) {
    if (wait) {
      add_timer(ev, ms);
    } else if (ev.timer_set) {
      del_timer(ev);
    }
  };
  timer(up.write, !empty(to_upstream) && !up.write.ready, u.conf->send_timeout);
  timer(down.write, !empty(to_client) && !down.write.ready, *core_loc(r).send_timeout);
  timer(up.read, !up.read.ready, u.conf->read_timeout);
  return true;
}

// A timed-out upstream read or write ends the tunnel (504, logged; the client's connection closes).
bool upstream_timed_out(Request& r, Upstream& u, Event& ev) {
  if (!ev.timedout) return false;
  ev.timedout = false;
  log_error(LogLevel::Error, *u.peer.connection->log, ETIMEDOUT, "upstream timed out");
  finalize_upstream(r, u, Code::status(504));
  return true;
}

void upstream_read(Request& r, Upstream& u) {
  if (!upstream_timed_out(r, u, u.peer.connection->read)) (void)relay(r, u, true, false);
}

void upstream_write(Request& r, Upstream& u) {
  if (!upstream_timed_out(r, u, u.peer.connection->write)) (void)relay(r, u, false, true);
}

void client_read(Request& r) {
  (void)relay(r, *r.upstream, false, false);
}

void client_write(Request& r) {
  Connection& c = *r.connection;
  if (c.write.timedout) {
    c.timedout = true;
    log_error(LogLevel::Info, *c.log, ETIMEDOUT, "client timed out");
    finalize_upstream(r, *r.upstream, Code::status(408));
    return;
  }
  (void)relay(r, *r.upstream, true, true);
}

}  // namespace

void start_upgraded(Request& r, Upstream& u) {
  Connection& down = *r.connection;
  Connection& up = *u.peer.connection;
  down.log->action = "proxying upgraded connection";
  if (*core_loc(r).tcp_nodelay) {
    down.set_tcp_nodelay();
    up.set_tcp_nodelay();
  }
  auto* t = r.pool->make<Tunnel>();
  u.input_filter_ctx = t;
  // Bytes the client sent after its request header are the first to go up.
  Buffer* in = r.header_in;
  size_t early = in != nullptr ? static_cast<size_t>(in->last - in->pos) : 0;
  t->from_client = Buffer::create_temp(*r.pool, std::max(early, u.conf->buffer_size));
  if (early > 0) {
    t->from_client->last = put(t->from_client->last, {in->pos, early});
    in->pos = in->last;
  }
  del_timer(down.read);
  del_timer(down.write);
  u.read_event_handler = upstream_read;
  u.write_event_handler = upstream_write;
  r.read_event_handler = client_read;
  r.write_event_handler = client_write;
  if (relay(r, u, true, true)) (void)relay(r, u, false, true);
}

}  // namespace weir::http
