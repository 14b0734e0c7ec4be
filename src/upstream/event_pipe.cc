#include "upstream/event_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/log.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/filter.h"
#include "http/request.h"

namespace weir::http {

namespace {

void recycle_raw(EventPipe& p, Buffer* raw) {
  raw->pos = raw->last = raw->start;
  ChainLink* cl = p.pool->alloc_link();
  cl->buf = raw;
  cl->next = p.free_raw;
  p.free_raw = cl;
}

// A data buffer is done with (sent, or written to the temp file): its raw buffer loses a reference
// and goes back to the free list with the last one, unless reads still go into it.
void release_shadow(EventPipe& p, Buffer* d) {
  Buffer* raw = d->shadow;
  d->shadow = nullptr;
  if (raw == nullptr) return;
  raw->shadows--;
  // The pipe's raw buffers and the header buffer (the preread, same tag) go back to the free list.
  if (raw->shadows == 0 && raw != p.reading && raw->tag == p.tag) recycle_raw(p, raw);
}

void free_data_link(EventPipe& p, ChainLink* cl) {
  release_shadow(p, cl->buf);
  *cl->buf = Buffer{};
  cl->next = p.free;
  p.free = cl;
}

// The raw buffer the next read goes into: the current one while it has room, a free one, or a new
// one while fewer than bufs.num exist; nullptr when all are taken.
Buffer* raw_for_reading(EventPipe& p) {
  if (Buffer* b = p.reading) {
    if (b->shadows == 0) b->pos = b->last = b->start;  // nothing points into it: start over
    if (b->last < b->end) return b;
    p.reading = nullptr;
  }
  if (ChainLink* cl = p.free_raw) {
    p.free_raw = cl->next;
    p.reading = cl->buf;
    p.pool->free_link(cl);
    return p.reading;
  }
  if (p.allocated < p.bufs.num) {
    Buffer* b = Buffer::create_temp(*p.pool, p.bufs.size);
    b->tag = p.tag;
    p.allocated++;
    p.reading = b;
    return b;
  }
  return nullptr;
}

}  // namespace

Rc make_pipe_temp_file(EventPipe& p) {
  if (p.temp_file != nullptr) return Rc::Ok;
  p.temp_file = p.pool->make<TempFile>();
  p.temp_file->file.log = p.request->connection->log;
  // proxy_store's file outlives the response when it is moved into place; else it goes.
  p.temp_file->persistent = p.temp_file->clean = p.store;
  if (Status s = create_temp_file(*p.temp_file, *p.pool, *p.temp_path); !s.ok()) {
    log_error(LogLevel::Crit, *p.request->connection->log, 0, "%s", s.message().c_str());
    return Rc::Error;
  }
  return Rc::Ok;
}

namespace {

// Moves the oldest data in memory to the temp file, so that the raw buffers it held can be read
// into again: at least temp_file_write_size and on to where a raw buffer's data ends (a batch that
// frees no raw buffer frees nothing), never past max_temp_file_size. What was written becomes one
// file buffer on `out`, or extends the newest one when contiguous: memory and the client's writes
// go by the range written, whatever the size of the pieces (1-byte chunks included).
}  // namespace

// aio_write: a batch's bytes, copied, written at offset by a pool thread through a descriptor of
// its own, so that neither a request that ends nor a temp file closed meanwhile is touched from the
// thread. Tasks are kept for reuse with their buffers.
struct TempWriteTask : ThreadTask {
  std::vector<char> data;
  int fd = -1;
  off_t offset = 0;
  int err = 0;
  EventPipe* owner = nullptr;  // nullptr once the request is gone (read and written in the loop)
};

namespace {

TaskCache<TempWriteTask> g_write_tasks;

void write_in_thread(ThreadTask& t) {
  auto& task = static_cast<TempWriteTask&>(t);
  task.err = 0;
  size_t done = 0;
  while (done < task.data.size()) {
    ssize_t n = ::pwrite(task.fd, task.data.data() + done, task.data.size() - done,
                         task.offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      task.err = n < 0 ? errno : ENOSPC;
      return;
    }
    done += static_cast<size_t>(n);
  }
}

void written_in_thread(ThreadTask& t) {
  auto& task = static_cast<TempWriteTask&>(t);
  ::close(task.fd);
  task.fd = -1;
  g_write_tasks.put(&task);
  EventPipe* p = task.owner;
  if (p == nullptr) return;
  p->writing = nullptr;
  if (task.err != 0) {
    const File& f = p->temp_file->file;
    log_error(LogLevel::Crit, *p->request->connection->log, task.err, "pwrite() \"%.*s\" failed",
              static_cast<int>(f.name.size()), f.name.data());
    p->temp_error = true;
    p->upstream_error = true;
  }
  // The pipe goes on from the client's side (which also reads the upstream).
  post_event(p->request->connection->write);
}

// The batch is copied and handed to a thread: true when it was (the pipe then waits for it).
bool write_in_pool(EventPipe& p, ChainLink* batch, off_t offset, off_t size) {
  TempWriteTask* task = g_write_tasks.get(write_in_thread, written_in_thread);
  task->data.clear();
  task->data.reserve(static_cast<size_t>(size));
  for (ChainLink* cl = batch; cl != nullptr; cl = cl->next) {
    task->data.insert(task->data.end(), cl->buf->pos, cl->buf->last);
  }
  task->offset = offset;
  task->fd = ::fcntl(p.temp_file->file.fd, F_DUPFD_CLOEXEC, 0);
  if (task->fd < 0 || !p.write_pool->post(*task, *p.request->connection->log)) {
    if (task->fd >= 0) ::close(task->fd);
    task->fd = -1;
    g_write_tasks.put(task);
    return false;  // written in the loop instead
  }
  task->owner = &p;
  if (p.writing_cleanup.fn == nullptr) {
    // A task still writing when the request goes finds no pipe to resume.
    p.pool->add_cleanup(
        p.writing_cleanup,
        [](void* d) {
          auto* pipe = static_cast<EventPipe*>(d);
          if (pipe->writing != nullptr) pipe->writing->owner = nullptr;
        },
        &p);
  }
  p.writing = task;
  return true;
}

Rc write_to_temp_file(EventPipe& p) {
  if (p.writing != nullptr) return Rc::Ok;  // one batch at a time
  if (p.temp_file == nullptr) {
    if (make_pipe_temp_file(p) != Rc::Ok) return Rc::Error;
    if (!p.store) {
      log_error(LogLevel::Warn, *p.request->connection->log, 0,
                "an upstream response is buffered to a temporary file %.*s",
                static_cast<int>(p.temp_file->file.name.size()), p.temp_file->file.name.data());
    }
  }
  // proxy_store: all of it, whatever max_temp_file_size says.
  off_t room = p.store ? std::numeric_limits<off_t>::max() : p.max_temp_file_size - p.temp_written;
  off_t want = p.store ? room : static_cast<off_t>(p.temp_file_write_size);
  ChainLink* batch = nullptr;
  ChainLink** tail = &batch;
  const Buffer* raw = nullptr;  // the raw buffer of the last piece taken
  off_t size = 0;
  while (p.in != nullptr) {
    const Buffer* next = p.in->buf;
    if (size + next->size() > room) break;
    if (size >= want && next->shadow != raw) break;
    ChainLink* cl = p.in;
    p.in = cl->next;
    raw = next->shadow;
    size += next->size();
    cl->next = nullptr;
    *tail = cl;
    tail = &cl->next;
  }
  if (p.in == nullptr) {
    p.in_tail = &p.in;
    p.in_last = nullptr;
  }
  if (batch == nullptr) {
    p.temp_full = true;  // what is left would go past max_temp_file_size
    return Rc::Ok;
  }
  File& f = p.temp_file->file;
  off_t offset = f.offset;
  if (p.write_pool != nullptr && write_in_pool(p, batch, offset, size)) {
    f.offset = offset + size;  // the range is the batch's; the pipe waits until it is written
  } else if (write_chain_to_file(f, batch, offset) < 0) {
    log_error(LogLevel::Crit, *p.request->connection->log, errno, "pwritev() \"%.*s\" failed",
              static_cast<int>(f.name.size()), f.name.data());
    for (ChainLink* cl = batch; cl != nullptr;) {
      ChainLink* next = cl->next;
      free_data_link(p, cl);
      cl = next;
    }
    return Rc::Error;
  }
  p.temp_written += size;
  ChainLink* rest = batch->next;
  if (Buffer* last = p.out_last != nullptr ? p.out_last->buf : nullptr;
      last != nullptr && last->file_last == offset) {
    last->file_last += size;  // not passed on yet: it grows
    rest = batch;
  } else {
    Buffer* b = batch->buf;
    release_shadow(p, b);
    *b = Buffer{};
    b->in_file = true;
    b->temp_file = true;
    b->file = &f;
    b->file_pos = offset;
    b->file_last = offset + size;
    b->tag = p.tag;
    batch->next = nullptr;
    *p.out_tail = batch;
    p.out_tail = &batch->next;
    p.out_last = batch;
  }
  while (rest != nullptr) {
    ChainLink* next = rest->next;
    free_data_link(p, rest);
    rest = next;
  }
  return Rc::Ok;
}

// proxy_store: what was read goes to the temp file before anything else happens to it.
Rc store_read_data(EventPipe& p) {
  if (p.temp_error) return Rc::Error;
  if (write_to_temp_file(p) != Rc::Ok) {
    p.temp_error = true;
    p.upstream_error = true;
    return Rc::Error;
  }
  return Rc::Ok;
}

bool upstream_finished(const EventPipe& p) {
  return p.upstream_done || p.upstream_eof || p.upstream_error;
}

// A raw buffer besides the current one: a free one, or a new one while fewer than bufs.num exist.
Buffer* another_raw(EventPipe& p) {
  if (ChainLink* cl = p.free_raw) {
    p.free_raw = cl->next;
    Buffer* b = cl->buf;
    p.pool->free_link(cl);
    return b;
  }
  if (p.allocated < p.bufs.num) {
    Buffer* b = Buffer::create_temp(*p.pool, p.bufs.size);
    b->tag = p.tag;
    p.allocated++;
    return b;
  }
  return nullptr;
}

bool downstream_ready(const EventPipe& p) {
  const Event& w = p.request->connection->write;
  return w.ready && !w.delayed;
}

// At most this many raw buffers per readv.
constexpr size_t kReadvBufs = 16;

Rc read_upstream(EventPipe& p) {
  if (p.preread != nullptr) {
    Buffer* b = p.preread;
    p.preread = nullptr;
    p.read_length += b->last - b->pos;  // the body's first bytes came with the header
    if (b->pos < b->last && p.input_filter(p, b, b->pos) != Rc::Ok) {
      p.upstream_error = true;
      return Rc::Ok;
    }
  }
  if (p.upstream == nullptr) return Rc::Ok;  // released once it was done
  Connection& c = *p.upstream;
  while (!upstream_finished(p) && c.read.ready && p.writing == nullptr) {
    if (p.store && p.in != nullptr && store_read_data(p) != Rc::Ok) return Rc::Ok;
    Buffer* raw = raw_for_reading(p);
    if (raw == nullptr && p.in != nullptr && downstream_ready(p)) {
      // Every buffer is full and the client can take some: it does first (nginx), rather than
      // the data going to the temp file.
      p.upstream_blocked = true;
      return Rc::Ok;
    }
    if (raw == nullptr && p.in != nullptr && p.max_temp_file_size != 0 && !p.temp_error &&
        !p.temp_full) {
      if (write_to_temp_file(p) != Rc::Ok) {
        p.temp_error = true;
        p.upstream_error = true;
        return Rc::Ok;
      }
      raw = raw_for_reading(p);
    }
    if (raw == nullptr) {
      p.upstream_blocked = true;  // the client must take some first
      return Rc::Ok;
    }
    p.upstream_blocked = false;
    off_t limit = 0;
    if (p.limit_rate != 0) {
      // nginx's rate: the seconds so far plus one, at limit_rate, less what was read.
      if (c.read.delayed) break;
      limit = p.limit_rate * (clock::now() - p.start_sec + 1) - p.read_length;
      if (limit <= 0) {
        c.read.delayed = true;
        add_timer(c.read, static_cast<clock::msec_t>(-limit * 1000 / p.limit_rate + 1));
        break;
      }
    }
    // One readv into the current buffer and every free one (new buffers are made one at a time,
    // as nginx does, so a small body does not take them all).
    Buffer* bufs[kReadvBufs];
    char* from[kReadvBufs];
    ChainLink links[kReadvBufs];
    size_t n = 0;
    p.reading = nullptr;
    bufs[n++] = raw;
    while (n < kReadvBufs && p.free_raw != nullptr) bufs[n++] = another_raw(p);
    for (size_t i = 0; i < n; i++) {
      from[i] = bufs[i]->last;
      links[i].buf = bufs[i];
      links[i].next = i + 1 < n ? &links[i + 1] : nullptr;
    }
    IoResult res = c.recv_chain(links, limit);
    size_t filled = 0;  // buffers that got bytes
    while (filled < n && bufs[filled]->last > from[filled]) filled++;
    // The last one that got bytes is read into next; the untouched ones go back.
    p.reading = filled > 0 ? bufs[filled - 1] : bufs[0];
    for (size_t i = filled > 0 ? filled : 1; i < n; i++) recycle_raw(p, bufs[i]);
    if (res.rc == Rc::Again) break;
    if (res.rc == Rc::Error) {
      p.upstream_error = true;
      break;
    }
    if (res.rc == Rc::Done) {
      p.upstream_eof = true;
      break;
    }
    p.read_length += static_cast<off_t>(res.n);
    for (size_t i = 0; i < filled; i++) {
      if (p.input_filter(p, bufs[i], from[i]) != Rc::Ok) {
        p.upstream_error = true;
        return Rc::Ok;
      }
      // A full buffer nothing points into (framing only) is free again at once.
      if (bufs[i] != p.reading && bufs[i]->shadows == 0) recycle_raw(p, bufs[i]);
    }
  }
  return Rc::Ok;
}

// Whether a read could go on: a raw buffer with room, a free one, or one still to be made.
bool room_to_read(const EventPipe& p) {
  if (p.free_raw != nullptr || p.allocated < p.bufs.num) return true;
  const Buffer* b = p.reading;
  return b != nullptr && (b->shadows == 0 || b->last < b->end);
}

// What unsent output holds of the pipe's raw buffers, counted as nginx counts busy_size: by the
// capacity of each raw buffer a piece keeps in use (once for the pieces of one buffer that follow
// each other), not by the data's size - a piece of 1-byte chunks holds a whole buffer. Pieces in
// the temp file hold none.
struct HeldBuffers {
  off_t bytes = 0;
  const Buffer* last = nullptr;
  off_t adding(const Buffer& b) const {
    const Buffer* raw = b.shadow;
    return raw == nullptr || raw == last ? 0 : static_cast<off_t>(raw->end - raw->start);
  }
  void add(const Buffer& b) {
    bytes += adding(b);
    if (b.shadow != nullptr) last = b.shadow;
  }
};

// Busy holds a buffer per raw buffer or file range, so the walk is short.
HeldBuffers busy_held(const EventPipe& p) {
  HeldBuffers h;
  for (const ChainLink* cl = p.busy; cl != nullptr; cl = cl->next) h.add(*cl->buf);
  return h;
}

ChainLink* take_head(EventPipe& p) {
  ChainLink* cl;
  if (p.out != nullptr) {
    cl = p.out;
    p.out = cl->next;
    if (p.out == nullptr) {
      p.out_tail = &p.out;
      p.out_last = nullptr;
    }
  } else {
    cl = p.in;
    p.in = cl->next;
    if (p.in == nullptr) {
      p.in_tail = &p.in;
      p.in_last = nullptr;
    }
  }
  cl->next = nullptr;
  return cl;
}

// What a splice relay left in its kernel pipe goes first. False while some of it is left.
bool drain_ahead(EventPipe& p, Connection& c) {
  KernelPipe& k = *p.ahead;
  while (k.held > 0 && c.write.ready) {
    if (c.send_from_pipe(k).rc == Rc::Error) {
      p.downstream_error = true;
      return false;
    }
  }
  return k.held == 0;
}

Rc write_downstream(EventPipe& p) {
  if (p.downstream_done || p.downstream_error) return Rc::Ok;
  Request& r = *p.request;
  if (p.ahead != nullptr && !drain_ahead(p, *r.connection)) {
    if (p.downstream_error) return p.store ? Rc::Ok : Rc::Abort;
    return Rc::Ok;
  }
  for (;;) {
    bool finishing = upstream_finished(p);
    HeldBuffers held = busy_held(p);
    ChainLink* chain = nullptr;
    ChainLink** tail = &chain;
    while (p.out != nullptr || p.in != nullptr) {
      const Buffer* next = p.out != nullptr ? p.out->buf : p.in->buf;
      // At most busy_size unsent once the client falls behind, but always one buffer when none
      // is; everything at the end. While it keeps up, all but one buffer's worth in one write:
      // busy_size keeps buffers free for reading from a fast upstream while a slow client holds
      // some, not small writes to a fast one - and a write the client does not take whole still
      // leaves a buffer to read (and spill) with.
      off_t limit = p.client_keeps_up ? static_cast<off_t>((p.bufs.num - 1) * p.bufs.size)
                                      : static_cast<off_t>(p.busy_size);
      if (!finishing && held.bytes > 0 && held.bytes + held.adding(*next) > limit) break;
      held.add(*next);
      ChainLink* cl = take_head(p);
      *tail = cl;
      tail = &cl->next;
    }
    if (chain == nullptr && p.busy == nullptr) {
      if (finishing) p.downstream_done = true;
      return Rc::Ok;
    }
    // Nothing new may go (busy_size), but what the write filter holds goes on while the client
    // can take it - it may have stopped at sendfile_max_chunk with the socket still writable.
    if (chain == nullptr && !finishing && !r.connection->write.ready) return Rc::Ok;
    // Pass the new data (or nothing, to push out what the write filter holds).
    Rc rc = output_filter(r, chain);
    if (rc == Rc::Error) {
      p.downstream_error = true;
      return p.store ? Rc::Ok : Rc::Abort;  // the file is still wanted
    }
    // Into busy, then everything fully sent at its head goes back.
    *tail = nullptr;
    if (chain != nullptr) {
      *p.busy_tail = chain;
      p.busy_tail = tail;
    }
    while (p.busy != nullptr && p.busy->buf->size() == 0) {
      ChainLink* cl = p.busy;
      p.busy = cl->next;
      if (p.busy == nullptr) p.busy_tail = &p.busy;
      free_data_link(p, cl);
    }
    p.client_keeps_up = p.busy == nullptr && r.connection->write.ready;
    if (chain == nullptr || !r.connection->write.ready) {
      if (finishing && p.busy == nullptr && p.in == nullptr && p.out == nullptr) {
        p.downstream_done = true;
      }
      return Rc::Ok;
    }
  }
}

}  // namespace

Rc pipe_add_data(EventPipe& p, Buffer* raw, char* pos, char* last) {
  if (p.in_last != nullptr && p.in_last->buf->shadow == raw) {
    Buffer* d = p.in_last->buf;  // still queued, not passed on: it may grow
    size_t n = static_cast<size_t>(last - pos);
    if (d->last != pos) std::memmove(d->last, pos, n);
    d->last += n;
    d->end = d->last;
    return Rc::Ok;
  }
  ChainLink* cl = chain_get_free_buf(*p.pool, &p.free);
  Buffer* d = cl->buf;
  *d = Buffer{};
  d->start = d->pos = pos;
  d->end = d->last = last;
  d->temporary = true;
  d->recycled = true;  // the write filter sends it at once: the pipe wants its buffer back
  d->tag = p.tag;
  d->shadow = raw;
  raw->shadows++;
  *p.in_tail = cl;
  p.in_tail = &cl->next;
  p.in_last = cl;
  return Rc::Ok;
}

Rc pipe_copy_filter(EventPipe& p, Buffer* raw, char* from) {
  char* last = raw->last;
  if (p.length >= 0) {
    if (last - from > p.length) last = from + p.length;  // beyond the length: dropped
    p.length -= last - from;
    if (p.length == 0) p.upstream_done = true;
  }
  if (last > from) return pipe_add_data(p, raw, from, last);
  return Rc::Ok;
}

bool pipe_drained(const EventPipe& p) {
  return p.in == nullptr && p.out == nullptr && p.busy == nullptr;
}

Rc run_event_pipe(EventPipe& p, bool do_write) {
  for (;;) {
    // A batch is being written in a thread: nothing moves until it is in the file.
    if (p.writing != nullptr) return Rc::Ok;
    if (do_write && write_downstream(p) == Rc::Abort) return Rc::Abort;
    off_t before = p.read_length;
    bool finished = upstream_finished(p);
    (void)read_upstream(p);
    if (p.store && p.in != nullptr) (void)store_read_data(p);
    if (p.writing != nullptr) return Rc::Ok;
    bool progressed = p.read_length != before || (!finished && upstream_finished(p));
    // Whatever was read goes out at once; go on while either side moved: a reader that stopped
    // for want of a buffer reads again once the client took some.
    if (write_downstream(p) == Rc::Abort) return Rc::Abort;
    bool unblocked = p.upstream_blocked && p.upstream != nullptr && p.upstream->read.ready &&
                     !upstream_finished(p) && room_to_read(p);
    if (!progressed && !unblocked) break;
    do_write = false;
  }
  return Rc::Ok;
}

}  // namespace weir::http
