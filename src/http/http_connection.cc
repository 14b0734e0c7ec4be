#include "http/http_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/config.h"
#include "core/str.h"
#include "event/event_loop.h"
#include "event/listening.h"
#include "http/core_module.h"
#include "http/request.h"
#include "http/request_body.h"
#include "http/variables.h"

namespace weir::http {

namespace {

// HttpConnection objects are recycled per process: an idle keep-alive connection holds one of these
// and its preallocated Connection, nothing else.
HttpConnection* g_free_hc = nullptr;

HttpConnection* alloc_http_connection() {
  if (g_free_hc != nullptr) {
    HttpConnection* hc = g_free_hc;
    g_free_hc = hc->next_free;
    hc->next_free = nullptr;
    return hc;
  }
  return new HttpConnection();
}

void release_http_connection(HttpConnection* hc) {
  if (!kRecycleMemory) {
    delete hc;  // sanitizer builds recycle nothing, so a use after free is caught
    return;
  }
  hc->request_pool.reset();
  hc->request = nullptr;
  hc->busy = hc->free = nullptr;
  hc->nbusy = 0;
  hc->addr_conf = nullptr;
  hc->conf_ctx = nullptr;
  hc->next_free = g_free_hc;
  g_free_hc = hc;
}

void wait_request_handler(Event& ev);
void process_request_line(Event& ev);
void process_request_headers(Event& ev);
void lingering_close_handler(Event& ev);
void empty_handler(Event&) {}

CoreSrvConf& default_server(const HttpConnection& hc) {
  return conf_of<CoreSrvConf>(hc.conf_ctx->srv_conf);
}

ssize_t read_request_header(Request& r) {
  Connection& c = *r.connection;
  Buffer& b = *r.header_in;
  ssize_t n = b.last - b.pos;
  if (n > 0) return n;
  n = -1;
  if (c.read.ready) n = c.recv(b.last, b.end - b.last);
  if (n == -1) {
    if (!c.read.timer_set) add_timer(c.read, *core_srv(r).client_header_timeout);
    // An incomplete header may be reclaimed for a new connection (a keep-alive one joins the list
    // here, so a header that comes whole costs no list work).
    if (c.reclaim == Reclaim::No) ConnectionPool::current->set_reclaim(c, Reclaim::Waiting);
    return -1;
  }
  if (n == 0) log_error(LogLevel::Info, c.log, 0, "client prematurely closed connection");
  if (n == 0 || n == -2) {
    c.error = true;
    c.log.action = "reading client request headers";
    finalize_request(r, Code::status(400));
    return -2;
  }
  b.last += n;
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
  } else if (hc.nbusy < cscf.large_client_header_buffers->num) {
    b = Buffer::create_temp(r.connection->pool, big);
    ChainLink* cl = r.connection->pool.alloc_link();
    cl->buf = b;
    cl->next = hc.busy;
    hc.busy = cl;
  } else {
    return Rc::Declined;
  }
  hc.nbusy++;
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

bool validate_host(std::string_view& host, Pool& pool) {
  size_t dot_pos = host.size();
  size_t host_len = host.size();
  enum { kUsual, kLiteral, kRest } state = kUsual;
  bool upper = false;
  for (size_t i = 0; i < host.size(); i++) {
    auto ch = static_cast<unsigned char>(host[i]);
    switch (ch) {
      case '.':
        if (dot_pos == i - 1) return false;
        dot_pos = i;
        break;
      case ':':
        if (state == kUsual) {
          host_len = i;
          state = kRest;
        }
        break;
      case '[':
        if (i == 0) state = kLiteral;
        break;
      case ']':
        if (state == kLiteral) {
          host_len = i + 1;
          state = kRest;
        }
        break;
      default:
        if (ch == '/' || ch == '\0' || ch <= 0x20 || ch == 0x7f) return false;
        if (ch >= 'A' && ch <= 'Z') upper = true;
        break;
    }
  }
  if (dot_pos == host_len - 1) host_len--;
  if (host_len == 0) return false;
  host = host.substr(0, host_len);
  if (upper) {
    char* p = pool.alloc_bytes(host.size());
    lowercase_into(p, host);
    host = {p, host.size()};
  }
  return true;
}

Rc set_virtual_server(Request& r, std::string_view host) {
  CoreSrvConf* cscf = find_virtual_server(r, host);
  if (cscf == nullptr) return Rc::Ok;  // the default server stays
  r.srv_conf = cscf->ctx->srv_conf;
  r.loc_conf = cscf->ctx->loc_conf;
  r.connection->log.sink = conf_of<CoreLocConf>(cscf->ctx->loc_conf).error_log;
  return Rc::Ok;
}

using HeaderHandler = Rc (*)(Request& r, Header* h, Header** slot);

Rc header_line(Request&, Header* h, Header** slot) {
  if (*slot == nullptr) *slot = h;
  return Rc::Ok;
}

// A header that may appear once came again: 400, logged with both lines ("header line", "host
// header").
Rc reject_duplicate(Request& r, const char* what, const Header& h, const Header& previous) {
  log_error(LogLevel::Info, r.log(), 0,
            "client sent duplicate %s: \"%.*s: %.*s\", previous value: \"%.*s: %.*s\"", what,
            static_cast<int>(h.key.size()), h.key.data(), static_cast<int>(h.value.size()),
            h.value.data(), static_cast<int>(previous.key.size()), previous.key.data(),
            static_cast<int>(previous.value.size()), previous.value.data());
  finalize_request(r, Code::status(400));
  return Rc::Error;
}

Rc unique_header_line(Request& r, Header* h, Header** slot) {
  if (*slot != nullptr) return reject_duplicate(r, "header line", *h, **slot);
  *slot = h;
  return Rc::Ok;
}

Rc host_header(Request& r, Header* h, Header** slot) {
  if (*slot != nullptr) return reject_duplicate(r, "host header", *h, **slot);
  *slot = h;
  std::string_view host = h->value;
  if (!validate_host(host, *r.pool)) {
    log_error(LogLevel::Info, r.log(), 0, "client sent invalid host header");
    finalize_request(r, Code::status(400));
    return Rc::Error;
  }
  if (!r.headers_in.server.empty()) return Rc::Ok;  // the request line's host wins
  if (set_virtual_server(r, host) != Rc::Ok) return Rc::Error;
  r.headers_in.server = host;
  return Rc::Ok;
}

Rc connection_header(Request& r, Header* h, Header** slot) {
  if (*slot == nullptr) *slot = h;
  if (ifind(h->value, "close") != std::string_view::npos) {
    r.headers_in.connection_type = ConnectionType::Close;
  } else if (ifind(h->value, "keep-alive") != std::string_view::npos) {
    r.headers_in.connection_type = ConnectionType::KeepAlive;
  }
  return Rc::Ok;
}

Rc user_agent_header(Request& r, Header* h, Header** slot) {
  if (*slot != nullptr) return Rc::Ok;
  *slot = h;
  std::string_view ua = h->value;
  HeadersIn& in = r.headers_in;
  // Browser quirks that keepalive_disable and msie_* directives act on.
  if (size_t msie = ua.find("MSIE "); msie != std::string_view::npos && msie + 7 < ua.size()) {
    in.msie = true;
    if (ua[msie + 6] == '.') {
      switch (ua[msie + 5]) {
        case '4':
        case '5':
          in.msie6 = true;
          break;
        case '6':
          if (ua.find("SV1", msie + 8) == std::string_view::npos) in.msie6 = true;
          break;
      }
    }
  }
  if (ua.find("Opera") != std::string_view::npos) {
    in.opera = true;
    in.msie = false;
    in.msie6 = false;
  }
  if (!in.msie && !in.opera) {
    if (ua.find("Gecko/") != std::string_view::npos) {
      in.gecko = true;
    } else if (ua.find("Chrome/") != std::string_view::npos) {
      in.chrome = true;
    } else if (ua.find("Safari/") != std::string_view::npos &&
               ua.find("Mac OS X") != std::string_view::npos) {
      in.safari = true;
    } else if (ua.find("Konqueror") != std::string_view::npos) {
      in.konqueror = true;
    }
  }
  return Rc::Ok;
}

struct KnownHeader {
  std::string_view name;  // lower case
  Header* HeadersIn::*slot;
  HeaderHandler handler;
};

constexpr KnownHeader kKnownHeaders[] = {
    {"host", &HeadersIn::host, host_header},
    {"connection", &HeadersIn::connection, connection_header},
    {"if-modified-since", &HeadersIn::if_modified_since, unique_header_line},
    {"if-unmodified-since", &HeadersIn::if_unmodified_since, unique_header_line},
    {"if-match", &HeadersIn::if_match, unique_header_line},
    {"if-none-match", &HeadersIn::if_none_match, unique_header_line},
    {"user-agent", &HeadersIn::user_agent, user_agent_header},
    {"referer", &HeadersIn::referer, header_line},
    {"content-length", &HeadersIn::content_length, unique_header_line},
    {"content-range", &HeadersIn::content_range, unique_header_line},
    {"content-type", &HeadersIn::content_type, header_line},
    {"range", &HeadersIn::range, header_line},
    {"if-range", &HeadersIn::if_range, header_line},
    {"transfer-encoding", &HeadersIn::transfer_encoding, unique_header_line},
    {"te", &HeadersIn::te, header_line},
    {"expect", &HeadersIn::expect, unique_header_line},
    {"upgrade", &HeadersIn::upgrade, header_line},
    {"accept-encoding", &HeadersIn::accept_encoding, header_line},
    {"via", &HeadersIn::via, header_line},
    {"authorization", &HeadersIn::authorization, unique_header_line},
    {"keep-alive", &HeadersIn::keep_alive, header_line},
    {"x-forwarded-for", &HeadersIn::x_forwarded_for, header_line},
    {"cookie", &HeadersIn::cookie, header_line},
};

const KnownHeader* find_known_header(std::string_view lowcase) {
  for (const KnownHeader& k : kKnownHeaders) {
    if (k.name.size() == lowcase.size() && k.name == lowcase) return &k;
  }
  return nullptr;
}

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
  return Rc::Ok;
}

Rc process_request_header(Request& r) {
  HeadersIn& in = r.headers_in;
  if (in.server.empty() && set_virtual_server(r, in.server) != Rc::Ok) return Rc::Error;
  if (in.host == nullptr && r.http_version > 1000) {
    log_error(LogLevel::Info, r.log(), 0, "client sent HTTP/1.1 request without \"Host\" header");
    finalize_request(r, Code::status(400));
    return Rc::Error;
  }
  if (in.content_length != nullptr) {
    auto v = parse_int(in.content_length->value);
    if (!v) {
      log_error(LogLevel::Info, r.log(), 0, "client sent invalid \"Content-Length\" header");
      finalize_request(r, Code::status(400));
      return Rc::Error;
    }
    in.content_length_n = *v;
  }
  if (in.transfer_encoding != nullptr) {
    if (r.http_version < 1001) {
      log_error(LogLevel::Info, r.log(), 0,
                "client sent HTTP/1.0 request with \"Transfer-Encoding\" header");
      finalize_request(r, Code::status(400));
      return Rc::Error;
    }
    std::string_view te = in.transfer_encoding->value;
    if (iequals(te, "chunked")) {
      if (in.content_length != nullptr) {
        log_error(
            LogLevel::Info, r.log(), 0,
            "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time");
        finalize_request(r, Code::status(400));
        return Rc::Error;
      }
      in.chunked = true;
    } else {
      // With chunked last the body could be framed, but in a coding weir does not decode (501, as
      // nginx); without it the body's length cannot be known (400 and close: RFC 9112 6.3).
      size_t comma = te.rfind(',');
      std::string_view last = trim_ows(comma == std::string_view::npos ? te : te.substr(comma + 1));
      bool framed = comma != std::string_view::npos && iequals(last, "chunked");
      log_error(LogLevel::Info, r.log(), 0, "client sent unknown \"Transfer-Encoding\": \"%.*s\"",
                static_cast<int>(te.size()), te.data());
      if (!framed) r.lingering_close = true;
      finalize_request(r, Code::status(framed ? 501 : 400));
      return Rc::Error;
    }
  }
  if (r.method == kConnect) {
    log_error(LogLevel::Info, r.log(), 0, "client sent CONNECT method");
    finalize_request(r, Code::status(405));
    return Rc::Error;
  }
  if (r.method == kTrace) {
    log_error(LogLevel::Info, r.log(), 0, "client sent TRACE method");
    finalize_request(r, Code::status(405));
    return Rc::Error;
  }
  return Rc::Ok;
}

void process_request_headers_impl(Event& ev);
void process_request_line_impl(Event& ev);

// The request-reading handlers run posted requests before returning, like every event handler.
void process_request_headers(Event& ev) {
  process_request_headers_impl(ev);
  run_posted_requests(*static_cast<Connection*>(ev.data));
}

void process_request_line(Event& ev) {
  process_request_line_impl(ev);
  run_posted_requests(*static_cast<Connection*>(ev.data));
}

void process_request(Request& r) {
  Connection& c = *r.connection;
  del_timer(c.read);
  if (c.reclaim != Reclaim::No)
    ConnectionPool::current->set_reclaim(c, Reclaim::No);  // a whole request
  c.read.handler = request_event_handler;
  c.write.handler = request_event_handler;
  r.read_event_handler = block_reading;
  handle_request(r);
  run_posted_requests(c);
}

// client_header_timeout fired while the request line or headers were still arriving, or the
// connection was reclaimed for a new one (ConnectionPool::drain, which has logged why).
bool close_on_header_timeout(Event& ev, Request& r) {
  Connection& c = *r.connection;
  if (!ev.timedout && !c.close) return false;
  if (ev.timedout) log_error(LogLevel::Info, c.log, ETIMEDOUT, "client timed out");
  c.timedout = true;
  close_request(r, 408);
  return true;
}

void process_request_headers_impl(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  Request& r = *http_connection_of(*c)->request;
  if (close_on_header_timeout(ev, r)) return;
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
            log_error(LogLevel::Info, c->log, 0, "client sent too large request");
          } else {
            int len = static_cast<int>(std::min<ptrdiff_t>(r.header_in->end - p, 1748));
            log_error(LogLevel::Info, c->log, 0, "client sent too long header line: \"%.*s...\"",
                      len, p);
          }
          finalize_request(r, Code::status(kHttpRequestHeaderTooLarge));
          return;
        }
      }
      ssize_t n = read_request_header(r);
      if (n < 0) return;
    }
    CoreSrvConf& cscf = core_srv(r);
    HeaderLineState& hl = r.header_line;
    rc = parse_header_line(hl, *r.header_in, *cscf.underscores_in_headers);
    if (rc == ParseResult::Ok) {
      r.request_length += r.header_in->pos - hl.name_start;
      if (hl.invalid && *cscf.ignore_invalid_headers) {
        log_error(LogLevel::Info, c->log, 0, "client sent invalid header line: \"%.*s\"",
                  static_cast<int>(hl.value_end - hl.name_start), hl.name_start);
        continue;
      }
      if (r.headers_in.count++ >= *cscf.max_headers) {
        r.lingering_close = true;
        log_error(LogLevel::Info, c->log, 0, "client sent too many header lines");
        finalize_request(r, Code::status(400));
        return;
      }
      std::string_view key(hl.name_start, hl.name_end - hl.name_start);
      Header* h = r.headers_in.headers.push(
          *r.pool, key, {hl.value_start, static_cast<size_t>(hl.value_end - hl.value_start)});
      h->hash = hl.hash == 0 ? 1 : hl.hash;
      if (static_cast<size_t>(hl.lowcase_index) == key.size()) {
        h->lowcase_key = r.pool->dup({hl.lowcase, key.size()});
      } else {
        char* low = r.pool->alloc_bytes(key.size());
        lowercase_into(low, key);
        h->lowcase_key = {low, key.size()};
      }
      if (const KnownHeader* k = find_known_header(h->lowcase_key)) {
        if (k->handler(r, h, &(r.headers_in.*(k->slot))) != Rc::Ok) return;
      }
      continue;
    }
    if (rc == ParseResult::HeaderDone) {
      r.request_length += r.header_in->pos - hl.name_start;
      if (process_request_header(r) != Rc::Ok) return;
      process_request(r);
      return;
    }
    if (rc == ParseResult::Again) continue;
    // Invalid header line.
    char bad = hl.value_end != nullptr ? *hl.value_end : '?';
    log_error(LogLevel::Info, c->log, 0, "client sent invalid header line: \"%.*s\\x%02X...\"",
              static_cast<int>(hl.value_end - hl.name_start), hl.name_start,
              static_cast<unsigned char>(bad));
    finalize_request(r, Code::status(400));
    return;
  }
}

