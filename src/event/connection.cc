#include "event/connection.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "event/event_loop.h"
#include "event/ssl.h"
#include "os/recv_chain.h"
#include "os/socket.h"

namespace weir {

ConnectionPool* ConnectionPool::current = nullptr;

namespace {
bool g_exiting = false;
int g_worker_number = 0;
uint64_t g_local_counter = 0;
uint64_t* g_shared_counter = nullptr;
}  // namespace

bool worker_exiting() {
  return g_exiting;
}
void set_worker_exiting(bool exiting) {
  g_exiting = exiting;
}

int worker_number() {
  return g_worker_number;
}
void set_worker_number(int n) {
  g_worker_number = n;
}

namespace {
uint64_t g_local_stats[static_cast<int>(StubStat::Count)];
}  // namespace

uint64_t* g_stub_stats = g_local_stats;

void set_connection_counter(uint64_t* shared) {
  g_shared_counter = shared;
  g_stub_stats = shared != nullptr ? shared + 1 : g_local_stats;
}

uint64_t next_connection_number() {
  if (g_shared_counter != nullptr) {
    return std::atomic_ref<uint64_t>(*g_shared_counter).fetch_add(1, std::memory_order_relaxed) + 1;
  }
  return ++g_local_counter;
}

namespace {

// What a read's answer means for the read event: a short read drains the socket (EPOLLRDHUP would
// have told us about a pending EOF), Done is the end of the stream, Error is logged here.
IoResult after_read(Connection& c, IoResult r) {
  Event& read = c.read;
  switch (r.rc) {
    case Rc::Ok:
      if (r.drained && !read.pending_eof) read.ready = false;
      return r;
    case Rc::Done:
      read.ready = false;
      read.eof = true;
      return r;
    case Rc::Again:
      read.ready = false;
      return r;
    default: {
      int err = errno;
      read.ready = false;
      read.error = true;
      bool quiet = err == ECONNRESET && !c.outbound;  // a client that resets is no error
      log_error(quiet ? LogLevel::Info : LogLevel::Error, *c.log, err, "recv() failed");
      return {Rc::Error, 0};
    }
  }
}

}  // namespace

IoResult Connection::recv(char* buf, size_t size) {
  if (ops != nullptr) return ops->recv(*this, buf, size);
  if (rx_stamped) return after_read(*this, recv_stamped(fd, buf, size, rx_ns));
  return after_read(*this, recv_once(fd, buf, size));
}

IoResult Connection::recv_chain(ChainLink* chain, off_t limit) {
  if (ops != nullptr) return ops->recv_chain(*this, chain, limit);
  IoResult r = weir::recv_chain(fd, chain, limit);
  if (r.rc == Rc::Ok) rx_ns = 0;  // bytes of unknown age (a body, perhaps what follows it)
  // A chain with no room read nothing: that says nothing about the socket.
  if (r.rc == Rc::Again && !r.drained) return r;
  return after_read(*this, r);
}

SendResult Connection::send_chain(ChainLink* in, off_t limit) {
  if (ops != nullptr) return ops->send_chain(*this, in, limit);
  SendResult r = weir::send_chain(io, in, limit, *log);
  if (io.blocked) write.ready = false;
  if (r.rc == Rc::Error) error = true;
  return r;
}

IoResult Connection::send_from_pipe(KernelPipe& p) {
  IoResult r = splice_out(p, fd);
  if (r.rc == Rc::Ok) {
    io.sent += static_cast<off_t>(r.n);
  } else if (r.rc == Rc::Again) {
    write.ready = false;
  } else {
    int err = errno;
    log_error(send_error_level(err), *log, err, "splice() failed");
    error = true;
  }
  return r;
}

int Connection::peek() {
  if (ops != nullptr) return ops->peek(*this);
  char byte;
  ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK);
  return n > 0 ? 1 : static_cast<int>(n);
}

void Connection::set_tcp_nodelay() {
  if (tcp_nodelay_set || peer.sa.sa_family == AF_UNIX) return;
  if (weir::set_tcp_nodelay(fd, true) == 0) tcp_nodelay_set = true;
}

uint16_t Connection::peer_port() const {
  if (peer.sa.sa_family == AF_INET) return ntohs(peer.in.sin_port);
  if (peer.sa.sa_family == AF_INET6) return ntohs(peer.in6.sin6_port);
  return 0;
}

void ConnectionPool::init(size_t n) {
  all_ = std::vector<Connection>(n);
  free_ = nullptr;
  for (size_t i = n; i-- > 0;) {
    all_[i].next_free = free_;
    free_ = &all_[i];
  }
  in_use_ = 0;
}

