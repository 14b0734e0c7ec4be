// Reading from a socket into a chain of buffers with one readv: the free space of each buffer
// (last..end), in order, up to a byte limit. What the upstream's event pipe reads with.
// nginx: src/os/unix/ngx_readv_chain.c
#pragma once

#include <sys/types.h>

#include "core/buffer.h"
#include "core/status.h"

namespace weir {

// Reads into the free space of the buffers from `chain` on (at most `limit` bytes; 0: no limit) and
// advances each buffer's last by what it received (see IoResult). A chain with no free space reads
// nothing and answers Again without a system call, not drained (the socket may hold more).
IoResult recv_chain(int fd, ChainLink* chain, off_t limit);

}  // namespace weir
