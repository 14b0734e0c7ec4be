// The streaming engine the compression filters share (gzip, gunzip, brotli, zstd): the codec reads
// each input buffer in place and writes into at most `bufs` output buffers of the filter's own;
// when all of them wait for the client the filter takes no more input (its owner keeps it), so any
// response passes in bounded memory. A codec step (one call of deflate, inflate,
// BrotliEncoderCompressStream, ZSTD_compressStream2 ...) moves the cursors and says what the call
// made of the output buffer. nginx: the loops of ngx_http_gzip_filter_module.c and
// ngx_http_gunzip_filter_module.c
#pragma once

#include "http/filter.h"
#include "http/request.h"

namespace weir::http {

// What the codec's current input asks of it: nothing more, to flush what it holds (a flushed
// buffer came), or to end the stream (the last buffer came).
enum class CodecFlush : uint8_t { None, Sync, Finish };

// What a codec step made of a call.
enum class CodecStep : uint8_t { More, Stop, Error };

struct CodecStream {
  Request* r = nullptr;
  BufTag tag = nullptr;  // the filter module: its output buffers
  Bufs bufs{32, 4096};
  uint8_t buffered_bit = 0;  // the Request::buffered bit while the codec holds input

  // The cursors a codec call reads and advances.
  const unsigned char* next_in = nullptr;
  size_t avail_in = 0;
  unsigned char* next_out = nullptr;
  size_t avail_out = 0;

  ChainLink* in = nullptr;  // input not yet given to the codec, oldest first
  ChainLink** in_tail = &in;
  Buffer* in_buf = nullptr;   // the input the codec reads
  Buffer* out_buf = nullptr;  // the output the codec writes
  ChainLink* out = nullptr;   // output for the next filters
  ChainLink** out_tail = &out;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
  int made = 0;  // output buffers made

  CodecFlush flush = CodecFlush::None;
  bool started : 1 = false;  // the codec is initialised
  bool redo : 1 = false;     // the codec filled its buffer: call again before new input
  bool nomem : 1 = false;    // every output buffer waits for the client
  bool done : 1 = false;     // the stream ended (or failed)

  // For a response the filter encodes: its request, its buffers' tag and how many.
  void init(Request& req, BufTag filter, Bufs out_bufs) {
    r = &req;
    tag = filter;
    bufs = out_bufs;
    buffered_bit = kGzipBuffered;  // the compressor's (or decompressor's) bit, whichever it is
  }
  // Queues the filter's input.
  void add_input(ChainLink* in);
  // After a codec call: the input it took is consumed (and let go once all taken), the output
  // buffer ends where the codec stopped.
  void after_call();
  void append_out(Buffer* b);

  // What a codec step does with the output buffer: it is full (the codec has more to give: call
  // again before new input); a flush asked for went through (the buffer goes on marked flush); the
  // stream ended (the buffer goes on as the last).
  CodecStep pass_full();
  CodecStep pass_flush();
  CodecStep pass_last();
  // All the input so far is in: what the codec gave for it goes on without waiting for a full
  // buffer (gzip_no_buffer, gunzip).
  CodecStep pass_partial();
};

using CodecStepFn = CodecStep (*)(CodecStream& s, void* ctx);

// Runs the codec over the queued input as far as output buffers allow and passes what it made to
// `next`. Error: the stream is done with (the caller ends the codec).
Rc run_codec_stream(CodecStream& s, BodyNext next, CodecStepFn step, void* ctx);

}  // namespace weir::http
