// The event pipe (seed 000's ngx_event_pipe_t): the buffered relay from an upstream to the client.
// It reads into up to bufs.num raw buffers of bufs.size; the protocol's input filter turns the body
// bytes of each read into data buffers (shadows pointing into the raw one) queued on `in`; data
// goes to the client through the output filters - all of it in one write while the client takes
// each write whole, at most busy_size bytes unsent once it falls behind; when every raw
// buffer is taken and the client is slow, the oldest queued data is written to a temp file (up to
// max_temp_file_size, temp_file_write_size at a time) and sent from there with sendfile, so the
// raw buffers are free again; with no buffer and no temp file left, reading stops
// (upstream_blocked) until the client takes some. A raw buffer goes back to the free list when the
// last data buffer pointing into it was sent or written out.
//
// Unlike nginx, the input filter sees each read as it arrives rather than once a raw buffer is
// full, so a slow, streaming upstream's data is not held back in a half-filled buffer.
// nginx: src/event/ngx_event_pipe.c
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "core/buffer.h"
#include "core/file.h"
#include "core/status.h"
#include "event/connection.h"
#include "event/thread_pool.h"
#include "os/kernel_pipe.h"

namespace weir::http {

struct Request;
struct EventPipe;
struct TempWriteTask;

// The new bytes of a raw buffer are [from, raw->last): the filter queues their body data with
// pipe_add_data and updates p.length; Error when the body is malformed.
using PipeInputFilter = Rc (*)(EventPipe& p, Buffer* raw, char* from);

struct EventPipe {
  Connection* upstream = nullptr;
  Request* request = nullptr;  // the client side: the output filters run on it
  Pool* pool = nullptr;        // the request's
  BufTag tag = nullptr;

  Bufs bufs{8, 4096};
  size_t busy_size = 8192;
  off_t max_temp_file_size = 0;  // 0: never spill
  // proxy_store: every byte goes through the temp file (whatever its size), which is kept for the
  // lifecycle to move into place, and the client is served from it; a client that fails does not
  // stop the reading.
  bool store = false;
  size_t temp_file_write_size = 8192;
  const TempPath* temp_path = nullptr;
  uint64_t read_timeout = 60000;
  uint64_t send_timeout = 60000;
  off_t limit_rate = 0;  // bytes per second read from the upstream; 0: no limit
  int64_t start_sec = 0;

  PipeInputFilter input_filter = nullptr;
  void* input_ctx = nullptr;
  off_t length = -1;  // body bytes still to come; -1: until the upstream closes

  // What the upstream sent beyond the header, in the header buffer: the first raw data.
  // Body bytes a splice relay moved into a kernel pipe before the pipe took over: they reach the
  // client before anything the pipe holds.
  KernelPipe* ahead = nullptr;
  Buffer* preread = nullptr;
  off_t preread_size = 0;  // the body bytes that came with the header

  // Counters.
  off_t read_length = 0;   // bytes of the body read from the upstream (with framing and preread)
  off_t temp_written = 0;  // bytes written to the temp file
  int allocated = 0;       // raw buffers made so far

  TempFile* temp_file = nullptr;  // made at the first spill
  // aio_write: batches go to the temp file in a thread of this pool; the pipe waits meanwhile
  // (writing), and the client's write event resumes it.
  ThreadPool* write_pool = nullptr;
  TempWriteTask* writing = nullptr;
  Pool::Cleanup writing_cleanup{};

  // State.
  bool upstream_eof : 1 = false;      // the upstream closed its side
  bool upstream_error : 1 = false;    // reading failed, or the body was malformed
  bool upstream_done : 1 = false;     // the whole body was read
  bool upstream_blocked : 1 = false;  // no buffer to read into: waiting for the client
  bool downstream_done : 1 = false;   // everything went out, last buffer included
  bool downstream_error : 1 = false;  // the client failed
  bool temp_error : 1 = false;        // the temp file could not be made or written
  bool temp_full : 1 = false;         // max_temp_file_size is reached
  // The client took all of the last write at once: the next one hands it everything the pipe holds
  // (one writev rather than busy_size pieces); once it falls behind, busy_size bounds what waits.
  bool client_keeps_up : 1 = true;

  // Internal lists (see the header comment).
  ChainLink* free_raw = nullptr;
  Buffer* reading = nullptr;  // the raw buffer reads go into
  ChainLink* in = nullptr;    // data in memory, oldest first
  ChainLink** in_tail = &in;
  ChainLink* in_last = nullptr;  // the newest of `in`: new data of its raw buffer joins it
  ChainLink* out = nullptr;      // data in the temp file, older than anything in `in`
  ChainLink** out_tail = &out;
  ChainLink* out_last = nullptr;  // the newest of `out`: the next contiguous write extends it
  ChainLink* busy = nullptr;      // passed to the client, not all sent yet
  ChainLink** busy_tail = &busy;
  ChainLink* free = nullptr;  // links with buffer structs to reuse for data buffers
};

// Reads from the upstream and writes to the client as far as both can go; do_write: the client's
// write event (or the first call). Ok, or Abort when the client side failed beyond repair.
Rc run_event_pipe(EventPipe& p, bool do_write);

// For input filters: queues [pos, last) of raw as body data. Data that follows the newest queued
// piece of the same raw buffer joins it (moved down over the framing between them, which the filter
// has consumed), so memory and the client's writes go by raw buffer, not by chunk.
Rc pipe_add_data(EventPipe& p, Buffer* raw, char* pos, char* last);

// The plain input filter: every byte is body data, up to p.length when it is known; anything beyond
// it is dropped (and the upstream connection is not reused: the caller sees read_length).
Rc pipe_copy_filter(EventPipe& p, Buffer* raw, char* from);

// Makes p.temp_file if there is none (proxy_store's, for an empty response, too).
Rc make_pipe_temp_file(EventPipe& p);

// Whether everything has been read and sent (nothing left in any list).
bool pipe_drained(const EventPipe& p);

}  // namespace weir::http
