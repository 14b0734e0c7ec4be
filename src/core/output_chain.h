// OutputChain: passes a chain on as is when it can, and otherwise copies it into its own buffers
// (output_buffers N x size, reused by tag through update_chains): file data is read into memory
// when sendfile is off or a later filter needs it in memory, read-only memory is copied when a
// filter needs it writable. nginx: src/core/ngx_output_chain.c (ngx_output_chain_ctx_t)
#pragma once

#include "core/buffer.h"
#include "core/log.h"
#include "core/status.h"

namespace weir {

struct OutputChain {
  using OutputFn = Rc (*)(void* ctx, ChainLink* in);

  Buffer* buf = nullptr;  // the buffer being filled
  ChainLink* in = nullptr;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
  bool sendfile = false;
  bool need_in_memory = false;
  bool need_in_temp = false;
  Pool* pool = nullptr;
  int allocated = 0;
  Bufs bufs;
  BufTag tag = nullptr;
  OutputFn output = nullptr;
  void* output_ctx = nullptr;
  const Log* log = nullptr;
  // Before file data is read: how much of it may be read now without waiting for the disk (Ok
  // with ready), or Again while it is brought in (aio threads); nullptr: all of it.
  Rc (*file_ready)(void* ctx, const Buffer& src, off_t want, off_t& ready) = nullptr;
  // A directio file's data read elsewhere (a thread): Ok with n bytes in dst, or Again.
  Rc (*read_direct)(void* ctx, const Buffer& src, char* dst, off_t size, ssize_t& n) = nullptr;
  void* file_ready_ctx = nullptr;

  // Ok, Again (something is left to copy or send), Error or Done.
  Rc write(ChainLink* in);

  bool as_is(Buffer& b) const;
};

}  // namespace weir
