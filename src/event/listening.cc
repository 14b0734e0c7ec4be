#include "event/listening.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weir {

namespace {

AcceptOptions g_accept;

// The client's address as the accept debug line names it.
std::string peer_text(const sockaddr_storage& ss, socklen_t len) {
  SockAddr peer;
  std::memcpy(&peer.ss, &ss, std::min<size_t>(len, sizeof peer.ss));
  peer.len = len;
  return peer.to_string();
}

// Accepts what is waiting (one connection, or up to 64 with multi_accept).
void accept_connections(Connection& lc) {
  auto* ls = lc.listening;
  int count = 0;
  do {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = ::accept4(lc.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      LogLevel level = (err == EMFILE || err == ENFILE) ? LogLevel::Crit : LogLevel::Alert;
      log_error(level, *lc.log, err, "accept4() failed");
      return;
    }
    stub_stat_add(StubStat::Accepted, 1);
    Connection* c = ConnectionPool::current->get(fd, *lc.log);
    if (c == nullptr) {
      ::close(fd);
      return;
    }
    stub_stat_add(StubStat::Handled, 1);
    c->listening = ls;
    c->rx_stamped = ls->opt.rx_timestamps;
    std::memcpy(&c->peer, &ss, std::min<size_t>(len, sizeof c->peer));
    c->peer_len = len;
    if (ss.ss_family == AF_UNIX) c->peer.sa.sa_family = AF_UNIX;
    c->number = next_connection_number();
    c->log->sink = ls->log_sink;
    c->log->connection = c->number;
    if (g_accept.debug_unix || !g_accept.debug_connection.empty()) {
      c->log->debug = ss.ss_family == AF_UNIX ? g_accept.debug_unix
                                              : cidr_match(reinterpret_cast<const sockaddr*>(&ss),
                                                           g_accept.debug_connection);
    }
    WEIR_DEBUG(*c->log, "accept: %s fd:%d", peer_text(ss, len).c_str(), fd);
    if (EventLoop::current->add_connection(*c) != Rc::Ok) {
      close_connection(*c);
      continue;
    }
    ls->handler(*c);
    count++;
  } while (g_accept.multi_accept && count < 64);
}

// With EPOLLEXCLUSIVE the kernel wakes the first sleeping worker on the socket's wait queue, so one
// worker would take every connection while it is idle (and fill up under a flood of idle
// connections). Re-adding the socket moves this worker to the end of the queue: every 16 accepts,
// as nginx does, and at every accept while this worker has few free connections left, so that
// workers with room go first.
void reorder_accept(Connection& lc) {
  if (!g_accept.exclusive) return;
  // Counted from 1: a worker that re-added at its first accept would hand the next 15 back to the
  // first.
  if (++lc.requests % 16 != 0 && !ConnectionPool::current->nearly_full()) return;
  EventLoop& loop = *EventLoop::current;
  if (loop.del_connection(lc) != Rc::Ok) return;
  (void)loop.add_listening(lc, true);
}

void accept_handler(Event& ev) {
  auto& lc = *static_cast<Connection*>(ev.data);
  accept_connections(lc);
  reorder_accept(lc);
}

}  // namespace

Status enable_accept(Listening& ls, ConnectionPool& pool, EventLoop& loop,
                     const AcceptOptions& opt) {
  g_accept = opt;
  Log log;
  log.sink = ls.log_sink;
  Connection* c = pool.get(ls.fd, log);
  if (c == nullptr) {
    return Status::errorf("could not listen on %s: no free connection", ls.addr_text.c_str());
  }
  c->is_listening = true;
  c->listening = &ls;
  c->log->sink = ls.log_sink;
  c->read.handler = accept_handler;
  c->read.accept = true;
  ls.connection = c;
  pool.listening_count++;
  if (loop.add_listening(*c, opt.exclusive) != Rc::Ok) {
    return Status::errorf("epoll_ctl() for %s failed", ls.addr_text.c_str());
  }
  return {};
}

void disable_accept(Listening& ls, bool close_fd) {
  Connection* c = ls.connection;
  if (c == nullptr) return;
  ls.connection = nullptr;
  if (ConnectionPool::current != nullptr) ConnectionPool::current->listening_count--;
  // The master and other workers keep their copies: deregister explicitly, then close ours.
  int fd = c->fd;
  (void)EventLoop::current->del_connection(*c);
  ConnectionPool::current->free(*c);
  if (close_fd) {
    ::close(fd);
    ls.fd = -1;
  }
}

}  // namespace weir
