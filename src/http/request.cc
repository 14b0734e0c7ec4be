#include "http/request.h"

#include <cstring>

#include "conf/cycle.h"
#include "core/escape.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/http_connection.h"
#include "http/request_body.h"
#include "http/special_response.h"
#include "http/variables.h"

namespace weir::http {

void handle_request(Request& r) {
  r.connection->log->action = nullptr;
  if (!r.internal) {
    switch (r.headers_in.connection_type) {
      case ConnectionType::None:
        r.keepalive = r.http_version > 1000;
        break;
      case ConnectionType::Close:
        r.keepalive = false;
        break;
      case ConnectionType::KeepAlive:
        r.keepalive = true;
        break;
    }
    r.lingering_close = r.headers_in.content_length_n > 0 || r.headers_in.chunked;
    r.phase_handler = 0;
  } else {
    r.phase_handler = core_main(r).phase_engine.server_rewrite_index;
  }
  r.valid_location = true;
  r.write_event_handler = core_run_phases;
  run_phases(r);
}

bool is_active(const Request& r) {
  return r.http_connection->active == &r;
}

void request_event_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* hc = http_connection_of(*c);
  Request* r = hc->active;  // the main request, or the subrequest whose turn it is
  if (c->close) {
    r->main->count++;
    terminate_request(*r, Rc::Ok);
    run_posted_requests(*c);
    return;
  }
  if (ev.delayed && ev.timedout) {
    ev.delayed = false;
    ev.timedout = false;
  }
  if (ev.write) {
    r->write_event_handler(*r);
  } else {
    r->read_event_handler(*r);
  }
  run_posted_requests(*c);
}

RequestCleanup* add_request_cleanup(Request& r, void (*fn)(void* data), void* data) {
  auto* cln = r.pool->make<RequestCleanup>();
  if (cln == nullptr) return nullptr;
  cln->handler = fn;
  cln->data = data;
  cln->next = r.main->cleanup;
  r.main->cleanup = cln;
  return cln;
}

void run_request_cleanups(Request& r) {
  Request& mr = *r.main;
  // Taken off first: a handler that ends another part of the request must not run the list again.
  RequestCleanup* cln = mr.cleanup;
  mr.cleanup = nullptr;
  for (; cln != nullptr; cln = cln->next) {
    if (cln->handler != nullptr) cln->handler(cln->data);
  }
}

void post_request(Request& r) {
  auto* pr = r.pool->make<PostedRequest>();
  pr->request = &r;
  pr->next = nullptr;
  PostedRequest** p = &r.main->posted_requests;
  while (*p != nullptr) p = &(*p)->next;
  *p = pr;
}

void run_posted_requests(Connection& c) {
  for (;;) {
    if (c.destroyed || c.fd == -1) return;
    auto* hc = http_connection_of(c);
    if (hc == nullptr || hc->request == nullptr) return;
    Request* mr = hc->request->main;
    PostedRequest* pr = mr->posted_requests;
    if (pr == nullptr) return;
    mr->posted_requests = pr->next;
    pr->request->write_event_handler(*pr->request);
  }
}

void block_reading(Request&) {
  // Edge-triggered epoll: nothing to switch off; the data waits in the socket.
}

void request_empty_handler(Request&) {}

void test_reading(Request& r) {
  Connection& c = *r.connection;
  Event& rev = c.read;
  int err = 0;
  if (rev.pending_eof) {
    rev.eof = true;
    c.error = true;
  } else {
    int n = c.peek();
    if (n > 0) return;  // pipelined data: leave it for the next request
    if (n < 0) {
      err = errno;
      if (err == EAGAIN || err == EINTR) {
        rev.ready = false;
        return;
      }
      rev.error = true;
    }
    rev.eof = true;
    c.error = true;
  }
  log_error(LogLevel::Info, *c.log, err, "client prematurely closed connection");
  finalize_request(r, Code::status(kHttpClientClosedRequest));
}

