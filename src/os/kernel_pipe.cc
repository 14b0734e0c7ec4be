#include "os/kernel_pipe.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace weir {

namespace {

// Empty pipes kept for the next relay (this worker's; the master makes none).
struct Spare {
  int rd;
  int wr;
  size_t capacity;
};
std::array<Spare, 16> g_spares;
size_t g_spare_count = 0;

}  // namespace

bool open_kernel_pipe(KernelPipe& p) {
  if (p.open()) return true;
  p.held = 0;
  if (g_spare_count > 0) {
    const Spare& s = g_spares[--g_spare_count];
    p.rd = s.rd;
    p.wr = s.wr;
    p.capacity = s.capacity;
    return true;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return false;
  int size = ::fcntl(fds[0], F_GETPIPE_SZ);
  p.rd = fds[0];
  p.wr = fds[1];
  p.capacity = size > 0 ? static_cast<size_t>(size) : 65536;
  return true;
}

void close_kernel_pipe(KernelPipe& p) {
  if (!p.open()) return;
  if (p.held == 0 && g_spare_count < g_spares.size()) {
    g_spares[g_spare_count++] = Spare{p.rd, p.wr, p.capacity};
  } else {
    ::close(p.rd);
    ::close(p.wr);
  }
  p.rd = p.wr = -1;
  p.held = 0;
}

IoResult splice_in(int fd, KernelPipe& p, size_t max, bool& pipe_full) {
  pipe_full = false;
  ssize_t n;
  do {
    n = ::splice(fd, nullptr, p.wr, nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    p.held += static_cast<size_t>(n);
    return {Rc::Ok, static_cast<size_t>(n), false};
  }
  if (n == 0) return {Rc::Done, 0, true};
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    // The pipe may be out of slots before it is out of bytes (a slot per piece of the socket's
    // data): with bytes held, the socket may still have more.
    pipe_full = p.held > 0;
    return {Rc::Again, 0, !pipe_full};
  }
  return {Rc::Error, 0, true};
}

IoResult splice_out(KernelPipe& p, int fd) {
  ssize_t n;
  do {
    n = ::splice(p.rd, nullptr, fd, nullptr, p.held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    p.held -= static_cast<size_t>(n);
    return {Rc::Ok, static_cast<size_t>(n), false};
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return {Rc::Again, 0, false};
  }
  if (n == 0) errno = EPIPE;  // nothing moved from a pipe that holds bytes
  return {Rc::Error, 0, false};
}

bool socket_has_data(int fd) {
  char byte;
  return ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

}  // namespace weir
