#include "os/send_chain.h"

#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "core/file.h"

namespace weir {

LogLevel send_error_level(int err) {
  // A client that went away is routine; anything else is worth attention.
  return (err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ETIMEDOUT)
             ? LogLevel::Info
             : LogLevel::Crit;
}

namespace {

constexpr int kIovMax = std::min(IOV_MAX, 1024);

SendResult sent_up_to(ChainLink* rest) {
  return {rest == nullptr ? Rc::Ok : Rc::Again, rest};
}

}  // namespace

ChainLink* chain_to_iovec(IoVecs& vec, ChainLink* in, off_t limit) {
  vec.count = 0;
  vec.size = 0;
  char* prev = nullptr;
  for (; in != nullptr && static_cast<off_t>(vec.size) < limit; in = in->next) {
    Buffer* b = in->buf;
    if (b->special()) continue;
    if (b->in_file) break;
    if (!b->in_memory()) continue;  // nothing to send here (e.g. an empty sync buffer)
    off_t size = b->last - b->pos;
    if (size > limit - static_cast<off_t>(vec.size)) size = limit - vec.size;
    if (size == 0) continue;
    if (prev == b->pos && vec.count > 0) {
      vec.iov[vec.count - 1].iov_len += size;  // adjacent memory: one iovec
    } else {
      if (vec.count == vec.max) break;
      vec.iov[vec.count].iov_base = b->pos;
      vec.iov[vec.count].iov_len = size;
      vec.count++;
    }
    prev = b->pos + size;
    vec.size += size;
  }
  return in;
}

ssize_t writev_nonblocking(SendState& s, IoVecs& vec, bool more, const Log& log) {
  for (;;) {
    // sendmsg is writev with flags: no SIGPIPE from a peer that went away, and MSG_MORE when asked.
    struct msghdr msg {};
    msg.msg_iov = vec.iov;
    msg.msg_iovlen = vec.count;
    ssize_t n = ::sendmsg(s.fd, &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n >= 0) return n;
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      s.blocked = true;
      return 0;
    }
    log_error(send_error_level(err), log, err, "writev() failed");
    return -1;
  }
}

SendResult send_chain(SendState& s, ChainLink* in, off_t limit, const Log& log) {
  if (limit == 0 || limit > kMaxSendfileSize) limit = kMaxSendfileSize;
  s.blocked = false;
  struct iovec iovs[kIovMax];
  off_t send = 0;

  for (;;) {
    off_t prev_send = send;
    IoVecs header{iovs, 0, kIovMax, 0};
    ChainLink* cl = chain_to_iovec(header, in, limit - send);
    send += header.size;
    ssize_t sent;

    bool file_next = cl != nullptr && cl->buf->in_file && send < limit;
    if (file_next && header.count == 0) {
      Buffer* fb = cl->buf;
      off_t file_size = chain_coalesce_file(&cl, limit - send);
      send += file_size;
      // A file buffer that reaches the socket goes with sendfile, whatever the location now says:
      // its copy filter let it through under a location with sendfile on (a subrequest's), and a
      // later subrequest may have turned it off since (nginx sends it so too).
      off_t offset = fb->file_pos;
      for (;;) {
        sent = ::sendfile(s.fd, fb->file->fd, &offset, file_size);
        if (sent >= 0) break;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) {
          s.blocked = true;
          sent = 0;
          break;
        }
        log_error(send_error_level(err), log, err, "sendfile() failed");
        return {Rc::Error, in};
      }
      if (sent == 0 && !s.blocked) {
        // The file is shorter than the buffer says: it was truncated under us.
        log_error(LogLevel::Alert, log, 0,
                  "sendfile() reported that \"%.*s\" was truncated at %lld",
                  static_cast<int>(fb->file->name.size()), fb->file->name.data(),
                  static_cast<long long>(fb->file_pos));
        return {Rc::Error, in};
      }
    } else {
      if (header.count == 0) return sent_up_to(in);  // only special buffers left
      // Hold headers back when file data follows (tcp_nopush): they leave with the file's first
      // packet; and the chain's last bytes when the close follows: they leave with the FIN.
      bool more = (s.nopush && file_next) || (s.fin_follows && cl == nullptr);
      sent = writev_nonblocking(s, header, more, log);
      if (sent < 0) return {Rc::Error, in};
    }

    s.sent += sent;
    in = chain_update_sent(in, sent);
    if (s.blocked) return sent_up_to(in);
    if (send - prev_send != sent) {
      // A short write: the socket buffer is full; the caller waits for the write event.
      s.blocked = true;
      return sent_up_to(in);
    }
    if (send >= limit || in == nullptr) return sent_up_to(in);
  }
}

}  // namespace weir
