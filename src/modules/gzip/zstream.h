// The streaming engine the gzip and gunzip filters share: zlib reads each input buffer in place
// and writes into at most `bufs` output buffers of the filter's own; when all of them wait for the
// client the filter takes no more input (its owner keeps it), so any response passes in bounded
// memory. A codec step (deflate or inflate) says what each call made of the output buffer. zlib's
// memory comes from the request's pool and large blocks go back as soon as zlib frees them.
// nginx: the loops of ngx_http_gzip_filter_module.c and ngx_http_gunzip_filter_module.c
#pragma once

#include <zlib.h>

#include "http/filter.h"
#include "http/request.h"

namespace weir::http {

// What a codec step made of a zlib call.
enum class ZStep { More, Stop, Error };

struct ZStream {
  z_stream z{};
  Request* r = nullptr;
  BufTag tag = nullptr;  // the filter module: its output buffers
  Bufs bufs{32, 4096};
  uint8_t buffered_bit = 0;  // the Request::buffered bit while zlib holds input

  ChainLink* in = nullptr;  // input not yet given to zlib, oldest first
  ChainLink** in_tail = &in;
  Buffer* in_buf = nullptr;   // the input zlib reads
  Buffer* out_buf = nullptr;  // the output zlib writes
  ChainLink* out = nullptr;   // output for the next filters
  ChainLink** out_tail = &out;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
  int made = 0;  // output buffers made

  int flush = Z_NO_FLUSH;    // what the current input asks of zlib
  bool started : 1 = false;  // zlib is initialised
  bool redo : 1 = false;     // zlib filled its buffer: call again before new input
  bool nomem : 1 = false;    // every output buffer waits for the client
  bool done : 1 = false;     // the stream ended (or failed)

  // Points zlib's allocator at the request's pool.
  void use_pool();
  // Queues the filter's input.
  void add_input(ChainLink* in);
  // After a zlib call: the input it took is consumed (and let go once all taken), the output
  // buffer ends where zlib stopped.
  void after_call();
  void append_out(Buffer* b);

  // What a codec step does with the output buffer: it is full (zlib has more to give: call again
  // before new input); a flush asked for went through (the buffer goes on marked flush); the stream
  // ended (the buffer goes on as the last).
  ZStep pass_full();
  ZStep pass_flush();
  ZStep pass_last();
};

using ZStepFn = ZStep (*)(ZStream& s, void* ctx);

// Runs the codec over the queued input as far as output buffers allow and passes what it made to
// `next`. Error: the stream is done with (the caller's end hook has to be called).
Rc run_zstream(ZStream& s, BodyNext next, ZStepFn step, void* ctx);

}  // namespace weir::http