namespace {

void writer(Request& r) {
  Connection& c = *r.connection;
  Event& wev = c.write;
  CoreLocConf& clcf = core_loc(r);
  if (wev.timedout) {
    log_error(LogLevel::Info, *c.log, ETIMEDOUT, "client timed out");
    c.timedout = true;
    finalize_request(r, Code::status(408));
    return;
  }
  if (wev.delayed) {
    if (!wev.timer_set) add_timer(wev, *clcf.send_timeout);
    return;
  }
  Rc rc = output_filter(r, nullptr);
  if (rc == Rc::Error) {
    // The client is gone (or a filter failed): whatever is still buffered will never leave.
    finalize_request(r, rc);
    return;
  }
  if (r.buffered != 0 || r.postponed != nullptr || (r.is_main() && c.buffered != 0)) {
    if (!wev.delayed) add_timer(wev, *clcf.send_timeout);
    return;
  }
  r.write_event_handler = request_empty_handler;
  finalize_request(r, rc);
}

}  // namespace

Code set_write_handler(Request& r) {
  r.read_event_handler = r.discard_body ? discarded_request_body_handler : test_reading;
  r.write_event_handler = writer;
  Event& wev = r.connection->write;
  if (wev.ready && wev.delayed) return Rc::Ok;
  if (!wev.delayed) add_timer(wev, *core_loc(r).send_timeout);
  return Rc::Ok;
}

namespace {

// A subrequest that ended out of turn: finished when its turn comes (nginx's request finalizer).
void request_finalizer(Request& r) {
  finalize_request(r, Rc::Ok);
}

void log_subrequest(Request& r) {
  if (r.logged) {
    log_error(LogLevel::Alert, r.log(), 0, "subrequest: \"%.*s?%.*s\" logged again",
              static_cast<int>(r.uri.size()), r.uri.data(), static_cast<int>(r.args.size()),
              r.args.data());
  } else if (*core_loc(r).log_subrequest) {
    log_request(r);
  }
  r.logged = true;
}

// A subrequest's handler is done. A background one ends at once. Another one still holding output
// waits for it; otherwise, if it is the active request, it ends, leaves its parent's postponed list
// and hands the turn back to the parent, which is run; if it is not, it ends when its turn comes.
void finalize_subrequest(Request& r) {
  if (r.background) {
    log_subrequest(r);
    r.done = true;
    finalize_connection(r);
    return;
  }
  if (r.buffered != 0 || r.postponed != nullptr) {
    (void)set_write_handler(r);
    return;
  }
  Request& parent = *r.parent;
  if (is_active(r)) {
    log_subrequest(r);
    r.done = true;
    r.main->count--;
    if (parent.postponed != nullptr && parent.postponed->request == &r) {
      parent.postponed = parent.postponed->next;
    }
    r.http_connection->active = &parent;
  } else {
    r.write_event_handler = request_finalizer;
    if (r.waited) r.done = true;
  }
  post_request(parent);
}

}  // namespace

namespace {

// post_action: once the response has gone (or failed), the request runs on in the location named,
// as an internal redirect or to a named location, with nothing more sent to the client - its
// response head is not made and its body is not read (nginx's HTTP/0.9 header-only request). Its
// location's own post_action runs again, until the redirect limit stops it, as in nginx. nginx:
// ngx_http_post_action
bool post_action(Request& r) {
  const std::string& to = *core_loc(r).post_action;
  if (to.empty()) return false;
  if (r.post_action && r.uri_changes == 0) return false;
  WEIR_DEBUG(r.log(), "post action: \"%s\"", to.c_str());
  r.main->count--;
  r.http_version = 9;
  r.header_only = true;
  r.post_action = true;
  r.read_event_handler = block_reading;
  if (to[0] == '/') {
    (void)internal_redirect(r, to, {});
  } else {
    (void)named_location(r, to);
  }
  return true;
}

}  // namespace

