// A kernel pipe between two sockets: splice(2) moves a body from one socket into the pipe and from
// the pipe into the other without copying it through user memory, so a relayed body costs two calls
// per pipe's worth (64 KiB) instead of a recv and a send per buffer. A worker keeps a few empty
// pipes for the next relay; a pipe that still holds bytes is closed with them.
#pragma once

#include <cstddef>

#include "core/status.h"

namespace weir {

struct KernelPipe {
  int rd = -1;
  int wr = -1;
  size_t held = 0;      // bytes in the pipe
  size_t capacity = 0;  // what it holds at most
  bool open() const { return rd != -1; }
  size_t room() const { return capacity - held; }
};

// A pipe from this worker's spares, or a new one. False (errno set) when none could be made.
bool open_kernel_pipe(KernelPipe& p);
// Back to the spares when it is empty and there is room, else closed. Idempotent.
void close_kernel_pipe(KernelPipe& p);

// At most max bytes from the socket into the pipe (see IoResult). Again when the socket has nothing
// now, or (with bytes held) when the pipe is full: pipe_full tells the two apart.
IoResult splice_in(int fd, KernelPipe& p, size_t max, bool& pipe_full);
// What the pipe holds, into the socket: Ok with the bytes moved (p.held goes down), Again when the
// socket takes nothing now, Error (errno set).
IoResult splice_out(KernelPipe& p, int fd);

// The socket has a byte waiting (looked at, not taken).
bool socket_has_data(int fd);

}  // namespace weir
