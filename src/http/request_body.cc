#include "http/request_body.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/core_module.h"

namespace weir::http {

namespace {

Rc test_expect(Request& r) {
  if (r.expect_tested || r.headers_in.expect == nullptr || r.http_version < 1001) return Rc::Ok;
  r.expect_tested = true;
  std::string_view v = r.headers_in.expect->value;
  if (v.size() != 12 || strncasecmp(v.data(), "100-continue", 12) != 0) return Rc::Ok;
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  ssize_t n = ::send(r.connection->fd, kContinue.data(), kContinue.size(), MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(kContinue.size())) return Rc::Ok;
  // Such a small packet is assumed to go out at once.
  r.connection->error = true;
  return Rc::Error;
}

// Drops body bytes from b, and no byte past the body's end; for chunked bodies parses the framing.
// Ok, or an HTTP status. in.content_length_n is left at what the body still holds (0: complete).
Code discard_filter(Request& r, Buffer& b) {
  HeadersIn& in = r.headers_in;
  if (in.chunked) {
    if (r.request_body == nullptr) {
      r.request_body = r.pool->make<RequestBody>();
      r.request_body->chunked = r.pool->make<ChunkedState>();
    }
    RequestBody& rb = *r.request_body;
    for (;;) {
      ChunkedResult rc = parse_chunked(*rb.chunked, b);
      if (rc == ChunkedResult::Ok) {
        off_t take = std::min<off_t>(rb.chunked->size, b.last - b.pos);
        rb.chunked->size -= take;
        rb.received += take;
        b.pos += take;
        continue;
      }
      if (rc == ChunkedResult::Done) {
        in.content_length_n = 0;
        break;
      }
      if (rc == ChunkedResult::Again) {
        // What the body still holds at the least: reading no more than that never swallows a
        // pipelined request.
        in.content_length_n = rb.chunked->length;
        break;
      }
      log_error(LogLevel::Error, r.log(), 0, "client sent invalid chunked body");
      return Code::status(400);
    }
    return Rc::Ok;
  }
  off_t size = b.last - b.pos;
  if (size > in.content_length_n) {
    b.pos += in.content_length_n;
    in.content_length_n = 0;
  } else {
    b.pos = b.last;
    in.content_length_n -= size;
  }
  return Rc::Ok;
}

Code read_discarded(Request& r) {
  char buffer[4096];
  for (;;) {
    if (r.headers_in.content_length_n == 0) {
      r.read_event_handler = block_reading;
      return Rc::Ok;
    }
    Connection& c = *r.connection;
    if (!c.read.ready) return Rc::Again;
    // Never more than the body still holds: the next request stays in the socket.
    auto size = static_cast<size_t>(std::min<off_t>(r.headers_in.content_length_n, sizeof buffer));
    IoResult got = c.recv(buffer, size);
    if (got.rc == Rc::Error) {
      c.error = true;
      return Rc::Ok;
    }
    if (got.rc == Rc::Again) return Rc::Again;
    if (got.rc == Rc::Done) return Rc::Ok;
    Buffer b;
    b.pos = b.start = buffer;
    b.last = b.end = buffer + got.n;
    b.temporary = true;
    Code rc = discard_filter(r, b);
    if (rc != Rc::Ok) return rc;
  }
}

void body_read_handler(Request& r);

// Appends body bytes [p, p + n) to the saved body without copying them: they stay in the header
// buffer or the read buffer until the body is complete or the read buffer must be reused.
void save_piece(Request& r, RequestBody& rb, char* p, off_t n) {
  auto* b = r.pool->make<Buffer>();
  b->start = b->pos = p;
  b->end = b->last = p + n;
  b->temporary = true;
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  *rb.bufs_tail = cl;
  rb.bufs_tail = &cl->next;
  rb.received += n;
}

// The body is complete: an empty last buffer closes the list (so an empty body reads as "" rather
// than as no body at all).
void save_last(Request& r, RequestBody& rb) {
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = Buffer::create_special(*r.pool, true, false);
  cl->next = nullptr;
  *rb.bufs_tail = cl;
  rb.bufs_tail = &cl->next;
  rb.last_saved = true;
}

// Writes the saved in-memory pieces to the temp file (creating it), so their memory may be reused.
Code write_to_temp_file(Request& r, RequestBody& rb) {
  if (rb.temp_file == nullptr) {
    CoreLocConf& clcf = core_loc(r);
    rb.temp_file = r.pool->make<TempFile>();
    rb.temp_file->persistent =
        *clcf.client_body_in_file_only != BodyInFileOnly::Off || r.request_body_in_file_only;
    rb.temp_file->clean =
        *clcf.client_body_in_file_only == BodyInFileOnly::Clean || r.request_body_in_file_only;
    rb.temp_file->file.log = r.connection->log;
    if (Status s = create_temp_file(*rb.temp_file, *r.pool, *clcf.client_body_temp_path); !s.ok()) {
      log_error(LogLevel::Crit, r.log(), 0, "%s", s.message().c_str());
      return Code::status(500);
    }
    // Asked-for files (client_body_in_file_only) are no news; a body that did not fit in memory is.
    if (!rb.temp_file->persistent) {
      log_error(LogLevel::Warn, r.log(), 0,
                "a client request body is buffered to a temporary file %.*s",
                static_cast<int>(rb.temp_file->file.name.size()), rb.temp_file->file.name.data());
    }
  }
  File& f = rb.temp_file->file;
  if (write_chain_to_file(f, rb.bufs, f.offset) < 0) {
    log_error(LogLevel::Crit, r.log(), errno, "write() to \"%.*s\" failed",
              static_cast<int>(f.name.size()), f.name.data());
    return Code::status(500);
  }
  for (ChainLink* cl = rb.bufs; cl != nullptr;) {
    ChainLink* next = cl->next;
    cl->buf->pos = cl->buf->last;
    r.pool->free_link(cl);
    cl = next;
  }
  rb.bufs = nullptr;
  rb.bufs_tail = &rb.bufs;
  return Rc::Ok;
}

// After each piece of input: a full read buffer goes to the temp file (so it can be read into
// again); a complete body that is in a file, or must be (client_body_in_file_only), is written out
// and described by one file buffer.
Code save_filter(Request& r, RequestBody& rb) {
  if (r.request_body_no_buffering) return Rc::Ok;  // the pieces go on, never to a file
  if (!rb.last_saved) {
    if (rb.bufs != nullptr && rb.buf != nullptr && rb.buf->last == rb.buf->end)
      return write_to_temp_file(r, rb);
    return Rc::Ok;
  }
  if (rb.temp_file == nullptr && *core_loc(r).client_body_in_file_only == BodyInFileOnly::Off &&
      !r.request_body_in_file_only)
    return Rc::Ok;
  if (Code rc = write_to_temp_file(r, rb); rc != Rc::Ok) return rc;
  if (rb.temp_file->file.offset != 0) {
    auto* fb = r.pool->make<Buffer>();
    fb->in_file = true;
    fb->last_buf = true;
    fb->file = &rb.temp_file->file;
    fb->file_pos = 0;
    fb->file_last = rb.temp_file->file.offset;
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = fb;
    cl->next = nullptr;
    rb.bufs = cl;
    rb.bufs_tail = &cl->next;
  }
  return Rc::Ok;
}

// Takes the body's bytes from b through its framing (Content-Length or chunked), saving the data;
// b.pos moves past what was the body's. Ok (rb.last_saved tells whether the body is complete), or
// an HTTP status.
Code body_filter(Request& r, RequestBody& rb, Buffer& b) {
  HeadersIn& in = r.headers_in;
  if (!in.chunked) {
    off_t n = std::min<off_t>(b.last - b.pos, rb.rest);
    if (n > 0) save_piece(r, rb, b.pos, n);
    b.pos += n;
    rb.rest -= n;
    if (rb.rest == 0) save_last(r, rb);
    return save_filter(r, rb);
  }
  off_t max = *core_loc(r).client_max_body_size;
  // A bad chunk anywhere in this input loses the whole input, as in nginx (its pieces are saved
  // only at the end of the pass).
  ChainLink** pass_start = rb.bufs_tail;
  auto fail = [&](int status) {
    *pass_start = nullptr;
    rb.bufs_tail = pass_start;
    return Code::status(status);
  };
  for (;;) {
    ChunkedResult cr = parse_chunked(*rb.chunked, b);
    if (cr == ChunkedResult::Ok) {
      if (max != 0 && max - rb.received < rb.chunked->size) {
        log_error(LogLevel::Error, r.log(), 0,
                  "client intended to send too large chunked body: %lld+%lld bytes",
                  static_cast<long long>(rb.received), static_cast<long long>(rb.chunked->size));
        r.lingering_close = true;
        return fail(413);
      }
      off_t n = std::min<off_t>(rb.chunked->size, b.last - b.pos);
      if (n > 0) save_piece(r, rb, b.pos, n);
      b.pos += n;
      rb.chunked->size -= n;
      continue;
    }
    if (cr == ChunkedResult::Done) {
      rb.rest = 0;
      in.content_length_n = rb.received;
      save_last(r, rb);
      return save_filter(r, rb);
    }
    if (cr == ChunkedResult::Again) {
      rb.rest = rb.chunked->length;
      return save_filter(r, rb);
    }
    log_error(LogLevel::Error, r.log(), 0, "client sent invalid chunked body");
    return fail(400);
  }
}

// client_body_min_rate: the body may take client_body_timeout plus its bytes so far at the rate.
// The ms left until then (0 once passed), or -1 when there is no minimum. A slow trickle is cut
// even though every read comes within client_body_timeout.
int64_t min_rate_left(Request& r, const RequestBody& rb) {
  CoreLocConf& clcf = core_loc(r);
  size_t rate = *clcf.client_body_min_rate;
  if (rate == 0) return -1;
  uint64_t allowed = *clcf.client_body_timeout + static_cast<uint64_t>(rb.received) * 1000 / rate;
  uint64_t elapsed = clock::msec() - rb.start_msec;
  return elapsed >= allowed ? 0 : static_cast<int64_t>(allowed - elapsed);
}

void finish_body(Request& r, RequestBody& rb) {
  rb.done = true;
  r.reading_body = false;
  r.read_event_handler = block_reading;
}

// Reads from the socket into rb.buf (never past the body's end: a pipelined request stays in the
// socket). Ok when the body is complete, Again when waiting for the client, or an HTTP status.
Code read_body(Request& r) {
  RequestBody& rb = *r.request_body;
  Connection& c = *r.connection;
  while (!rb.last_saved) {
    Buffer& buf = *rb.buf;
    if (buf.last == buf.end) {
      // Full: buffered, its pieces went to the temp file; not buffered, they wait for the consumer.
      if (r.request_body_no_buffering) break;
      buf.pos = buf.last = buf.start;
    }
    off_t size = std::min<off_t>(buf.end - buf.last, rb.rest);
    if (size == 0 || !c.read.ready) break;
    IoResult got = c.recv(buf.last, static_cast<size_t>(size));
    if (got.rc == Rc::Again) break;
    if (got.rc == Rc::Done) {
      log_error(LogLevel::Info, *c.log, 0, "client prematurely closed connection");
    }
    if (got.rc != Rc::Ok) {
      c.error = true;
      return Code::status(400);
    }
    Buffer in;
    in.start = in.pos = buf.last;
    buf.last += got.n;
    in.last = in.end = buf.last;
    r.request_length += static_cast<off_t>(got.n);
    if (Code rc = body_filter(r, rb, in); rc != Rc::Ok) return rc;
  }
  if (!rb.last_saved) {
    if (rb.buf->last == rb.buf->end) {
      // No buffering, and the buffer is full: the wait is for the consumer, not the client.
      del_timer(c.read);
      return Rc::Again;
    }
    uint64_t timeout = *core_loc(r).client_body_timeout;
    if (int64_t left = min_rate_left(r, rb); left >= 0) timeout = std::min<uint64_t>(timeout, left);
    add_timer(c.read, timeout);
    return Rc::Again;
  }
  finish_body(r, rb);
  return Rc::Ok;
}

void body_read_handler(Request& r) {
  Connection& c = *r.connection;
  if (c.read.timedout) {
    RequestBody& rb = *r.request_body;
    uint64_t elapsed = clock::msec() - rb.start_msec;
    size_t rate = *core_loc(r).client_body_min_rate;
    if (rate != 0 && static_cast<uint64_t>(rb.received) * 1000 < rate * elapsed) {
      log_error(
          LogLevel::Info, *c.log, 0,
          "client sent the request body slower than client_body_min_rate: %lld bytes in %llu ms",
          static_cast<long long>(rb.received), static_cast<unsigned long long>(elapsed));
    }
    c.timedout = true;
    finalize_request(r, Code::status(408));
    return;
  }
  Code rc = read_body(r);
  if (rc == Rc::Again) return;
  del_timer(c.read);
  if (rc != Rc::Ok) {
    finalize_request(r, rc);
    return;
  }
  r.request_body->post_handler(r);
}

// The read buffer: the header buffer's free tail when the rest of the body fits there, else one of
// client_body_buffer_size (up to a quarter more, so a body a little over it still needs no temp
// file).
Buffer* body_buffer(Request& r, RequestBody& rb) {
  Buffer& h = *r.header_in;
  if (!r.headers_in.chunked && rb.rest <= h.end - h.last) {
    auto* b = r.pool->make<Buffer>();
    b->start = b->pos = b->last = h.last;
    b->end = h.end;
    b->temporary = true;
    return b;
  }
  off_t size = static_cast<off_t>(*core_loc(r).client_body_buffer_size);
  if (!r.headers_in.chunked && rb.rest < size + size / 4) size = rb.rest;
  return Buffer::create_temp(*r.pool, static_cast<size_t>(size));
}

}  // namespace

Code read_client_request_body(Request& r, RequestHandler post_handler) {
  r.main->count++;
  if (!r.is_main() || r.request_body != nullptr || r.discard_body) {
    post_handler(r);
    return Rc::Ok;
  }
  if (test_expect(r) != Rc::Ok) {
    r.main->count--;
    return Code::status(500);
  }
  auto* rb = r.pool->make<RequestBody>();
  rb->bufs_tail = &rb->bufs;
  rb->post_handler = post_handler;
  rb->start_msec = clock::msec();
  r.request_body = rb;
  HeadersIn& in = r.headers_in;
  if (in.content_length_n < 0 && !in.chunked) {  // no body at all
    rb->done = true;
    post_handler(r);
    return Rc::Ok;
  }
  if (in.chunked) {
    rb->chunked = r.pool->make<ChunkedState>();
    rb->rest = 3;  // "0" CRLF at the least
  } else {
    rb->rest = in.content_length_n;
  }
  r.reading_body = true;
  // Body bytes that arrived with the headers stay in the header buffer.
  Buffer& pre = *r.header_in;
  Code rc = Rc::Ok;
  if (pre.last > pre.pos || (!in.chunked && rb->rest == 0)) {
    char* from = pre.pos;
    rc = body_filter(r, *rb, pre);
    if (rc == Rc::Ok) r.request_length += pre.pos - from;
  }
  if (rc == Rc::Ok && !rb->last_saved && r.request_body_no_buffering) {
    // What the socket holds now; the consumer reads the rest as it sends.
    rb->buf = body_buffer(r, *rb);
    rc = read_body(r);
    if (rc == Rc::Again) rc = Rc::Ok;
  } else if (rc == Rc::Ok && !rb->last_saved) {
    rb->buf = body_buffer(r, *rb);
    r.read_event_handler = body_read_handler;
    rc = read_body(r);
    if (rc == Rc::Again) return Rc::Again;
    del_timer(r.connection->read);
  } else if (rc == Rc::Ok) {
    finish_body(r, *rb);
  }
  if (rc != Rc::Ok) {
    r.main->count--;
    return rc;
  }
  post_handler(r);
  return Rc::Ok;
}

Code read_unbuffered_request_body(Request& r) {
  RequestBody& rb = *r.request_body;
  if (rb.done) return Rc::Ok;
  Connection& c = *r.connection;
  if (c.read.timedout) {
    c.timedout = true;
    return Code::status(408);
  }
  if (rb.bufs == nullptr && rb.buf != nullptr) rb.buf->pos = rb.buf->last = rb.buf->start;
  Code rc = read_body(r);
  if (rc == Rc::Ok) del_timer(c.read);
  return rc;
}

Code discard_request_body(Request& r) {
  if (!r.is_main() || r.discard_body || r.request_body != nullptr) return Rc::Ok;
  if (test_expect(r) != Rc::Ok) return Code::status(500);
  Connection& c = *r.connection;
  del_timer(c.read);
  HeadersIn& in = r.headers_in;
  if (in.content_length_n <= 0 && !in.chunked) return Rc::Ok;
  Buffer& pre = *r.header_in;
  if (pre.last > pre.pos || in.chunked) {
    Code rc = discard_filter(r, pre);
    if (rc != Rc::Ok) return rc;
    if (in.content_length_n == 0) return Rc::Ok;
  }
  Code rc = read_discarded(r);
  if (rc == Rc::Ok) {
    r.lingering_close = false;
    return Rc::Ok;
  }
  if (rc.is_status()) return rc;
  r.read_event_handler = discarded_request_body_handler;
  r.count++;
  r.discard_body = true;
  return Rc::Ok;
}

void discarded_request_body_handler(Request& r) {
  Connection& c = *r.connection;
  if (c.read.timedout) {
    c.timedout = true;
    c.error = true;
    finalize_request(r, Rc::Error);
    return;
  }
  uint64_t timer = 0;
  if (r.lingering_time != 0) {
    uint64_t now = clock::msec();
    if (now >= r.lingering_time) {
      r.discard_body = false;
      r.lingering_close = false;
      finalize_request(r, Rc::Error);
      return;
    }
    timer = r.lingering_time - now;
  }
  Code rc = read_discarded(r);
  if (rc == Rc::Ok) {
    r.discard_body = false;
    r.lingering_close = false;
    r.lingering_time = 0;
    finalize_request(r, Rc::Done);
    return;
  }
  if (rc.is_status()) {
    c.error = true;
    finalize_request(r, Rc::Error);
    return;
  }
  if (timer != 0) {
    uint64_t lt = *core_loc(r).lingering_timeout;
    add_timer(c.read, timer > lt ? lt : timer);
  }
}

void set_lingering_deadline(Request& r) {
  if (r.lingering_time == 0) r.lingering_time = clock::msec() + *core_loc(r).lingering_time;
}

}  // namespace weir::http