void finalize_request(Request& r, Code rc) {
  Connection& c = *r.connection;
  WEIR_DEBUG(*c.log, "http finalize request: %d, \"%.*s?%.*s\" a:%d, c:%d", rc.number(),
             static_cast<int>(r.uri.size()), r.uri.data(), static_cast<int>(r.args.size()),
             r.args.data(), is_active(r) ? 1 : 0, r.main->count);
  if (rc == Rc::Done) {
    finalize_connection(r);
    return;
  }
  if (!r.is_main() && r.post_subrequest != nullptr) {
    rc = r.post_subrequest->handler(r, r.post_subrequest->data, rc);
  }
  if (rc == Rc::Ok && r.filter_finalize) c.error = true;
  if (rc == Rc::Declined) {
    r.content_handler = nullptr;
    r.write_event_handler = core_run_phases;
    run_phases(r);
    return;
  }
  if (rc == Rc::Error || (rc.is_status() && (rc.http_status() == 408 || rc.http_status() == 499)) ||
      c.error) {
    if (post_action(r)) return;
    terminate_request(r, rc);
    return;
  }
  if (rc.is_status() && (rc.http_status() >= kHttpSpecialResponse || rc.http_status() == 201 ||
                         rc.http_status() == 204)) {
    if (rc.http_status() == kHttpClose) {
      c.timedout = true;
      terminate_request(r, rc);
      return;
    }
    if (r.is_main()) {
      del_timer(c.read);
      del_timer(c.write);
    }
    c.read.handler = request_event_handler;
    c.write.handler = request_event_handler;
    finalize_request(r, special_response_handler(r, rc.http_status()));
    return;
  }
  if (!r.is_main()) {
    finalize_subrequest(r);
    return;
  }
  if (r.buffered != 0 || c.buffered != 0 || r.postponed != nullptr) {
    (void)set_write_handler(r);
    return;
  }
  if (!is_active(r)) {
    log_error(LogLevel::Alert, *c.log, 0, "http finalize non-active request: \"%.*s?%.*s\"",
              static_cast<int>(r.uri.size()), r.uri.data(), static_cast<int>(r.args.size()),
              r.args.data());
    return;
  }
  r.done = true;
  r.read_event_handler = block_reading;
  r.write_event_handler = request_empty_handler;
  if (!r.post_action) r.request_complete = true;
  if (post_action(r)) return;
  del_timer(c.read);
  if (c.write.timer_set) {
    c.write.delayed = false;
    del_timer(c.write);
  }
  finalize_connection(r);
}

namespace {

void terminate_handler(Request& r) {
  r.count = 1;
  close_request(r, 0);
}

}  // namespace

void terminate_request(Request& r, Code rc) {
  Request& mr = *r.main;
  if (rc.is_status() && (mr.headers_out.status == 0 || mr.connection->io.sent == 0)) {
    mr.headers_out.status = rc.http_status();
  }
  // Outside state ends now, before the close is posted: an upstream connection must not deliver
  // events to a request that is going away.
  run_request_cleanups(mr);
  if (mr.terminated) return;  // already on its way out
  mr.terminated = true;
  mr.posted_requests = nullptr;
  mr.write_event_handler = terminate_handler;
  post_request(mr);
}

void finalize_connection(Request& r) {
  CoreLocConf& clcf = core_loc(r);
  if (r.main->count != 1) {
    if (r.discard_body) {
      r.read_event_handler = discarded_request_body_handler;
      add_timer(r.connection->read, *clcf.lingering_timeout);
      set_lingering_deadline(r);
    }
    close_request(r, 0);
    return;
  }
  Request& mr = *r.main;
  Connection& c = *mr.connection;
  if (c.read.eof || mr.http_connection->stream != nullptr) {
    close_request(mr, 0);  // an HTTP/2 stream ends with its request
    return;
  }
  if (mr.reading_body) {
    mr.keepalive = false;
    mr.lingering_close = true;
  }
  if (mr.keepalive && *clcf.keepalive_timeout > 0 && !worker_exiting()) {
    set_keepalive(mr);
    return;
  }
  if (*clcf.lingering_close == LingeringClose::Always ||
      (*clcf.lingering_close == LingeringClose::On &&
       (mr.lingering_close || (c.buffer != nullptr && c.buffer->pos < c.buffer->last) ||
        c.read.ready))) {
    set_lingering_close(mr);
    return;
  }
  close_request(mr, 0);
}

void close_request(Request& r, int status) {
  Request& mr = *r.main;
  Connection& c = *mr.connection;
  if (mr.count == 0) {
    log_error(LogLevel::Alert, *c.log, 0, "http request count is zero");
  }
  WEIR_DEBUG(*c.log, "http request count:%d", mr.count);
  mr.count--;
  if (mr.count > 0) return;
  if (status > 0 && (mr.headers_out.status == 0 || c.io.sent == 0)) mr.headers_out.status = status;
  free_request(mr);
  close_http_connection(c);
}

