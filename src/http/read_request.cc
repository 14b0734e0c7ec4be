#include "http/read_request.h"

#include <cerrno>
#include <cstring>

#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/headers_in.h"
#include "http/http_connection.h"
#include "http/request.h"
#include "http/ssl_module.h"

namespace weir::http {

namespace {

// Ok when unparsed bytes are in the header buffer (read now or before); Again when waiting for
// the client; Error when it closed or failed (the request is finalized with 400).
Rc read_request_header(Request& r) {
  Connection& c = *r.connection;
  Buffer& b = *r.header_in;
  if (b.last > b.pos) return Rc::Ok;
  IoResult got{Rc::Again, 0};
  if (c.read.ready) got = c.recv(b.last, b.end - b.last);
  if (got.rc == Rc::Again) {
    if (!c.read.timer_set) add_timer(c.read, *core_srv(r).client_header_timeout);
    // An incomplete header may be reclaimed for a new connection (a keep-alive one joins the list
    // here, so a header that comes whole costs no list work).
    if (c.reclaim == Reclaim::No) ConnectionPool::current->set_reclaim(c, Reclaim::Waiting);
    return Rc::Again;
  }
  if (got.rc == Rc::Done)
    log_error(LogLevel::Info, *c.log, 0, "client prematurely closed connection");
  if (got.rc != Rc::Ok) {
    c.error = true;
    c.log->action = "reading client request headers";
    finalize_request(r, Code::status(400));
    return Rc::Error;
  }
  b.last += got.n;
  return Rc::Ok;
}

}  // namespace

Rc process_request_uri(Request& r) {
  RequestLineState& l = r.line;
  std::string_view raw(l.uri_start, l.uri_end - l.uri_start);
  if (l.complex_uri || l.quoted_uri || l.empty_path_in_uri) {
    char* out = r.pool->alloc_bytes(raw.size() + 2);
    ComplexUri cu;
    if (parse_complex_uri(raw, l.empty_path_in_uri, *core_srv(r).merge_slashes, out, cu) !=
        ParseResult::Ok) {
      r.uri = {};
      log_error(LogLevel::Info, r.log(), 0, "client sent invalid request");
      finalize_request(r, Code::status(400));
      return Rc::Error;
    }
    r.uri = cu.uri;
    r.exten = cu.exten;
    if (cu.args_found) r.args = cu.args;
    r.plus_in_uri = r.plus_in_uri || cu.plus_in_uri;
  } else {
    size_t len = l.args_start != nullptr ? l.args_start - 1 - l.uri_start : l.uri_end - l.uri_start;
    r.uri = {l.uri_start, len};
    if (l.uri_ext != nullptr) {
      char* end = l.args_start != nullptr ? l.args_start - 1 : l.uri_end;
      r.exten = {l.uri_ext, static_cast<size_t>(end - l.uri_ext)};
    }
    if (l.args_start != nullptr && l.uri_end > l.args_start) {
      r.args = {l.args_start, static_cast<size_t>(l.uri_end - l.args_start)};
    }
  }
  r.unparsed_uri = raw;
  r.valid_unparsed_uri = !l.empty_path_in_uri;
  r.complex_uri = l.complex_uri;
  r.quoted_uri = l.quoted_uri;
  r.empty_path_in_uri = l.empty_path_in_uri;
  r.plus_in_uri = r.plus_in_uri || l.plus_in_uri;
  WEIR_DEBUG(r.log(), "http uri: \"%.*s\"", static_cast<int>(r.uri.size()), r.uri.data());
  WEIR_DEBUG(r.log(), "http args: \"%.*s\"", static_cast<int>(r.args.size()), r.args.data());
  WEIR_DEBUG(r.log(), "http exten: \"%.*s\"", static_cast<int>(r.exten.size()), r.exten.data());
  return Rc::Ok;
}

namespace {

// How many large header buffers the connection's request holds.
int busy_buffers(const HttpConnection& hc) {
  int n = 0;
  for (const ChainLink* cl = hc.busy; cl != nullptr; cl = cl->next) n++;
  return n;
}

// Moves the unfinished request line (or header line) into a large buffer. Declined: no room left.
Rc alloc_large_header_buffer(Request& r, bool request_line) {
  HttpConnection& hc = *r.http_connection;
  CoreSrvConf& cscf = core_srv(r);
  Buffer& old_b = *r.header_in;
  char* old = request_line ? r.line.request_start : r.header_line.name_start;
  int state = request_line ? r.line.state : r.header_line.state;
  size_t big = cscf.large_client_header_buffers->size;
  if (state != 0 && old != nullptr && static_cast<size_t>(old_b.pos - old) >= big)
    return Rc::Declined;

  Buffer* b;
  if (hc.free != nullptr) {
    ChainLink* cl = hc.free;
    hc.free = cl->next;
    b = cl->buf;
    cl->next = hc.busy;
    hc.busy = cl;
  } else if (busy_buffers(hc) < cscf.large_client_header_buffers->num) {
    b = Buffer::create_temp(r.connection->pool, big);
    ChainLink* cl = r.connection->pool.alloc_link();
    cl->buf = b;
    cl->next = hc.busy;
    hc.busy = cl;
  } else {
    return Rc::Declined;
  }
  b->pos = b->last = b->start;

  if (state == 0 || old == nullptr) {
    // A line was just completed: nothing unfinished to carry over.
    r.header_in = b;
    return Rc::Ok;
  }
  size_t len = old_b.pos - old;
  if (len > static_cast<size_t>(b->end - b->start)) {
    log_error(LogLevel::Alert, r.log(), 0, "too large header to copy");
    return Rc::Error;
  }
  std::memcpy(b->start, old, len);
  b->pos = b->last = b->start + len;
  ptrdiff_t delta = b->start - old;
  if (request_line) {
    r.line.relocate(delta);
  } else {
    r.header_line.relocate(delta);
  }
  r.header_in = b;
  return Rc::Ok;
}

void process_request_headers_impl(Event& ev);

// The request-reading handlers run posted requests before returning, like every event handler.
void process_request_headers(Event& ev) {
  process_request_headers_impl(ev);
  run_posted_requests(*static_cast<Connection*>(ev.data));
}

}  // namespace

void process_request(Request& r) {
  Connection& c = *r.connection;
  if (r.stat_reading) {
    stub_stat_add(StubStat::Reading, -1);
    stub_stat_add(StubStat::Writing, 1);
    r.stat_reading = false;
    r.stat_writing = true;
  }
  del_timer(c.read);
  if (c.reclaim != Reclaim::No)
    ConnectionPool::current->set_reclaim(c, Reclaim::No);  // a whole request
  c.read.handler = request_event_handler;
  c.write.handler = request_event_handler;
  r.read_event_handler = block_reading;
  Code verified = Rc::Ok;
  if (r.http_connection->plain_http) {
    log_error(LogLevel::Info, *c.log, 0, "client sent plain HTTP request to HTTPS port");
    finalize_request(r, Code::status(497));
  } else if (c.ssl != nullptr && (verified = verify_client_certificate(r)) != Rc::Ok) {
    finalize_request(r, verified);
  } else {
    handle_request(r);
  }
  run_posted_requests(c);
}

namespace {

// client_header_timeout fired while the request line or headers were still arriving, or the
// connection was reclaimed for a new one (ConnectionPool::drain, which has logged why).
bool close_on_header_timeout(Event& ev, Request& r) {
  Connection& c = *r.connection;
  if (!ev.timedout && !c.close) return false;
  if (ev.timedout) log_error(LogLevel::Info, *c.log, ETIMEDOUT, "client timed out");
  c.timedout = true;
  close_request(r, 408);
  return true;
}

// The request whose head the event's connection is reading, or nullptr when it was just closed.
Request* reading_request(Event& ev) {
  Request& r = *http_connection_of(*static_cast<Connection*>(ev.data))->request;
  return close_on_header_timeout(ev, r) ? nullptr : &r;
}

void process_request_headers_impl(Event& ev) {
  Request* reading = reading_request(ev);
  if (reading == nullptr) return;
  Request& r = *reading;
  Connection* c = r.connection;
  WEIR_DEBUG(*c->log, "http process request header line");
  ParseResult rc = ParseResult::Again;
  for (;;) {
    if (rc == ParseResult::Again) {
      if (r.header_in->pos == r.header_in->end) {
        Rc rv = alloc_large_header_buffer(r, false);
        if (rv == Rc::Error) {
          close_request(r, 500);
          return;
        }
        if (rv == Rc::Declined) {
          r.lingering_close = true;
          char* p = r.header_line.name_start;
          if (p == nullptr) {
            log_error(LogLevel::Info, *c->log, 0, "client sent too large request");
          } else {
            int len = static_cast<int>(std::min<ptrdiff_t>(r.header_in->end - p, 1748));
            log_error(LogLevel::Info, *c->log, 0, "client sent too long header line: \"%.*s...\"",
                      len, p);
          }
          finalize_request(r, Code::status(kHttpRequestHeaderTooLarge));
          return;
        }
      }
      if (read_request_header(r) != Rc::Ok) return;
    }
    CoreSrvConf& cscf = core_srv(r);
    HeaderLineState& hl = r.header_line;
    rc = parse_header_line(hl, *r.header_in, *cscf.underscores_in_headers);
    if (rc == ParseResult::Ok) {
      r.request_length += r.header_in->pos - hl.name_start;
      if (hl.invalid && *cscf.ignore_invalid_headers) {
        log_error(LogLevel::Info, *c->log, 0, "client sent invalid header line: \"%.*s\"",
                  static_cast<int>(hl.value_end - hl.name_start), hl.name_start);
        continue;
      }
      if (r.headers_in.count++ >= *cscf.max_headers) {
        r.lingering_close = true;
        log_error(LogLevel::Info, *c->log, 0, "client sent too many header lines");
        finalize_request(r, Code::status(400));
        return;
      }
      std::string_view key(hl.name_start, hl.name_end - hl.name_start);
      Header* h = r.headers_in.headers.push(
          *r.pool, key, {hl.value_start, static_cast<size_t>(hl.value_end - hl.value_start)});
      h->lowcase_key = header_lowcase_key(hl, key, *r.pool);
      WEIR_DEBUG(*c->log, "http header: \"%.*s: %.*s\"", static_cast<int>(key.size()), key.data(),
                 static_cast<int>(h->value.size()), h->value.data());
      if (process_known_header(r, h) != Rc::Ok) return;
      continue;
    }
    if (rc == ParseResult::HeaderDone) {
      WEIR_DEBUG(*c->log, "http header done");
      r.request_length += r.header_in->pos - hl.name_start;
      if (process_request_header(r) != Rc::Ok) return;
      process_request(r);
      return;
    }
    if (rc == ParseResult::Again) continue;
    // Invalid header line.
    char bad = hl.value_end != nullptr ? *hl.value_end : '?';
    log_error(LogLevel::Info, *c->log, 0, "client sent invalid header line: \"%.*s\\x%02x...\"",
              static_cast<int>(hl.value_end - hl.name_start), hl.name_start,
              static_cast<unsigned char>(bad));
    finalize_request(r, Code::status(400));
    return;
  }
}

void process_request_line_impl(Event& ev) {
  Request* reading = reading_request(ev);
  if (reading == nullptr) return;
  Request& r = *reading;
  Connection* c = r.connection;
  WEIR_DEBUG(*c->log, "http process request line");
  ParseResult rc = ParseResult::Again;
  for (;;) {
    if (rc == ParseResult::Again) {
      if (read_request_header(r) != Rc::Ok) return;
    }
    rc = parse_request_line(r.line, *r.header_in);
    if (rc == ParseResult::Ok) {
      RequestLineState& l = r.line;
      r.request_line = {l.request_start, static_cast<size_t>(l.request_end - l.request_start)};
      WEIR_DEBUG(*c->log, "http request line: \"%.*s\"", static_cast<int>(r.request_line.size()),
                 r.request_line.data());
      r.request_length = r.header_in->pos - l.request_start;
      r.method = l.method;
      r.method_name = {l.request_start, static_cast<size_t>(l.method_end + 1 - l.request_start)};
      r.http_version = l.http_major * 1000 + l.http_minor;
      if (l.protocol_start != nullptr) {
        r.http_protocol = {l.protocol_start, static_cast<size_t>(l.request_end - l.protocol_start)};
      }
      if (process_request_uri(r) != Rc::Ok) return;
      if (l.schema_end != nullptr) {
        r.schema = {l.schema_start, static_cast<size_t>(l.schema_end - l.schema_start)};
      }
      if (l.host_start != nullptr && l.host_end != nullptr) {
        std::string_view host(l.host_start, l.host_end - l.host_start);
        if (!validate_host(host, *r.pool)) {
          log_error(LogLevel::Info, *c->log, 0, "client sent invalid host in request line");
          finalize_request(r, Code::status(400));
          return;
        }
        if (set_virtual_server(r, host) != Rc::Ok) return;
        r.headers_in.server = host;
      }
      if (r.http_version < 1000) {
        if (r.headers_in.server.empty() && set_virtual_server(r, {}) != Rc::Ok) return;
        process_request(r);
        return;
      }
      c->log->action = "reading client request headers";
      c->read.handler = process_request_headers;
      process_request_headers(c->read);
      return;
    }
    if (rc != ParseResult::Again) {
      static constexpr const char* kErrors[] = {
          "client sent invalid method", "client sent invalid request",
          "client sent invalid version", "client sent invalid method in HTTP/0.9 request"};
      int idx = rc == ParseResult::InvalidMethod    ? 0
                : rc == ParseResult::InvalidRequest ? 1
                : rc == ParseResult::InvalidVersion ? 2
                                                    : 3;
      log_error(LogLevel::Info, *c->log, 0, "%s", kErrors[idx]);
      finalize_request(r, Code::status(rc == ParseResult::InvalidVersion ? 505 : 400));
      return;
    }
    if (r.header_in->pos == r.header_in->end) {
      Rc rv = alloc_large_header_buffer(r, true);
      if (rv == Rc::Error) {
        close_request(r, 500);
        return;
      }
      if (rv == Rc::Declined) {
        r.request_line = {r.line.request_start,
                          static_cast<size_t>(r.header_in->end - r.line.request_start)};
        log_error(LogLevel::Info, *c->log, 0, "client sent too long URI");
        finalize_request(r, Code::status(414));
        return;
      }
    }
  }
}

}  // namespace

void process_request_line(Event& ev) {
  process_request_line_impl(ev);
  run_posted_requests(*static_cast<Connection*>(ev.data));
}

}  // namespace weir::http