Connection* ConnectionPool::get(int fd, const Log& log) {
  if (free_ == nullptr) drain(log);
  if (free_ == nullptr) {
    log_error(LogLevel::Alert, log, 0, "%zu worker_connections are not enough", all_.size());
    return nullptr;
  }
  Connection* c = free_;
  free_ = c->next_free;
  in_use_++;
  bool rinst = c->read.instance;
  bool winst = c->write.instance;
  // Reset to a fresh state, keeping the instance bits flipped so stale epoll reports are ignored.
  c->data = nullptr;
  c->read = Event{};
  c->write = Event{};
  c->read.instance = !rinst;
  c->write.instance = !winst;
  c->write.write = true;
  c->read.data = c->write.data = c;
  c->own_log = Log{};
  c->log = &c->own_log;
  c->read.log = c->write.log = c->log;
  c->fd = fd;
  c->io = SendState{};
  c->io.fd = fd;
  c->listening = nullptr;
  c->peer_len = 0;
  c->addr_text = {};
  c->buffer = nullptr;
  c->ssl = nullptr;
  c->kept = nullptr;
  c->pending_error = false;
  c->ops = nullptr;
  c->number = 0;
  c->requests = 0;
  c->start_msec = clock::msec();
  c->rx_ns = 0;
  c->next_free = nullptr;
  c->reclaim_prev = c->reclaim_next = nullptr;
  c->reclaim = Reclaim::No;
  c->buffered = 0;
  c->error = c->timedout = c->destroyed = c->idle = c->close = false;
  c->tcp_nodelay_set = c->is_listening = c->shared_counter = c->outbound = false;
  c->need_last_buf = c->rx_stamped = false;
  c->write_waits_for_read = false;
  return c;
}

void ConnectionPool::free(Connection& c) {
  c.fd = -1;
  c.next_free = free_;
  free_ = &c;
  in_use_--;
}

void ConnectionPool::set_reclaim(Connection& c, Reclaim to) {
  if (c.reclaim != Reclaim::No) {
    List& l = list(c.reclaim);
    (c.reclaim_prev != nullptr ? c.reclaim_prev->reclaim_next : l.head) = c.reclaim_next;
    (c.reclaim_next != nullptr ? c.reclaim_next->reclaim_prev : l.tail) = c.reclaim_prev;
    c.reclaim_prev = c.reclaim_next = nullptr;
    l.count--;
  }
  c.reclaim = to;
  if (to == Reclaim::No) return;
  List& l = list(to);
  c.reclaim_prev = l.tail;
  (l.tail != nullptr ? l.tail->reclaim_next : l.head) = &c;
  l.tail = &c;
  l.count++;
  c.waiting_since = clock::msec();
}

void ConnectionPool::drain(const Log& log) {
  // Each kind of reclaim is logged at most once a second (as nginx does for idle ones): under a
  // flood a message per connection would fill the disk.
  uint64_t now_sec = clock::msec() / 1000;
  if (idle_.head != nullptr) {
    if (idle_logged_sec_ != now_sec) {
      idle_logged_sec_ = now_sec;
      log_error(LogLevel::Warn, log, 0,
                "%zu worker_connections are not enough, reusing connections", all_.size());
    }
    // Close up to 32 idle connections (at least one), oldest first.
    size_t n = std::clamp<size_t>(idle_.count / 8, 1, 32);
    for (size_t i = 0; i < n && idle_.head != nullptr; i++) {
      Connection* c = idle_.head;
      set_reclaim(*c, Reclaim::No);
      c->close = true;
      c->read.handler(c->read);
    }
    return;
  }
  if (waiting_.head == nullptr) return;
  // No idle connection: the one that has waited longest without sending a whole request header
  // gives way (a slowloris client, most likely), rather than a new client being refused.
  Connection* c = waiting_.head;
  waiting_reclaimed_++;
  if (waiting_logged_sec_ != now_sec) {
    waiting_logged_sec_ = now_sec;
    log_error(
        LogLevel::Warn, log, 0,
        "%zu worker_connections are not enough, closing a connection that has sent no complete "
        "request header for %llu ms (%llu closed so since the last such message)",
        all_.size(), static_cast<unsigned long long>(clock::msec() - c->waiting_since),
        static_cast<unsigned long long>(waiting_reclaimed_));
    waiting_reclaimed_ = 0;
  }
  set_reclaim(*c, Reclaim::No);
  c->close = true;
  c->read.handler(c->read);
}

void ConnectionPool::close_idle() {
  for (Connection& c : all_) {
    if (c.fd != -1 && c.idle && !c.is_listening) {
      c.close = true;
      c.read.handler(c.read);
    }
  }
}

void close_connection(Connection& c) {
  if (c.fd == -1) return;
  if (c.read.timer_set) del_timer(c.read);
  if (c.write.timer_set) del_timer(c.write);
  delete_posted_event(c.read);
  delete_posted_event(c.write);
  c.read.closed = c.write.closed = true;
  if (c.reclaim != Reclaim::No && ConnectionPool::current != nullptr) {
    ConnectionPool::current->set_reclaim(c, Reclaim::No);
  }
  int fd = c.fd;
  ssl_shutdown(c);
  c.pool.reset();
  c.buffer = nullptr;
  c.destroyed = true;
  // The kernel drops the fd from epoll when it is closed; no epoll_ctl needed.
  if (ConnectionPool::current != nullptr) {
    ConnectionPool::current->free(c);
  } else {
    c.fd = -1;
  }
  if (::close(fd) < 0) log_error(LogLevel::Alert, *c.log, errno, "close() socket %d failed", fd);
}

}  // namespace weir