void log_request(Request& r) {
  if (r.logged) return;
  r.logged = true;
  WEIR_DEBUG(r.log(), "http log handler");
  for (PhaseHandlerFn h : core_main(r).phases[static_cast<int>(Phase::Log)]) h(r);
}

namespace {

// An internal redirect starts the request afresh in its new location: the modules' contexts go,
// but for those that must outlive it.
void clear_module_ctxs(Request& r) {
  for (const Module* m : all_modules()) {
    if (m->type == ModuleType::Http && !m->ctx_survives_redirect) r.ctx[m->ctx_index] = nullptr;
  }
}

}  // namespace

Code internal_redirect(Request& r, std::string_view uri, std::string_view args) {
  if (--r.uri_changes == 0) {
    log_error(LogLevel::Error, r.log(), 0,
              "rewrite or internal redirection cycle while internally redirecting to \"%.*s\"",
              static_cast<int>(uri.size()), uri.data());
    r.main->count++;
    finalize_request(r, Code::status(500));
    return Rc::Done;
  }
  WEIR_DEBUG(r.log(), "internal redirect: \"%.*s?%.*s\"", static_cast<int>(uri.size()), uri.data(),
             static_cast<int>(args.size()), args.data());
  r.uri = uri;
  r.args = args;
  r.exten = uri_exten(uri);
  clear_module_ctxs(r);
  r.loc_conf = core_srv(r).ctx->loc_conf;
  update_location_config(r);
  r.internal = true;
  r.valid_unparsed_uri = false;
  r.main->count++;
  handle_request(r);
  return Rc::Done;
}

Code named_location(Request& r, std::string_view name) {
  r.main->count++;
  if (--r.uri_changes == 0) {
    log_error(LogLevel::Error, r.log(), 0,
              "rewrite or internal redirection cycle while redirect to named location \"%.*s\"",
              static_cast<int>(name.size()), name.data());
    finalize_request(r, Code::status(500));
    return Rc::Done;
  }
  if (r.uri.empty()) {
    log_error(LogLevel::Error, r.log(), 0, "empty URI in redirect to named location \"%.*s\"",
              static_cast<int>(name.size()), name.data());
    finalize_request(r, Code::status(500));
    return Rc::Done;
  }
  for (CoreLocConf* clcf : core_srv(r).named_locations) {
    if (clcf->name != name) continue;
    r.loc_conf = clcf->loc_conf;
    clear_module_ctxs(r);
    update_location_config(r);
    r.phase_handler = core_main(r).phase_engine.location_rewrite_index;
    r.write_event_handler = core_run_phases;
    run_phases(r);
    return Rc::Done;
  }
  log_error(LogLevel::Error, r.log(), 0, "could not find named location \"%.*s\"",
            static_cast<int>(name.size()), name.data());
  finalize_request(r, Code::status(500));
  return Rc::Done;
}

std::string_view location_root(Request& r) {
  CoreLocConf& clcf = core_loc(r);
  if (clcf.root_values == nullptr) return clcf.root;
  std::string_view v = clcf.root_values->eval(r);
  if (!v.empty() && v[0] == '/') return v;
  const std::string& prefix = core_main(r).prefix;
  char* p = r.pool->alloc_bytes(prefix.size() + v.size());
  put(put(p, prefix), v);
  return {p, prefix.size() + v.size()};
}

std::string_view map_uri_to_path(Request& r, size_t* root_len, size_t reserved) {
  CoreLocConf& clcf = core_loc(r);
  size_t alias = clcf.alias ? clcf.alias_prefix_len : 0;
  if (alias != 0 && !r.valid_location) {
    log_error(LogLevel::Error, r.log(), 0,
              "\"alias\" cannot be used in location \"%s\" where URI was rewritten",
              clcf.name.c_str());
    return {};
  }
  std::string_view root = location_root(r);
  std::string_view tail;
  if (!(clcf.alias && clcf.regex != nullptr)) {
    tail = alias < r.uri.size() ? r.uri.substr(alias) : std::string_view();
  } else if (r.add_uri_to_alias) {
    tail = r.uri;  // what try_files found, after the alias
  }
  char* p = r.pool->alloc_bytes(root.size() + tail.size() + reserved + 1);
  char* e = put(put(p, root), tail);
  *e = '\0';
  *root_len = root.size();
  return {p, static_cast<size_t>(e - p)};
}

