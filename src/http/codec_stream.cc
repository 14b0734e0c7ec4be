#include "http/codec_stream.h"

namespace weir::http {

namespace {

// The next input for the codec; false when there is none.
bool feed(CodecStream& s) {
  for (;;) {
    if (s.avail_in != 0 || s.flush != CodecFlush::None || s.redo) return true;
    ChainLink* cl = s.in;
    if (cl == nullptr) return false;
    s.in = cl->next;
    if (s.in == nullptr) s.in_tail = &s.in;
    s.in_buf = cl->buf;
    s.r->pool->free_link(cl);
    Buffer* b = s.in_buf;
    s.next_in = reinterpret_cast<const unsigned char*>(b->pos);
    s.avail_in = static_cast<size_t>(b->size());
    if (b->last_buf) {
      s.flush = CodecFlush::Finish;
    } else if (b->flush) {
      s.flush = CodecFlush::Sync;
    }
    // A buffer with no data and no flag (sync, last_in_chain) is passed over.
  }
}

// An output buffer with room for the codec; false when every one waits for the client.
bool output_room(CodecStream& s) {
  if (s.avail_out != 0) return true;
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
  s.next_out = reinterpret_cast<unsigned char*>(s.out_buf->pos);
  s.avail_out = s.bufs.size;
  return true;
}

}  // namespace

void CodecStream::add_input(ChainLink* chain) {
  for (; chain != nullptr; chain = chain->next) {
    ChainLink* cl = r->pool->alloc_link();
    cl->buf = chain->buf;
    cl->next = nullptr;
    *in_tail = cl;
    in_tail = &cl->next;
    r->buffered |= buffered_bit;
  }
}

void CodecStream::after_call() {
  if (in_buf != nullptr) {
    in_buf->pos = in_buf->last - avail_in;  // what the codec took is consumed
    // Once it is all taken its owner may refill the buffer at once: it is not ours to mark again.
    if (avail_in == 0) in_buf = nullptr;
  }
  out_buf->last = reinterpret_cast<char*>(next_out);
}

void CodecStream::append_out(Buffer* b) {
  ChainLink* cl = r->pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  *out_tail = cl;
  out_tail = &cl->next;
}

CodecStep CodecStream::pass_full() {
  append_out(out_buf);
  redo = true;
  return CodecStep::More;
}

CodecStep CodecStream::pass_flush() {
  flush = CodecFlush::None;
  Buffer* b = out_buf;
  if (b->size() == 0) {
    b = Buffer::create_special(*r->pool, false, true);
  } else {
    b->flush = true;
    avail_out = 0;  // the next output goes into another buffer
  }
  append_out(b);
  r->buffered &= ~buffered_bit;
  return CodecStep::Stop;
}

CodecStep CodecStream::pass_partial() {
  if (out_buf->size() != 0) {
    append_out(out_buf);
    avail_out = 0;
  }
  return CodecStep::Stop;
}

CodecStep CodecStream::pass_last() {
  Buffer* b = out_buf;
  if (b->size() == 0) b->temporary = false;
  b->last_buf = true;
  append_out(b);
  avail_in = avail_out = 0;
  done = true;
  r->buffered &= ~buffered_bit;
  return CodecStep::Stop;
}

Rc run_codec_stream(CodecStream& s, BodyNext next, CodecStepFn step, void* ctx) {
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
      CodecStep st = step(s, ctx);
      if (st == CodecStep::Error) return Rc::Error;
      if (st == CodecStep::Stop) break;
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