void process_request_line_impl(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  Request& r = *http_connection_of(*c)->request;
  if (close_on_header_timeout(ev, r)) return;
  ParseResult rc = ParseResult::Again;
  for (;;) {
    if (rc == ParseResult::Again) {
      ssize_t n = read_request_header(r);
      if (n < 0) return;
    }
    rc = parse_request_line(r.line, *r.header_in);
    if (rc == ParseResult::Ok) {
      RequestLineState& l = r.line;
      r.request_line = {l.request_start, static_cast<size_t>(l.request_end - l.request_start)};
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
          log_error(LogLevel::Info, c->log, 0, "client sent invalid host in request line");
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
      c->log.action = "reading client request headers";
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
      log_error(LogLevel::Info, c->log, 0, "%s", kErrors[idx]);
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
        log_error(LogLevel::Info, c->log, 0, "client sent too long URI");
        finalize_request(r, Code::status(414));
        return;
      }
    }
  }
}

Buffer* ensure_buffer(Connection& c, size_t size) {
  if (c.buffer == nullptr) c.buffer = Buffer::create_temp(c.pool, size);
  return c.buffer;
}

// Whether bytes of a next request are waiting in the socket (or already in the buffer).
bool has_pending_request(Connection& c) {
  if (c.buffer != nullptr && c.buffer->pos < c.buffer->last) return true;
  char byte;
  return ::recv(c.fd, &byte, 1, MSG_PEEK) == 1;
}