bool content_type_in(const Request& r, const std::vector<std::string>& types) {
  const HeadersOut& out = r.headers_out;
  std::string_view ct = out.content_type.substr(0, out.content_type_len);
  for (const std::string& t : types) {
    if (t == "*" || iequals(ct, t)) return true;
  }
  return false;
}

void clear_content_length(Request& r) {
  r.headers_out.content_length_n = -1;
  if (r.headers_out.content_length != nullptr) {
    r.headers_out.content_length->hash = 0;
    r.headers_out.content_length = nullptr;
  }
}

void clear_accept_ranges(Request& r) {
  r.allow_ranges = false;
  if (r.headers_out.accept_ranges != nullptr) {
    r.headers_out.accept_ranges->hash = 0;
    r.headers_out.accept_ranges = nullptr;
  }
}

void clear_last_modified(Request& r) {
  r.headers_out.last_modified_time = -1;
  r.headers_out.last_modified_text = {};
  if (r.headers_out.last_modified != nullptr) {
    r.headers_out.last_modified->hash = 0;
    r.headers_out.last_modified = nullptr;
  }
}

void clear_etag(Request& r) {
  if (r.headers_out.etag != nullptr) {
    r.headers_out.etag->hash = 0;
    r.headers_out.etag = nullptr;
  }
}

void clear_location(Request& r) {
  if (r.headers_out.location != nullptr) {
    r.headers_out.location->hash = 0;
    r.headers_out.location = nullptr;
  }
}

Rc set_content_type(Request& r) {
  if (!r.headers_out.content_type.empty()) return Rc::Ok;
  CoreLocConf& clcf = core_loc(r);
  if (!r.exten.empty()) {
    if (const std::string* type = clcf.types->find_caseless(r.exten)) {
      r.headers_out.content_type = *type;
      r.headers_out.content_type_len = type->size();
      return Rc::Ok;
    }
  }
  r.headers_out.content_type = *clcf.default_type;
  r.headers_out.content_type_len = clcf.default_type->size();
  return Rc::Ok;
}

Rc set_etag(Request& r) {
  if (!*core_loc(r).etag) return Rc::Ok;
  char* p = r.pool->alloc_bytes(2 + 16 + 1 + 16);
  char* e = p;
  *e++ = '"';
  e = put_hex(e, static_cast<uint64_t>(r.headers_out.last_modified_time));
  *e++ = '-';
  e = put_hex(e, static_cast<uint64_t>(r.headers_out.content_length_n));
  *e++ = '"';
  r.headers_out.etag = add_header_out(r, "ETag", {p, static_cast<size_t>(e - p)});
  return Rc::Ok;
}

void weak_etag(Request& r) {
  Header* etag = r.headers_out.etag;
  if (etag == nullptr) return;
  std::string_view v = etag->value;
  if (v.size() > 2 && v[0] == 'W' && v[1] == '/') return;
  if (v.empty() || v[0] != '"') {
    clear_etag(r);
    return;
  }
  char* p = r.pool->alloc_bytes(v.size() + 2);
  p[0] = 'W';
  p[1] = '/';
  std::memcpy(p + 2, v.data(), v.size());
  etag->value = {p, v.size() + 2};
}

void body_changed_validators(Request& r, bool keep_last_modified) {
  if (keep_last_modified) {
    weak_etag(r);
    return;
  }
  clear_last_modified(r);
  clear_etag(r);
}

Rc send_special(Request& r, bool last, bool flush) {
  bool last_buf = last && r.is_main() && !r.post_action;
  Buffer* b = Buffer::create_special(*r.pool, last_buf, flush);
  // A subrequest's (or a post action's) end carries no data and no last_buf: sync keeps it
  // special, as nginx's.
  if (last && !last_buf) b->last_in_chain = b->sync = true;
  if (!b->last_buf && !b->flush) b->sync = true;
  ChainLink cl{b, nullptr};
  return output_filter(r, &cl);
}

