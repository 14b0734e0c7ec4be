#include "http/request_body.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/core_module.h"

namespace weir::http {

namespace {

bool g_exiting = false;

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

// Drops body bytes from b; for chunked bodies parses the framing. Ok, or an HTTP status.
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
        in.content_length_n = 1;  // something is still expected
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
    size_t size = r.headers_in.chunked ? sizeof buffer
                                        : static_cast<size_t>(std::min<off_t>(r.headers_in.content_length_n,
                                                                              sizeof buffer));
    ssize_t n = c.recv(buffer, size);
    if (n == -2) {
      c.error = true;
      return Rc::Ok;
    }
    if (n == -1) return Rc::Again;
    if (n == 0) return Rc::Ok;
    Buffer b;
    b.pos = b.start = buffer;
    b.last = b.end = buffer + n;
    b.temporary = true;
    Code rc = discard_filter(r, b);
    if (rc != Rc::Ok) return rc;
  }
}

void body_read_handler(Request& r);

// Copies body bytes from b into the current buffer (allocating / spilling as needed). Ok, Again
// (buffer full and written out), or an HTTP status.
Code save_body(Request& r, RequestBody& rb, Buffer& b, off_t n);

Code write_to_temp_file(Request& r, RequestBody& rb) {
  if (rb.temp_file == nullptr) {
    CoreLocConf& clcf = core_loc(r);
    rb.temp_file = r.pool->make<TempFile>();
    rb.temp_file->persistent = *clcf.client_body_in_file_only != BodyInFileOnly::Off;
    rb.temp_file->clean = *clcf.client_body_in_file_only == BodyInFileOnly::Clean;
    rb.temp_file->file.log = &r.connection->log;
    if (int err = create_temp_file(*rb.temp_file, *r.pool, *clcf.client_body_temp_path); err != 0) {
      log_error(LogLevel::Crit, r.log(), err, "failed to create a temp file for the request body in \"%s\"",
                clcf.client_body_temp_path->name.c_str());
      return Code::status(500);
    }
    log_error(LogLevel::Warn, r.log(), 0, "a client request body is buffered to a temporary file %.*s",
              static_cast<int>(rb.temp_file->file.name.size()), rb.temp_file->file.name.data());
  }
  // Memory buffers collected so far go to the file.
  ChainLink* mem = nullptr;
  ChainLink** ll = &mem;
  for (ChainLink* cl = rb.bufs; cl != nullptr; cl = cl->next) {
    if (!cl->buf->in_memory() || cl->buf->size() == 0) continue;
    ChainLink* n = r.pool->alloc_link();
    n->buf = cl->buf;
    n->next = nullptr;
    *ll = n;
    ll = &n->next;
  }
  if (rb.buf != nullptr && rb.buf->last > rb.buf->pos) {
    ChainLink* n = r.pool->alloc_link();
    n->buf = rb.buf;
    n->next = nullptr;
    *ll = n;
  }
  File& f = rb.temp_file->file;
  if (mem != nullptr && write_chain_to_file(f, mem, f.offset) < 0) {
    log_error(LogLevel::Crit, r.log(), errno, "write() to \"%.*s\" failed", static_cast<int>(f.name.size()),
              f.name.data());
    return Code::status(500);
  }
  rb.bufs = nullptr;
  if (rb.buf != nullptr) rb.buf->pos = rb.buf->last = rb.buf->start;
  return Rc::Ok;
}

Code finish_body(Request& r, RequestBody& rb) {
  CoreLocConf& clcf = core_loc(r);
  if (rb.temp_file != nullptr || *clcf.client_body_in_file_only != BodyInFileOnly::Off) {
    if (Code rc = write_to_temp_file(r, rb); rc != Rc::Ok) return rc;
    auto* fb = r.pool->make<Buffer>();
    fb->in_file = true;
    fb->file = &rb.temp_file->file;
    fb->file_pos = 0;
    fb->file_last = rb.temp_file->file.offset;
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = fb;
    cl->next = nullptr;
    rb.bufs = cl;
  } else if (rb.buf != nullptr && rb.buf->last > rb.buf->pos) {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = rb.buf;
    cl->next = nullptr;
    ChainLink** ll = &rb.bufs;
    while (*ll != nullptr) ll = &(*ll)->next;
    *ll = cl;
  }
  if (rb.bufs != nullptr) {
    ChainLink* last = rb.bufs;
    while (last->next != nullptr) last = last->next;
    last->buf->last_buf = true;
  }
  rb.done = true;
  r.reading_body = false;
  r.read_event_handler = block_reading;
  return Rc::Ok;
}

