// The response from a FastCGI application: records (STDOUT, STDERR, END_REQUEST) walked as they
// come, one record or many per read and a record across reads. The header is the CGI header at the
// start of STDOUT ("Status:", "Location:", the rest passed on); the body is the rest of STDOUT up
// to END_REQUEST. STDERR lines are logged as nginx logs them, and fastcgi_catch_stderr turns one
// into a bad header. nginx: ngx_http_fastcgi_process_record, _process_header, _input_filter,
// _non_buffered_filter
#include <cstring>

#include "core/str.h"
#include "modules/fastcgi/fastcgi.h"

namespace weir::http::fastcgi {

namespace {

bool known_type(uint8_t t) {
  return t == static_cast<uint8_t>(RecordType::Stdout) ||
         t == static_cast<uint8_t>(RecordType::Stderr) ||
         t == static_cast<uint8_t>(RecordType::EndRequest);
}

// A STDERR record's text, logged as nginx logs it (trailing line ends, dots and spaces left out).
// While the header is read, a fastcgi_catch_stderr match makes it a bad header: Declined.
Rc log_stderr(Request& r, std::string_view msg, bool in_header) {
  size_t len = msg.size();
  while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r' || msg[len - 1] == '.' ||
                     msg[len - 1] == ' ')) {
    len--;
  }
  log_error(LogLevel::Error, r.log(), 0, "FastCGI sent in stderr: \"%.*s\"", static_cast<int>(len),
            msg.data());
  const FastcgiLocConf& conf = fastcgi_conf(r);
  if (in_header && conf.catch_stderr != nullptr) {
    for (const std::string& pattern : *conf.catch_stderr) {
      if (msg.find(pattern) != std::string_view::npos) return Rc::Declined;
    }
  }
  return Rc::Ok;
}

// The body came short of the header's Content-Length by the end of STDOUT or of the request
// (logged as nginx: its buffered relay checks at either, its non-buffered one at the request's).
bool short_of_length(Request& r, Records& rec, bool at_end_request) {
  if (rec.rest <= 0) return false;
  const char* what = nullptr;
  if (r.upstream->buffering && rec.stdout_closed) {
    what = "stdout";
  } else if (at_end_request) {
    what = "request";
  }
  if (what == nullptr) return false;
  log_error(LogLevel::Error, r.log(), 0, "upstream prematurely closed FastCGI %s", what);
  rec.short_body = true;
  return true;
}

// Walks the records over [from, last): STDOUT's bytes go to emit, STDERR's are logged, padding and
// END_REQUEST's body are skipped. Ok; Error when a record is not FastCGI 1.0's (logged); Declined
// when fastcgi_catch_stderr caught a line.
template <class Emit>
Rc walk(Request& r, Records& rec, char* from, char* last, bool in_header, Emit emit) {
  // The body's STDOUT bytes, bounded by the header's Content-Length: what goes past it is dropped
  // with nginx's warning, and the response ends there (the connection is not kept).
  auto body = [&](char* s, char* e) {
    if (in_header) return emit(s, e);
    if (rec.rest == Records::kDeferred) rec.rest = r.upstream->headers_in.content_length_n;
    if (rec.rest >= 0 && e - s > rec.rest) {
      log_error(LogLevel::Warn, r.log(), 0,
                "upstream sent more data than specified in \"Content-Length\" header");
      e = s + rec.rest;
      rec.ended = true;
      rec.extra = true;
    }
    if (rec.rest > 0) rec.rest -= e - s;
    if (e > s) emit(s, e);
  };
  if (rec.gathered > 0) {
    size_t n = std::min(rec.gathered, static_cast<size_t>(last - from));
    body(from, from + n);
    from += n;
    rec.gathered -= n;
    // The header's walk may have seen the ends already.
    if (rec.gathered == 0 && short_of_length(r, rec, rec.ended)) return Rc::Error;
    if (rec.ended) return Rc::Ok;
  }
  while (from < last) {
    if (rec.ended) {
      rec.extra = true;  // nothing may follow END_REQUEST on a kept connection
      return Rc::Ok;
    }
    if (rec.content_left > 0) {
      size_t n = std::min(rec.content_left, static_cast<size_t>(last - from));
      if (rec.type == RecordType::Stdout) {
        body(from, from + n);
        if (rec.ended) return Rc::Ok;
      } else if (rec.type == RecordType::Stderr) {
        // Gathered into one line per record; a longer text goes in lines of the buffer's size.
        for (size_t done = 0; done < n;) {
          size_t m = std::min(n - done, sizeof rec.err - rec.err_len);
          std::memcpy(rec.err + rec.err_len, from + done, m);
          rec.err_len += m;
          done += m;
          bool record_end = done == n && rec.content_left == n;
          if (rec.err_len == sizeof rec.err || record_end) {
            std::string_view msg(rec.err, rec.err_len);
            rec.err_len = 0;
            if (log_stderr(r, msg, in_header) == Rc::Declined) return Rc::Declined;
          }
        }
      }
      from += n;
      rec.content_left -= n;
    } else if (rec.padding_left > 0) {
      size_t n = std::min(rec.padding_left, static_cast<size_t>(last - from));
      from += n;
      rec.padding_left -= n;
    } else {
      size_t n = std::min(kHeaderSize - rec.head_len, static_cast<size_t>(last - from));
      std::memcpy(rec.head + rec.head_len, from, n);
      rec.head_len = static_cast<uint8_t>(rec.head_len + n);
      from += n;
      if (rec.head_len < kHeaderSize) return Rc::Ok;
      rec.head_len = 0;
      if (rec.head[0] != 1) {
        log_error(LogLevel::Error, r.log(), 0,
                  "upstream sent unsupported FastCGI protocol version: %d", rec.head[0]);
        return Rc::Error;
      }
      if (!known_type(rec.head[1])) {
        log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid FastCGI record type: %d",
                  rec.head[1]);
        return Rc::Error;
      }
      if (rec.head[2] != 0 || rec.head[3] != 1) {
        log_error(LogLevel::Error, r.log(), 0, "upstream sent unexpected FastCGI request id: %d",
                  rec.head[2] << 8 | rec.head[3]);
        return Rc::Error;
      }
      rec.type = static_cast<RecordType>(rec.head[1]);
      rec.content_left = static_cast<size_t>(rec.head[4] << 8 | rec.head[5]);
      rec.padding_left = rec.head[6];
      if (rec.type == RecordType::Stdout && rec.content_left == 0) rec.stdout_closed = true;
      if (!in_header && short_of_length(r, rec, rec.type == RecordType::EndRequest)) {
        return Rc::Error;
      }
    }
    // END_REQUEST ends the response once its body and padding are read.
    if (rec.type == RecordType::EndRequest && rec.content_left == 0 && rec.padding_left == 0) {
      rec.ended = true;
    }
  }
  return Rc::Ok;
}