Code send_response(Request& r, int status, std::string_view text, std::string_view type) {
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  if (status >= 301 && status <= 308 && status != 304) {
    clear_location(r);
    r.headers_out.location = add_header_out(r, "Location", text);
    return Code::status(status);
  }
  r.headers_out.status = status;
  if (!type.empty()) {
    r.headers_out.content_type = type;
    r.headers_out.content_type_len = type.size();
  } else if (set_content_type(r) != Rc::Ok) {
    return Code::status(500);
  }
  clear_content_length(r);
  auto* b = r.pool->make<Buffer>();
  b->pos = b->start = const_cast<char*>(text.data());
  b->last = b->end = b->pos + text.size();
  b->memory = !text.empty();
  b->last_buf = r.is_main();
  b->last_in_chain = true;
  b->sync = !(b->last_buf || b->memory);
  r.headers_out.content_length_n = static_cast<off_t>(text.size());
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;
  ChainLink out{b, nullptr};
  return output_filter(r, &out);
}

std::string_view request_line_so_far(Request& r) {
  if (r.request_line.empty() && r.line.request_start != nullptr && r.header_in != nullptr) {
    char* s = r.line.request_start;
    char* p = s;
    while (p < r.header_in->last && *p != '\r' && *p != '\n') p++;
    r.request_line = {s, static_cast<size_t>(p - s)};
  }
  return r.request_line;
}

char* log_error_handler(const Log& log, char* p, char* end) {
  auto append = [&](std::string_view s) {
    size_t n = std::min<size_t>(s.size(), end - p);
    std::memcpy(p, s.data(), n);
    p += n;
  };
  if (log.action != nullptr) {
    append(" while ");
    append(log.action);
  }
  auto* c = static_cast<Connection*>(log.data);
  if (c == nullptr) return p;
  auto* hc = http_connection_of(*c);
  append(", client: ");
  append(hc != nullptr ? hc->addr_text(*c) : std::string_view("-"));
  Request* r = hc != nullptr ? hc->request : nullptr;
  if (r == nullptr) {
    append(", server: ");
    append(c->listening != nullptr ? std::string_view(c->listening->addr_text) : "");
    return p;
  }
  append(", server: ");
  append(r->srv_conf != nullptr ? std::string_view(core_srv(*r).server_name) : "");
  if (std::string_view line = request_line_so_far(*r); !line.empty()) {
    append(", request: \"");
    append(line);
    append("\"");
  }
  // As nginx: the subrequest in turn, and the upstream the current request talks to.
  Request* sr = hc->active != nullptr ? hc->active : r;
  if (sr != r) {
    append(", subrequest: \"");
    append(sr->uri);
    append("\"");
  }
  if (sr->log_upstream != nullptr) p = sr->log_upstream(*sr, p, end);
  if (r->headers_in.host != nullptr) {
    append(", host: \"");
    append(r->headers_in.host->value);
    append("\"");
  }
  if (r->headers_in.referer != nullptr) {
    append(", referrer: \"");
    append(r->headers_in.referer->value);
    append("\"");
  }
  return p;
}

// A URI a response or a document names (X-Accel-Redirect, SSI's include), as nginx takes it: %XX
// decoded, "?" starting the arguments; a target that is not an absolute path, holds a NUL or climbs
// with ".." is refused. nginx: ngx_http_parse_unsafe_uri
bool parse_unsafe_uri(Request& r, std::string_view target, std::string_view& uri,
                      std::string_view& args) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  args = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  if (path.empty() || path[0] != '/') return false;
  char* p = r.pool->alloc_bytes(path.size());
  path = {p, unescape_uri(p, path, Unescape::Uri)};
  for (size_t i = 0; i < path.size(); i++) {
    if (path[i] == '\0') return false;
    if (path[i] == '/' && path.substr(i + 1, 2) == ".." &&
        (i + 3 == path.size() || path[i + 3] == '/')) {
      return false;
    }
  }
  uri = path;
  return true;
}

}  // namespace weir::http