// Half-closes the connection and reads (and drops) what the client still sends until it closes too:
// for at most `time` ms in all, `timeout` ms between reads. A request crossing our close then meets
// an orderly end of stream, and data still arriving cannot make the kernel reset what was sent.
void start_lingering(Connection& c, uint64_t time, uint64_t timeout) {
  auto* hc = http_connection_of(c);
  hc->lingering_deadline = clock::msec() + time;
  hc->lingering_timeout = timeout;
  c.read.handler = lingering_close_handler;
  c.write.handler = empty_handler;
  if (::shutdown(c.fd, SHUT_WR) < 0) {
    log_error(LogLevel::Info, c.log, errno, "shutdown() failed");
    close_http_connection(c);
    return;
  }
  c.close = false;
  c.idle = false;
  c.read.cancelable = false;
  ConnectionPool::current->set_reclaim(c, Reclaim::Idle);
  add_timer(c.read, timeout);
  if (c.read.ready) lingering_close_handler(c.read);
}

// Reading the first bytes of a request on a new or idle keep-alive connection.
void wait_request_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* hc = http_connection_of(*c);
  if (c->close && c->idle && worker_exiting()) {
    // Graceful shutdown. nginx closes the idle connection outright, and a request that has just
    // arrived (or crosses the close) is answered by a reset. Here a request already received is
    // served, with "Connection: close"; otherwise the connection is half-closed and drained, so a
    // crossing request sees an orderly end of stream, which clients retry.
    c->close = false;
    if (c->read.pending_eof || !has_pending_request(*c)) {
      // One lingering_timeout in all; the first read also catches a request that came after the
      // peek.
      uint64_t timeout = *conf_of<CoreLocConf>(hc->conf_ctx->loc_conf).lingering_timeout;
      c->read.ready = true;
      start_lingering(*c, timeout, timeout);
      return;
    }
  }
  if (ev.timedout || c->close) {
    if (ev.timedout && !c->idle) log_error(LogLevel::Info, c->log, ETIMEDOUT, "client timed out");
    close_http_connection(*c);
    return;
  }
  // A peer that half-closed (EPOLLRDHUP) may still have a pipelined request in the socket: the read
  // below finds it, or the end of the stream.
  size_t size = *default_server(*hc).client_header_buffer_size;
  Buffer* b = ensure_buffer(*c, size);
  if (b->last == b->end) b->pos = b->last = b->start;
  ssize_t n = c->recv(b->last, b->end - b->last);
  if (n == -1) {
    if (!ev.timer_set && !c->idle) add_timer(ev, *default_server(*hc).client_header_timeout);
    // Hold no buffer memory while waiting.
    if (b->pos == b->last) {
      c->pool.reset();
      c->buffer = nullptr;
    }
    return;
  }
  if (n == -2) {
    close_http_connection(*c);
    return;
  }
  if (n == 0) {
    c->log.handler = nullptr;
    if (c->idle) {
      log_error(LogLevel::Info, c->log, 0, "client %.*s closed keepalive connection",
                static_cast<int>(hc->addr_len), hc->addr_buf);
    } else {
      log_error(LogLevel::Info, c->log, 0, "client closed connection while waiting for request");
    }
    close_http_connection(*c);
    return;
  }
  b->last += n;
  c->log.handler = log_error_handler;
  c->log.action = "reading client request line";
  // client_header_timeout bounds the whole header phase: from the accept for a new connection (as
  // in nginx), from this first byte for a keep-alive one (whose timer was keepalive_timeout).
  if (c->idle) del_timer(c->read);
  c->idle = false;
  c->read.cancelable = false;
  // A new connection keeps its place on the waiting list (its age counts from the accept); a
  // keep-alive one leaves the idle list, and joins the waiting one only if its header turns out
  // incomplete.
  if (c->reclaim == Reclaim::Idle) ConnectionPool::current->set_reclaim(*c, Reclaim::No);
  create_request(*c);
  c->read.handler = process_request_line;
  process_request_line(c->read);
}

