#include "os/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/status.h"

namespace weir {

bool set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

int set_tcp_nodelay(int fd, bool on) {
  int v = on ? 1 : 0;
  return ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

int set_tcp_cork(int fd, bool on) {
  int v = on ? 1 : 0;
  return ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, sizeof v);
}

IoResult recv_once(int fd, char* buf, size_t size) {
  for (;;) {
    ssize_t n = ::recv(fd, buf, size, 0);
    if (n > 0) return {Rc::Ok, static_cast<size_t>(n), static_cast<size_t>(n) < size};
    if (n == 0) return {Rc::Done, 0};
    if (errno == EINTR) continue;
    return {errno == EAGAIN ? Rc::Again : Rc::Error, 0, true};
  }
}

bool local_address(int fd, SockAddr& out) {
  out.len = sizeof out.ss;
  return ::getsockname(fd, out.sa(), &out.len) == 0;
}

Result<int> open_listening_socket(const SockAddr& addr, const ListenOptions& opt) {
  std::string text = addr.to_string();
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Status::errorf("socket() %s failed (%d: %s)", text.c_str(), errno, std::strerror(errno));
  }
  auto fail = [&](const char* what) -> Result<int> {
    int err = errno;
    ::close(fd);
    return Status::errorf("%s %s failed (%d: %s)", what, text.c_str(), err, std::strerror(err));
  };
  int one = 1;
  if (addr.family() != AF_UNIX) {
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
      return fail("setsockopt(SO_REUSEADDR)");
    }
    if (opt.reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      return fail("setsockopt(SO_REUSEPORT)");
    }
  }
  if (addr.family() == AF_INET6) {
    int v = opt.ipv6only;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
  }
  if (opt.rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt.rcvbuf, sizeof opt.rcvbuf);
  if (opt.sndbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt.sndbuf, sizeof opt.sndbuf);
  if (opt.so_keepalive) ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  if (opt.deferred) {
    int timeout = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &timeout, sizeof timeout);
  }
  if (addr.family() == AF_UNIX) {
    // A stale socket file from an earlier run would make bind() fail; nginx removes it too.
    const char* path = reinterpret_cast<const sockaddr_un*>(&addr.ss)->sun_path;
    struct stat st;
    if (::stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path);
  }
  if (::bind(fd, addr.sa(), addr.len) < 0) return fail("bind() to");
  if (addr.family() == AF_UNIX) {
    ::chmod(reinterpret_cast<const sockaddr_un*>(&addr.ss)->sun_path, 0666);
  }
  if (::listen(fd, opt.backlog) < 0) return fail("listen() to");
  if (opt.fastopen) {
    int q = 256;
    ::setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &q, sizeof q);
  }
  return fd;
}

}  // namespace weir
