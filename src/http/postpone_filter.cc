// The postpone filter (seed 004's place between ssi and gzip): it keeps subrequests' output in
// order. Output of a request that is not the active one waits in its postponed list; when the
// active request has waiting entries, they go out in order - data is passed on, and a subrequest
// entry becomes the active request and is run. An in-memory subrequest's output is collected in
// its out buffer for the parent; a background subrequest's output is dropped (marked sent), so the
// filters above reuse their buffers and it never touches the client's socket.
// nginx: src/http/ngx_http_postpone_filter_module.c
#include <cstring>

#include "http/core_module.h"
#include "http/filter.h"
#include "http/http_connection.h"

namespace weir::http {

namespace {

void mark_sent(ChainLink* in) {
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    b.pos = b.last;
    if (b.in_file) b.file_pos = b.file_last;
  }
}

// Appends a copy of in's links to r's postponed list as an output entry (the buffers stay shared).
Rc postpone(Request& r, ChainLink* in) {
  auto* pr = r.pool->make<PostponedRequest>();
  ChainLink** ll = &pr->out;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    ChainLink* copy = r.pool->alloc_link();
    copy->buf = cl->buf;
    copy->next = nullptr;
    *ll = copy;
    ll = &copy->next;
  }
  PostponedRequest** tail = &r.postponed;
  while (*tail != nullptr) tail = &(*tail)->next;
  *tail = pr;
  return Rc::Ok;
}

// An in-memory subrequest: its output is gathered in one buffer of subrequest_output_buffer_size.
Rc keep_in_memory(Request& r, ChainLink* in) {
  size_t limit = *core_loc(r).subrequest_output_buffer_size;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    if (b.in_file && !b.in_memory()) {
      log_error(LogLevel::Error, r.log(), 0, "file output in an in-memory subrequest");
      return Rc::Error;
    }
    if (r.out == nullptr) {
      r.out = r.pool->alloc_link();
      r.out->buf = Buffer::create_temp(*r.pool, limit);
      r.out->next = nullptr;
    }
    Buffer& dst = *r.out->buf;
    size_t n = static_cast<size_t>(b.last - b.pos);
    if (n > static_cast<size_t>(dst.end - dst.last)) {
      log_error(LogLevel::Error, r.log(), 0, "too big subrequest response while sending to client");
      return Rc::Error;
    }
    if (n != 0) std::memcpy(dst.last, b.pos, n);
    dst.last += n;
    b.pos = b.last;
  }
  return Rc::Ok;
}

Rc postpone_filter(Request& r, ChainLink* in, BodyNext next) {
  // The common case first: a main request that has no subrequest waiting and whose turn it is.
  if (r.postponed == nullptr && r.is_main() && r.http_connection->active == &r) return next(r, in);
  if (r.background) {
    mark_sent(in);
    return Rc::Ok;
  }
  HttpConnection& hc = *r.http_connection;
  if (hc.active != &r) {
    // Not this request's turn: its output waits (an in-memory one keeps it for its parent).
    if (in == nullptr) return Rc::Ok;
    return r.subrequest_in_memory ? keep_in_memory(r, in) : postpone(r, in);
  }
  if (r.subrequest_in_memory) return keep_in_memory(r, in);
  if (r.postponed == nullptr) {
    if (in != nullptr || r.connection->buffered != 0) return next(*r.main, in);
    return Rc::Ok;
  }
  if (in != nullptr) postpone(r, in);
  do {
    PostponedRequest* pr = r.postponed;
    if (pr->request != nullptr) {
      // A subrequest's turn: it becomes active and runs; r goes on when it has finished.
      r.postponed = pr->next;
      hc.active = pr->request;
      post_request(*pr->request);
      return Rc::Ok;
    }
    if (pr->out == nullptr) {
      log_error(LogLevel::Alert, r.log(), 0, "http postpone filter NULL output");
    } else if (next(*r.main, pr->out) == Rc::Error) {
      return Rc::Error;
    }
    r.postponed = pr->next;
  } while (r.postponed != nullptr);
  return Rc::Ok;
}

Status init(ConfContext& cf) {
  register_body_filter(cf, FilterId::Postpone, postpone_filter);
  return {};
}

}  // namespace

Module http_postpone_filter_module{
    .name = "http_postpone_filter",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
