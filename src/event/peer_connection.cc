#include "event/peer_connection.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/time_cache.h"
#include "event/event_loop.h"

namespace weir {

namespace {

// A refused or unreachable peer is the peer's failure (error level, as nginx logs it); anything
// else is ours (crit).
bool peer_fault(int err) {
  switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ETIMEDOUT:
    case ENOENT:  // a unix socket path with nothing behind it
    case EAGAIN:  // a unix socket whose backlog is full
      return true;
    default:
      return false;
  }
}

void no_handler(Event&) {}

bool set_option(int fd, int level, int name, int value, const Log& log, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) < 0) {
    log_error(LogLevel::Alert, log, errno, "setsockopt(%s) failed", what);
    return false;
  }
  return true;
}

// *_bind ... transparent: the socket may be bound to an address of another host (the client's),
// for the kernel's transparent proxying (TPROXY). nginx: ngx_event_set_transparent
bool set_transparent(int fd, int family, const Log& log) {
  if (family == AF_INET6)
    return set_option(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1, log, "IPV6_TRANSPARENT");
  if (family == AF_INET)
    return set_option(fd, IPPROTO_IP, IP_TRANSPARENT, 1, log, "IP_TRANSPARENT");
  return true;
}

}  // namespace

Rc connect_peer(PeerConnection& pc) {
  pc.connection = nullptr;
  pc.cached = false;
  if (pc.start_msec == 0) pc.start_msec = clock::msec();
  if (pc.get != nullptr) {
    Rc rc = pc.get(pc, pc.data);
    if (rc == Rc::Done) {
      pc.cached = true;
      return Rc::Ok;
    }
    if (rc != Rc::Ok) return rc;
  }
  if (pc.sockaddr == nullptr) return Rc::Busy;
  return open_peer(pc);
}

Rc open_peer(PeerConnection& pc) {
  static Log no_log;
  const Log& log = pc.log != nullptr ? *pc.log : no_log;
  pc.connection = nullptr;
  pc.cached = false;
  const SockAddr& addr = *pc.sockaddr;
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log_error(LogLevel::Alert, log, errno, "socket() failed");
    return Rc::Error;
  }
  Connection* c = ConnectionPool::current->get(fd, log);
  if (c == nullptr) {
    ::close(fd);
    return Rc::Error;
  }
  if (pc.log != nullptr) {
    c->log = pc.log;
    c->read.log = c->write.log = pc.log;
  }
  c->number = log.connection;
  c->outbound = true;
  c->read.handler = c->write.handler = no_handler;  // the caller sets its own before the next wait
  std::memcpy(&c->peer, &addr.ss, std::min<size_t>(addr.len, sizeof c->peer));
  c->peer_len = addr.len;
  if (pc.rcvbuf > 0) set_option(fd, SOL_SOCKET, SO_RCVBUF, pc.rcvbuf, log, "SO_RCVBUF");
  if (pc.so_keepalive) set_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1, log, "SO_KEEPALIVE");
  if (pc.local != nullptr) {
    if (pc.transparent && !set_transparent(fd, pc.local->family(), log)) {
      close_connection(*c);
      return Rc::Error;
    }
    if (addr.family() != AF_UNIX) {
      // The port is chosen at connect time, so many connections can share one local address.
      set_option(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1, log, "IP_BIND_ADDRESS_NO_PORT");
    }
    if (::bind(fd, pc.local->sa(), pc.local->len) < 0) {
      log_error(LogLevel::Crit, log, errno, "bind(%.*s) failed",
                static_cast<int>(pc.local_name.size()), pc.local_name.data());
      close_connection(*c);
      return Rc::Error;
    }
  }
  if (EventLoop::current->add_connection(*c) != Rc::Ok) {
    close_connection(*c);
    return Rc::Error;
  }
  int rc;
  do {
    rc = ::connect(fd, addr.sa(), addr.len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    int err = errno;
    log_error(peer_fault(err) ? LogLevel::Error : LogLevel::Crit, log, err,
              "connect() to %.*s failed", static_cast<int>(pc.name.size()), pc.name.data());
    close_connection(*c);
    return peer_fault(err) ? Rc::Declined : Rc::Error;
  }
  WEIR_DEBUG(log, "connect to %.*s, fd:%d", static_cast<int>(pc.name.size()), pc.name.data(), fd);
  pc.connection = c;
  if (rc < 0) return Rc::Again;  // the write event says when it is done
  c->write.ready = true;
  return Rc::Ok;
}

int connect_error(Connection& c) {
  if (!c.pending_error) return 0;  // connected: epoll reports a failed connect with EPOLLERR
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  c.pending_error = false;  // read, so cleared
  return err;
}

}  // namespace weir