void lingering_close_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* hc = http_connection_of(*c);
  if (ev.timedout || c->close) {
    close_http_connection(*c);
    return;
  }
  uint64_t now = clock::msec();
  if (now >= hc->lingering_deadline) {
    close_http_connection(*c);
    return;
  }
  char buf[4096];
  do {
    ssize_t n = c->recv(buf, sizeof buf);
    if (n == -1) break;
    if (n <= 0) {
      close_http_connection(*c);
      return;
    }
  } while (c->read.ready);
  uint64_t timer = hc->lingering_deadline - now;
  if (timer > hc->lingering_timeout) timer = hc->lingering_timeout;
  add_timer(c->read, timer);
}

}  // namespace

void init_connection(Connection& c) {
  HttpConnection* hc = alloc_http_connection();
  c.data = hc;
  auto* port = static_cast<HttpPort*>(c.listening->servers);
  const HttpAddr* addr = &port->addrs.front();
  if (port->addrs.size() > 1) {
    // A wildcard socket serving several addresses: which one did the client connect to?
    SockAddr local;
    if (local_address(c.fd, local)) {
      addr = &port->addrs.back();
      for (const HttpAddr& a : port->addrs) {
        if (a.addr == local) {
          addr = &a;
          break;
        }
      }
    }
  }
  hc->addr_conf = addr;
  hc->conf_ctx = addr->servers.default_server->ctx;
  hc->addr_len =
      static_cast<uint8_t>(c.peer.sa.sa_family == AF_UNIX
                               ? (std::memcpy(hc->addr_buf, "unix:", 5), 5)
                               : format_addr_text(&c.peer.sa, hc->addr_buf, sizeof hc->addr_buf));
  c.log.data = &c;
  c.log.handler = log_error_handler;
  c.log.action = "waiting for request";
  c.read.handler = wait_request_handler;
  c.write.handler = empty_handler;
  add_timer(c.read, *default_server(*hc).client_header_timeout);
  ConnectionPool::current->set_reclaim(c, Reclaim::Waiting);
}

