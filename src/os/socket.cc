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

namespace {

// Calls read (a recv-like call: bytes, 0 at the end, -1 and errno) until it is not interrupted,
// and says what it answered.
template <class Read>
IoResult read_once(size_t size, Read read) {
  for (;;) {
    ssize_t n = read();
    if (n > 0) return {Rc::Ok, static_cast<size_t>(n), static_cast<size_t>(n) < size};
    if (n == 0) return {Rc::Done, 0};
    if (errno == EINTR) continue;
    return {errno == EAGAIN ? Rc::Again : Rc::Error, 0, true};
  }
}

}  // namespace

IoResult recv_once(int fd, char* buf, size_t size) {
  return read_once(size, [&] { return ::recv(fd, buf, size, 0); });
}

IoResult recv_stamped(int fd, char* buf, size_t size, int64_t& arrived_ns) {
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  IoResult r = read_once(size, [&] {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    return ::recvmsg(fd, &msg, 0);
  });
  if (r.rc != Rc::Ok) return r;
  arrived_ns = 0;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  if (cm != nullptr && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
    timespec ts;
    std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
    arrived_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  return r;
}

void set_rx_timestamps(int fd, bool on) {
  int v = on ? 1 : 0;
  ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &v, sizeof v);
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
  for (auto [option, value] :
       {std::pair{TCP_KEEPIDLE, opt.keepidle}, std::pair{TCP_KEEPINTVL, opt.keepintvl},
        std::pair{TCP_KEEPCNT, opt.keepcnt}}) {
    if (value != 0) ::setsockopt(fd, IPPROTO_TCP, option, &value, sizeof value);
  }
  if (opt.rx_timestamps) set_rx_timestamps(fd, true);
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
