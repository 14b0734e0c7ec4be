#include "modules/gzip/zstream.h"

namespace weir::http {

namespace {

void* z_alloc(void* opaque, unsigned items, unsigned size) {
  return static_cast<ZStream*>(opaque)->r->pool->alloc(size_t{items} * size);
}

// A large block goes back to the process's cache at once; small ones stay with the pool.
void z_free(void* opaque, void* p) {
  (void)static_cast<ZStream*>(opaque)->r->pool->free_large(p);
}

// The next input for zlib; false when there is none.
bool feed(ZStream& s) {
  for (;;) {
    if (s.z.avail_in != 0 || s.flush != Z_NO_FLUSH || s.redo) return true;
    ChainLink* cl = s.in;
    if (cl == nullptr) return false;
    s.in = cl->next;
    if (s.in == nullptr) s.in_tail = &s.in;
    s.in_buf = cl->buf;
    s.r->pool->free_link(cl);
    Buffer* b = s.in_buf;
    s.z.next_in = reinterpret_cast<Bytef*>(b->pos);
    s.z.avail_in = static_cast<uInt>(b->size());
    if (b->last_buf) {
      s.flush = Z_FINISH;
    } else if (b->flush) {
      s.flush = Z_SYNC_FLUSH;
    }
    // A buffer with no data and no flag (sync, last_in_chain) is passed over.
  }
}

// An output buffer with room for zlib; false when every one waits for the client.
bool output_room(ZStream& s) {
  if (s.z.avail_out != 0) return true;
  if (ChainLink* cl = s.free) {
    s.free = cl->next;
    s.out_buf = cl->buf;
    s.r->pool->free_link(cl);
  } else if (s.made < s.bufs.num) {
    s.out_buf = Buffer::create_temp(*s.r->pool, s.bufs.size);
    s.out_buf->tag = s.tag;
    s.out_buf->recycled = true;
    s.made++;
  } else {
    s.nomem = true;
    return false;
  }
  s.out_buf->pos = s.out_buf->last = s.out_buf->start;
  s.z.next_out = reinterpret_cast<Bytef*>(s.out_buf->pos);
  s.z.avail_out = static_cast<uInt>(s.bufs.size);
  return true;
}

}  // namespace

void ZStream::use_pool() {
  z.zalloc = z_alloc;
  z.zfree = z_free;
  z.opaque = this;
}

void ZStream::add_input(ChainLink* chain) {
  for (; chain != nullptr; chain = chain->next) {
    ChainLink* cl = r->pool->alloc_link();
    cl->buf = chain->buf;
    cl->next = nullptr;
    *in_tail = cl;
    in_tail = &cl->next;
    r->buffered |= buffered_bit;
  }
}

void ZStream::after_call() {
  if (in_buf != nullptr) {
    in_buf->pos = in_buf->last - z.avail_in;  // what zlib took is consumed
    // Once it is all taken its owner may refill the buffer at once: it is not ours to mark again.
    if (z.avail_in == 0) in_buf = nullptr;
  }
  out_buf->last = reinterpret_cast<char*>(z.next_out);
}

void ZStream::append_out(Buffer* b) {
  ChainLink* cl = r->pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  *out_tail = cl;
  out_tail = &cl->next;
}

ZStep ZStream::pass_full() {
  append_out(out_buf);
  redo = true;
  return ZStep::More;
}

ZStep ZStream::pass_flush() {
  flush = Z_NO_FLUSH;
  Buffer* b = out_buf;
  if (b->size() == 0) {
    b = Buffer::create_special(*r->pool, false, true);
  } else {
    b->flush = true;
    z.avail_out = 0;  // the next output goes into another buffer
  }
  append_out(b);
  r->buffered &= ~buffered_bit;
  return ZStep::Stop;
}

ZStep ZStream::pass_last() {
  Buffer* b = out_buf;
  if (b->size() == 0) b->temporary = false;
  b->last_buf = true;
  append_out(b);
  z.avail_in = z.avail_out = 0;
  done = true;
  r->buffered &= ~buffered_bit;
  return ZStep::Stop;
}

Rc run_zstream(ZStream& s, BodyNext next, ZStepFn step, void* ctx) {
  Request& r = *s.r;
  bool flush = s.busy != nullptr;
  if (s.nomem) {
    // Push out what waits for the client, then see which buffers came back.
    if (next(r, nullptr) == Rc::Error) return Rc::Error;
    ChainLink* none = nullptr;
    update_chains(*r.pool, &s.free, &s.busy, &none, s.tag);
    s.nomem = false;
    flush = false;
  }
  for (;;) {
    while (feed(s) && output_room(s)) {
      ZStep st = step(s, ctx);
      if (st == ZStep::Error) return Rc::Error;
      if (st == ZStep::Stop) break;
    }
    if (s.out == nullptr && !flush) return s.busy != nullptr ? Rc::Again : Rc::Ok;
    Rc rc = next(r, s.out);
    if (rc == Rc::Error) return Rc::Error;
    update_chains(*r.pool, &s.free, &s.busy, &s.out, s.tag);
    s.out_tail = &s.out;
    s.nomem = false;
    flush = false;
    if (s.done) return rc;
  }
}

}  // namespace weir::http