Request* create_request(Connection& c) {
  auto* hc = http_connection_of(c);
  c.requests++;
  c.io.sent = 0;
  Pool& pool = hc->request_pool;
  auto* r = pool.make<Request>();
  r->pool = &pool;
  r->http_connection = hc;
  r->connection = &c;
  r->main = r;
  r->main_conf = hc->conf_ctx->main_conf;
  r->srv_conf = hc->conf_ctx->srv_conf;
  r->loc_conf = hc->conf_ctx->loc_conf;
  r->read_event_handler = block_reading;
  r->header_in = hc->busy != nullptr ? hc->busy->buf : c.buffer;
  int n = module_count(ModuleType::Http);
  r->ctx = static_cast<void**>(pool.alloc_zeroed(sizeof(void*) * n));
  size_t nvars = core_main(*r).variables.count();
  r->variables = pool.make_array<VariableValue>(nvars);
  r->start_sec = clock::now();
  r->start_msec = clock::wall_msec();
  hc->request = r;
  return r;
}

void free_request(Request& r) {
  Connection& c = *r.connection;
  auto* hc = r.http_connection;
  run_request_cleanups(r);
  log_request(r);
  c.log.action = "closing request";
  hc->request = nullptr;
  hc->request_pool.reset();
}

void close_http_connection(Connection& c) {
  auto* hc = http_connection_of(c);
  if (hc != nullptr) {
    if (hc->request != nullptr) {
      // A request still attached (errors before it was finalized): log it and free it.
      free_request(*hc->request);
    }
    release_http_connection(hc);
  }
  c.data = nullptr;
  c.destroyed = true;
  close_connection(c);
}

