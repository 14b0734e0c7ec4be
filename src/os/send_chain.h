// The Linux send chain (seed 004): adjacent memory buffers go out in one writev (up to IOV_MAX),
// contiguous ranges of one file in one sendfile, both up to a byte limit; a partial write leaves
// the chain pointing at the unsent part. With tcp_nopush, headers that precede file data are held
// back (MSG_MORE) so they leave in the same packet as the file's first bytes, and nothing is held
// once the response's data is queued, unless the close follows at once (fin_follows): then the
// last bytes wait for the FIN, and the peer gets one packet where it would get two. nginx:
// src/os/unix/ngx_linux_sendfile_chain.c, src/os/unix/ngx_writev_chain.c
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include "core/buffer.h"
#include "core/log.h"
#include "core/status.h"

namespace weir {

// What the send chain needs to know and update about a socket.
struct SendState {
  int fd = -1;
  off_t sent = 0;        // bytes sent on this socket so far
  bool blocked = false;  // the last call stopped because the socket would block
  bool nopush = false;   // tcp_nopush: hold headers that precede file data
  // The connection is closed (or half-closed) as soon as the chain is sent: its last bytes go with
  // MSG_MORE, so that the FIN the close makes leaves in the same packet as they do.
  bool fin_follows = false;
  // The location's sendfile: whether the copy filter passes file buffers on (it reads them into
  // memory otherwise); send_chain sends any file buffer it is given with sendfile.
  bool use_sendfile = true;
};

// The level a failed send is logged at: info for a client that went away, crit for the rest.
LogLevel send_error_level(int err);

// The largest sendfile() the kernel takes in one call, rounded down to a page.
constexpr off_t kMaxSendfileSize = 2147479552;

// What a send answers: Ok with everything sent (rest is nullptr), Again with rest the first link
// not fully sent (the socket blocked, or the limit was reached), Error (logged at info for a
// peer's reset, else crit; the connection is done for).
struct SendResult {
  Rc rc = Rc::Error;
  ChainLink* rest = nullptr;
};

// Sends up to limit bytes of the chain (0: no limit).
SendResult send_chain(SendState& s, ChainLink* in, off_t limit, const Log& log);

// Collects memory buffers starting at in into iov (coalescing adjacent memory), up to limit bytes.
// Returns the first link not collected (a file buffer, or the one past the limit).
struct IoVecs {
  struct iovec* iov;
  int count;
  int max;
  size_t size;
};
ChainLink* chain_to_iovec(IoVecs& vec, ChainLink* in, off_t limit);

// writev() that reports EAGAIN as 0 bytes with blocked set, and errors as -1.
ssize_t writev_nonblocking(SendState& s, IoVecs& vec, bool more, const Log& log);

}  // namespace weir
