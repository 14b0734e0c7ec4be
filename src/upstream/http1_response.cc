#include "upstream/http1_response.h"

#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "core/str.h"
#include "http/request.h"

namespace weir::http {

namespace {

HeaderResult invalid(Request& r, const char* what) {
  log_error(LogLevel::Error, r.log(), 0, "upstream sent %s", what);
  return HeaderResult::Invalid;
}

void set_keepalive_if_done(Upstream& u, Http1Response& ctx) {
  u.keepalive = !u.headers_in.connection_close && !ctx.extra;
}

}  // namespace

HeaderResult http1_process_header(Request& r, Http1Response& ctx) {
  Upstream& u = *r.upstream;
  Buffer& b = u.buffer;
  for (;;) {
    if (!ctx.in_headers) {
      ParseResult pr = parse_status_line(ctx.status, b);
      if (pr == ParseResult::Again) return HeaderResult::Again;
      if (pr != ParseResult::Ok) return invalid(r, "invalid status line");
      int code = ctx.status.code;
      if (ctx.status.http_major != 1 || code < 100) return invalid(r, "invalid status line");
      ctx.in_headers = true;
      // An interim response (100 Continue, 103 Early Hints) is not the answer: the lifecycle
      // passes it on, and the answer follows.
      ctx.interim = code < 200 && code != 101;
      u.headers_in.status = code;
      u.headers_in.status_line =
          r.pool->dup({ctx.status.start, static_cast<size_t>(ctx.status.end - ctx.status.start)});
      if (!ctx.interim && ctx.status.http_minor == 0) u.headers_in.connection_close = true;
      WEIR_DEBUG(r.log(), "http %s status %d \"%.*s\"", ctx.protocol, code,
                 static_cast<int>(u.headers_in.status_line.size()),
                 u.headers_in.status_line.data());
      ctx.header = HeaderLineState{};
    }
    ParseResult pr = parse_header_line(ctx.header, b, true);
    if (pr == ParseResult::Again) return HeaderResult::Again;
    if (pr == ParseResult::HeaderDone) {
      WEIR_DEBUG(r.log(), "http %s header done", ctx.protocol);
      if (ctx.interim) {
        ctx.in_headers = false;
        ctx.status = StatusLine{};
        return HeaderResult::Interim;
      }
      if (u.headers_in.chunked && u.headers_in.content_length_n >= 0) {
        return invalid(r, "\"Content-Length\" and \"Transfer-Encoding\" headers at the same time");
      }
      if (u.headers_in.status == 101) {
        // The connection switches protocols only when the client asked to (nginx would relay the
        // 101 as an ordinary response).
        if (r.headers_in.upgrade == nullptr) {
          return invalid(r, "\"101 Switching Protocols\" to a request without \"Upgrade\"");
        }
        u.upgrade = true;
        u.keepalive = false;
      }
      return HeaderResult::Done;
    }
    if (pr != ParseResult::Ok || ctx.header.invalid) return invalid(r, "invalid header");
    HeaderLineState& hs = ctx.header;
    std::string_view key(hs.name_start, static_cast<size_t>(hs.name_end - hs.name_start));
    std::string_view value(hs.value_start, static_cast<size_t>(hs.value_end - hs.value_start));
    // The header buffer is reused for the body: keep a copy. A line as the HTTP/1 header filter
    // writes one ("Key: value\r\n") is kept whole, so that it is also written with one copy.
    size_t line = key.size() + value.size() + 4;
    bool whole = value.data() == key.data() + key.size() + 2 && key.data()[key.size() + 1] == ' ' &&
                 value.data()[value.size()] == '\r' && value.data()[value.size() + 1] == '\n' &&
                 line <= UINT8_MAX;
    // One allocation: the line, then the lower-case name.
    size_t kept = whole ? line : static_cast<size_t>(value.end() - key.data());
    char* mem = r.pool->alloc_bytes(kept + key.size());
    std::memcpy(mem, key.data(), kept);
    header_lowcase_into(hs, key, mem + kept);
    std::string_view copy(mem, kept);
    Header* h = u.headers_in.headers.push(*r.pool, copy.substr(0, key.size()),
                                          copy.substr(value.data() - key.data(), value.size()));
    if (whole) h->line = static_cast<uint8_t>(line);
    WEIR_DEBUG(r.log(), "http %s header: \"%.*s: %.*s\"", ctx.protocol,
               static_cast<int>(key.size()), key.data(), static_cast<int>(value.size()),
               value.data());
    h->lowcase_key = {mem + kept, key.size()};
    std::string_view lc = h->lowcase_key;
    if (ctx.interim) continue;  // its fields say nothing of the answer's framing
    if (lc == "content-length") {
      auto n = parse_int(value);
      if (!n || *n < 0 ||
          (u.headers_in.content_length_n >= 0 && *n != u.headers_in.content_length_n)) {
        return invalid(r, "invalid \"Content-Length\" header");
      }
      u.headers_in.content_length_n = *n;
    } else if (lc == "transfer-encoding") {
      if (!iequals(trim_ows(value), "chunked") || ctx.status.http_minor == 0) {
        return invalid(r, "unknown \"Transfer-Encoding\"");
      }
      u.headers_in.chunked = true;
    } else if (lc == "connection") {
      if (ifind(value, "close") != std::string_view::npos) u.headers_in.connection_close = true;
    } else if (lc == "location") {
      u.headers_in.location = h;
    }
  }
}

Rc http1_input_filter_init(Request& r, Http1Response& ctx) {
  Upstream& u = *r.upstream;
  int status = u.headers_in.status;

  if (ctx.head || status == 204 || status == 304) {
    u.length = 0;
    set_keepalive_if_done(u, ctx);
  } else if (u.headers_in.chunked) {
    u.length = 1;  // at least the last chunk is to come
    ctx.chunked = ChunkedState{};
    if (u.conf->pass_trailers) {
      // The trailer section is kept as it comes, within proxy_buffer_size (two bytes kept back
      // for the empty line that ends it).
      Buffer* t = Buffer::create_temp(*r.pool, u.conf->buffer_size + 2);
      t->end -= 2;
      ctx.chunked.trailer = t;
    }
  } else if (u.headers_in.content_length_n >= 0) {
    u.length = u.headers_in.content_length_n;
    if (u.length == 0) set_keepalive_if_done(u, ctx);
    u.body_as_is = true;
    u.keepalive_at_end = !u.headers_in.connection_close;
  } else {
    u.length = -1;
    u.body_as_is = true;
  }
  return Rc::Ok;
}

namespace {

void too_much(Request& r, Http1Response& ctx) {
  if (!ctx.extra) {
    log_error(LogLevel::Warn, r.log(), 0,
              "upstream sent more data than specified in \"Content-Length\" header");
  }
  ctx.extra = true;
}

// Non-buffered, Content-Length or close-delimited.
Rc copy_filter(Request& r, Http1Response& ctx, size_t bytes) {
  Upstream& u = *r.upstream;
  char* from = u.buffer.last;
  u.buffer.last += bytes;
  char* last = u.buffer.last;
  if (u.length == 0) {
    too_much(r, ctx);
    u.keepalive = false;
    return Rc::Ok;
  }
  if (u.length > 0) {
    if (last - from > u.length) {
      last = from + u.length;
      too_much(r, ctx);
    }
    u.length -= last - from;
    if (u.length == 0) set_keepalive_if_done(u, ctx);
  }
  if (last > from) add_non_buffered_out(r, u, from, last);
  return Rc::Ok;
}

// proxy_pass_trailers: the trailer section the chunked parser kept, parsed as header lines into
// u.headers_in.trailers (the lifecycle passes them on when the response ends well).
Rc parse_trailers(Request& r, Upstream& u, Buffer& t) {
  if (t.last == t.pos) return Rc::Ok;
  t.end += 2;
  *t.last++ = '\r';
  *t.last++ = '\n';
  HeaderLineState hs;
  for (;;) {
    ParseResult pr = parse_header_line(hs, t, true);
    if (pr == ParseResult::HeaderDone) return Rc::Ok;
    if (pr != ParseResult::Ok || hs.invalid) {
      log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid trailer");
      return Rc::Error;
    }
    std::string_view key(hs.name_start, static_cast<size_t>(hs.name_end - hs.name_start));
    std::string_view value(hs.value_start, static_cast<size_t>(hs.value_end - hs.value_start));
    Header* h = u.headers_in.trailers.push(*r.pool, key, value);
    h->lowcase_key = header_lowcase_key(hs, key, *r.pool);
  }
}

// Walks the chunked framing over [from, last), handing each piece of data to emit. Ok, or Error
// with the cause logged.
template <class Emit>
Rc dechunk(Request& r, Http1Response& ctx, Upstream& u, char* from, char* last, Emit emit) {
  Buffer view;
  view.pos = from;
  view.last = last;
  view.temporary = true;
  while (view.pos < view.last) {
    if (u.length == 0) {
      too_much(r, ctx);
      u.keepalive = false;
      return Rc::Ok;
    }
    ChunkedResult cr = parse_chunked(ctx.chunked, view);
    if (cr == ChunkedResult::Ok) {
      off_t n = std::min<off_t>(ctx.chunked.size, view.last - view.pos);
      if (n > 0) emit(view.pos, view.pos + n);
      view.pos += n;
      ctx.chunked.size -= n;
      continue;
    }
    if (cr == ChunkedResult::Done) {
      if (ctx.chunked.trailer != nullptr && parse_trailers(r, u, *ctx.chunked.trailer) != Rc::Ok) {
        u.keepalive = false;
        return Rc::Error;
      }
      u.length = 0;
      set_keepalive_if_done(u, ctx);
      if (view.pos < view.last) {
        too_much(r, ctx);
        u.keepalive = false;
      }
      return Rc::Ok;
    }
    if (cr == ChunkedResult::Again) return Rc::Ok;
    Buffer* t = ctx.chunked.trailer;
    log_error(LogLevel::Error, r.log(), 0,
              t != nullptr && t->last == t->end ? "upstream sent too big trailers"
                                                : "upstream sent invalid chunked response");
    u.keepalive = false;
    return Rc::Error;
  }
  return Rc::Ok;
}

Rc chunked_filter(Request& r, Http1Response& ctx, size_t bytes) {
  Upstream& u = *r.upstream;
  char* from = u.buffer.last;
  u.buffer.last += bytes;
  return dechunk(r, ctx, u, from, u.buffer.last,
                 [&](char* p, char* e) { add_non_buffered_out(r, u, p, e); });
}

}  // namespace

Rc http1_input_filter(Request& r, Http1Response& ctx, size_t bytes) {
  return r.upstream->headers_in.chunked ? chunked_filter(r, ctx, bytes)
                                        : copy_filter(r, ctx, bytes);
}

Rc http1_pipe_filter(EventPipe& p, Buffer* raw, char* from, Http1Response& ctx) {
  Request& r = *static_cast<Request*>(p.input_ctx);
  Upstream& u = *r.upstream;
  if (u.headers_in.chunked) {
    Rc rc = dechunk(r, ctx, u, from, raw->last,
                    [&](char* s, char* e) { (void)pipe_add_data(p, raw, s, e); });
    if (u.length == 0) p.upstream_done = true;
    return rc;
  }
  if (p.length == 0 || (p.length > 0 && raw->last - from > p.length)) too_much(r, ctx);
  Rc rc = pipe_copy_filter(p, raw, from);
  u.length = p.length;
  if (p.upstream_done) set_keepalive_if_done(u, ctx);
  if (ctx.extra) u.keepalive = false;
  return rc;
}

}  // namespace weir::http