// END_REQUEST was read: the body is whole, and a kept connection may serve the next request.
void on_end(Request& r, Upstream& u, const Records& rec) {
  u.length = 0;
  u.keepalive = *fastcgi_conf(r).keep_conn && !rec.extra;
}

}  // namespace

HeaderResult process_header(Request& r) {
  FastcgiCtx& ctx = fastcgi_ctx(r);
  Upstream& u = *r.upstream;
  Buffer& b = u.buffer;
  if (!ctx.header_started) {
    ctx.header_started = true;
    ctx.gathered_end = ctx.parsed = b.pos;
    ctx.header = HeaderLineState{};
  }
  // The new bytes' STDOUT is gathered right after what came before, in place: the header lines
  // are parsed from one run of bytes, and the records' framing frees room as it goes.
  Rc rc = walk(r, ctx.records, ctx.gathered_end, b.last, true, [&](char* s, char* e) {
    std::memmove(ctx.gathered_end, s, static_cast<size_t>(e - s));
    ctx.gathered_end += e - s;
  });
  b.last = ctx.gathered_end;
  if (rc != Rc::Ok) return HeaderResult::Invalid;
  for (;;) {
    Buffer view;
    view.pos = ctx.parsed;
    view.last = ctx.gathered_end;
    view.temporary = true;
    ParseResult pr = parse_header_line(ctx.header, view, true);
    ctx.parsed = view.pos;
    if (pr == ParseResult::Again) {
      if (ctx.records.ended) {
        log_error(LogLevel::Error, r.log(), 0, "upstream prematurely closed FastCGI stdout");
        return HeaderResult::Invalid;
      }
      return HeaderResult::Again;
    }
    if (pr == ParseResult::HeaderDone) {
      WEIR_DEBUG(r.log(), "http fastcgi header done");
      cgi_header_done(u);
      // What follows the header is the body's start; the body filters take it from here.
      b.pos = ctx.parsed;
      ctx.records.gathered = static_cast<size_t>(ctx.gathered_end - ctx.parsed);
      return HeaderResult::Done;
    }
    HeaderLineState& hs = ctx.header;
    if (pr != ParseResult::Ok || hs.invalid) {
      log_error(LogLevel::Error, r.log(), 0, "upstream sent invalid header");
      return HeaderResult::Invalid;
    }
    if (cgi_header_field(r, hs, "fastcgi") == HeaderResult::Invalid) return HeaderResult::Invalid;
  }
}

Rc input_filter_init(Request& r) {
  // The body ends with END_REQUEST: at least that is still to come (a close before it is the
  // upstream's failure, not the body's end), unless it came with the header.
  Records& rec = fastcgi_ctx(r).records;
  Upstream& u = *r.upstream;
  int status = u.headers_in.status;
  rec.rest = status == 204 || status == 304 ? 0
             : r.method & kHead             ? Records::kDeferred
                                            : u.headers_in.content_length_n;
  r.upstream->length = 1;
  if (rec.ended && rec.gathered == 0) {
    // The whole answer came with the header: no body walk follows to see it short.
    if (short_of_length(r, rec, true)) return Rc::Error;
    on_end(r, *r.upstream, rec);
  }
  return Rc::Ok;
}

Rc input_filter(Request& r, size_t bytes) {
  Upstream& u = *r.upstream;
  FastcgiCtx& ctx = fastcgi_ctx(r);
  char* from = u.buffer.last;
  u.buffer.last += bytes;
  Rc rc = walk(r, ctx.records, from, u.buffer.last, false,
               [&](char* s, char* e) { add_non_buffered_out(r, u, s, e); });
  if (rc != Rc::Ok) {
    // A body short of its length: what came goes out first (as nginx).
    if (!ctx.records.short_body) return Rc::Error;
    u.error = true;
  }
  if (ctx.records.ended) on_end(r, u, ctx.records);
  return Rc::Ok;
}

Rc pipe_input_filter(EventPipe& p, Buffer* raw, char* from) {
  Request& r = *static_cast<Request*>(p.input_ctx);
  Upstream& u = *r.upstream;
  FastcgiCtx& ctx = fastcgi_ctx(r);
  Rc rc = walk(r, ctx.records, from, raw->last, false,
               [&](char* s, char* e) { (void)pipe_add_data(p, raw, s, e); });
  if (rc != Rc::Ok) return Rc::Error;
  if (ctx.records.ended) {
    on_end(r, u, ctx.records);
    p.length = 0;
    p.upstream_done = true;
  }
  return Rc::Ok;
}

}  // namespace weir::http::fastcgi