void set_keepalive(Request& r) {
  Connection& c = *r.connection;
  auto* hc = r.http_connection;
  CoreLocConf& clcf = core_loc(r);
  uint64_t keepalive_timeout = *clcf.keepalive_timeout;
  bool nodelay = *clcf.tcp_nodelay;
  Buffer* b = r.header_in;
  bool pipelined = b != nullptr && b->pos < b->last;

  if (pipelined) {
    // The pipelined request stays where it is; every other large buffer becomes spare.
    ChainLink* keep = nullptr;
    for (ChainLink* cl = hc->busy; cl != nullptr;) {
      ChainLink* next = cl->next;
      if (cl->buf == b) {
        keep = cl;
      } else {
        cl->buf->pos = cl->buf->last = cl->buf->start;
        cl->next = hc->free;
        hc->free = cl;
      }
      cl = next;
    }
    if (keep != nullptr) keep->next = nullptr;
    hc->busy = keep;
    hc->nbusy = keep != nullptr ? 1 : 0;
  }

  r.keepalive = false;
  free_request(r);
  c.write.handler = empty_handler;

  if (pipelined) {
    c.log.action = "reading client pipelined request line";
    create_request(c);
    del_timer(c.read);
    c.read.handler = process_request_line;
    post_event(c.read);
    return;
  }

  // An idle connection keeps no buffers: they go back with the connection's pool.
  hc->busy = hc->free = nullptr;
  hc->nbusy = 0;
  c.buffer = nullptr;
  c.pool.reset();

  c.read.handler = wait_request_handler;
  c.log.action = "keepalive";
  if (nodelay) c.set_tcp_nodelay();
  c.idle = true;
  ConnectionPool::current->set_reclaim(c, Reclaim::Idle);
  add_timer(c.read, keepalive_timeout);
  c.read.cancelable = true;
  if (c.read.ready) post_event(c.read);
}

void set_lingering_close(Request& r) {
  Connection& c = *r.connection;
  CoreLocConf& clcf = core_loc(r);
  uint64_t time = *clcf.lingering_time, timeout = *clcf.lingering_timeout;
  free_request(r);
  start_lingering(c, time, timeout);
}

}  // namespace weir::http
