#include "os/recv_chain.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace weir {

namespace {
constexpr int kMaxIov = std::min(IOV_MAX, 64);
}  // namespace

IoResult recv_chain(int fd, ChainLink* chain, off_t limit) {
  iovec iov[kMaxIov];
  int n = 0;
  size_t total = 0;
  for (ChainLink* cl = chain; cl != nullptr && n < kMaxIov; cl = cl->next) {
    Buffer& b = *cl->buf;
    size_t room = static_cast<size_t>(b.end - b.last);
    if (limit > 0) room = std::min(room, static_cast<size_t>(limit) - total);
    if (room == 0) {
      if (limit > 0 && total == static_cast<size_t>(limit)) break;
      continue;
    }
    if (n > 0 && static_cast<char*>(iov[n - 1].iov_base) + iov[n - 1].iov_len == b.last) {
      iov[n - 1].iov_len += room;  // adjacent memory: one piece
    } else {
      iov[n].iov_base = b.last;
      iov[n].iov_len = room;
      n++;
    }
    total += room;
  }
  if (n == 0) return {Rc::Again, 0};
  ssize_t got;
  do {
    got = ::readv(fd, iov, n);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return {errno == EAGAIN ? Rc::Again : Rc::Error, 0, true};
  if (got == 0) return {Rc::Done, 0};
  // Hand the bytes to the buffers in order.
  size_t left = static_cast<size_t>(got);
  for (ChainLink* cl = chain; cl != nullptr && left > 0; cl = cl->next) {
    Buffer& b = *cl->buf;
    size_t room = static_cast<size_t>(b.end - b.last);
    size_t take = std::min(room, left);
    b.last += take;
    left -= take;
  }
  return {Rc::Ok, static_cast<size_t>(got), static_cast<size_t>(got) < total};
}

}  // namespace weir
