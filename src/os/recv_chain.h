// Reading from a socket into a chain of buffers with one readv: the free space of each buffer
// (last..end), in order, up to a byte limit. What the upstream's event pipe reads with.
// nginx: src/os/unix/ngx_readv_chain.c
#pragma once

#include <sys/types.h>

#include "core/buffer.h"

namespace weir {

// Reads into the free space of the buffers from `chain` on (at most `limit` bytes; 0: no limit) and
// advances each buffer's last by what it received. Returns the bytes read (>0), 0 at end of stream,
// -1 when the socket would block, -2 on an error (errno set), as recv_once does. A chain with no
// free space reads nothing and returns -1 without a system call.
ssize_t recv_chain(int fd, ChainLink* chain, off_t limit);

}  // namespace weir