Code save_body(Request& r, RequestBody& rb, Buffer& b, off_t n) {
  CoreLocConf& clcf = core_loc(r);
  while (n > 0) {
    if (rb.buf == nullptr) rb.buf = Buffer::create_temp(*r.pool, *clcf.client_body_buffer_size);
    if (rb.buf->last == rb.buf->end) {
      if (Code rc = write_to_temp_file(r, rb); rc != Rc::Ok) return rc;
    }
    off_t take = std::min<off_t>(n, rb.buf->end - rb.buf->last);
    std::memcpy(rb.buf->last, b.pos, take);
    rb.buf->last += take;
    b.pos += take;
    n -= take;
    rb.received += take;
  }
  return Rc::Ok;
}

// Feeds body bytes (from the header buffer or the socket) through the framing. Done when complete.
Code body_filter(Request& r, RequestBody& rb, Buffer& b) {
  HeadersIn& in = r.headers_in;
  if (!in.chunked) {
    off_t n = std::min<off_t>(b.last - b.pos, rb.rest);
    if (Code rc = save_body(r, rb, b, n); rc != Rc::Ok) return rc;
    rb.rest -= n;
    return rb.rest == 0 ? Code(Rc::Done) : Code(Rc::Again);
  }
  off_t max = *core_loc(r).client_max_body_size;
  for (;;) {
    ChunkedResult cr = parse_chunked(*rb.chunked, b);
    if (cr == ChunkedResult::Ok) {
      off_t n = std::min<off_t>(rb.chunked->size, b.last - b.pos);
      if (max != 0 && rb.received + n > max) {
        log_error(LogLevel::Error, r.log(), 0, "client intended to send too large chunked body: %lld+%lld bytes",
                  static_cast<long long>(rb.received), static_cast<long long>(rb.chunked->size));
        r.lingering_close = true;
        return Code::status(413);
      }
      if (Code rc = save_body(r, rb, b, n); rc != Rc::Ok) return rc;
      rb.chunked->size -= n;
      continue;
    }
    if (cr == ChunkedResult::Done) {
      rb.rest = 0;
      in.content_length_n = rb.received;
      return Rc::Done;
    }
    if (cr == ChunkedResult::Again) {
      rb.rest = rb.chunked->length;
      return Rc::Again;
    }
    log_error(LogLevel::Error, r.log(), 0, "client sent invalid chunked body");
    return Code::status(400);
  }
}

Code read_body(Request& r) {
  RequestBody& rb = *r.request_body;
  Connection& c = *r.connection;
  char buffer[16384];
  for (;;) {
    if (!c.read.ready) break;
    size_t size = sizeof buffer;
    if (!r.headers_in.chunked && rb.rest < static_cast<off_t>(size)) size = static_cast<size_t>(rb.rest);
    ssize_t n = c.recv(buffer, size);
    if (n == -1) break;
    if (n == 0) log_error(LogLevel::Info, c.log, 0, "client prematurely closed connection");
    if (n == 0 || n == -2) {
      c.error = true;
      return Code::status(400);
    }
    Buffer b;
    b.pos = b.start = buffer;
    b.last = b.end = buffer + n;
    b.temporary = true;
    Code rc = body_filter(r, rb, b);
    if (rc == Rc::Done) return finish_body(r, rb);
    if (rc != Rc::Again) return rc;
  }
  add_timer(c.read, *core_loc(r).client_body_timeout);
  return Rc::Again;
}

void body_read_handler(Request& r) {
  Connection& c = *r.connection;
  if (c.read.timedout) {
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
  rb->post_handler = post_handler;
  r.request_body = rb;
  HeadersIn& in = r.headers_in;
  if (in.content_length_n <= 0 && !in.chunked) {
    rb->done = true;
    post_handler(r);
    return Rc::Ok;
  }
  if (in.chunked) {
    rb->chunked = r.pool->make<ChunkedState>();
    rb->rest = 3;
  } else {
    rb->rest = in.content_length_n;
  }
  r.reading_body = true;
  // Body bytes that arrived with the headers.
  Buffer& pre = *r.header_in;
  if (pre.last > pre.pos) {
    r.request_length += pre.last - pre.pos;
    Code rc = body_filter(r, *rb, pre);
    if (rc == Rc::Done) {
      if (Code f = finish_body(r, *rb); f != Rc::Ok) {
        r.main->count--;
        return f;
      }
      post_handler(r);
      return Rc::Ok;
    }
    if (rc != Rc::Again) {
      r.main->count--;
      return rc;
    }
  }
  r.read_event_handler = body_read_handler;
  Code rc = read_body(r);
  if (rc == Rc::Again) return Rc::Again;
  del_timer(r.connection->read);
  if (rc != Rc::Ok) {
    r.main->count--;
    return rc;
  }
  post_handler(r);
  return Rc::Ok;
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

bool worker_exiting() { return g_exiting; }
void set_worker_exiting(bool exiting) { g_exiting = exiting; }

void set_lingering_deadline(Request& r) {
  if (r.lingering_time == 0) r.lingering_time = clock::msec() + *core_loc(r).lingering_time;
}

}  // namespace weir::http
