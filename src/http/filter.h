// The output filter chains (seed 004). A header filter is `Rc (Request&, HeaderNext)` and a body
// filter `Rc (Request&, ChainLink*, BodyNext)`; `next` is a handle into the chain, not a global, so
// a unit test can put a fake sink behind any filter. Modules register their filters at
// postconfiguration under a FilterId; the chain is built in the order filter_order.h declares.
// nginx: ngx_http_top_header_filter / ngx_http_top_body_filter, ngx_http_send_header,
// ngx_http_output_filter
#pragma once

#include <vector>

#include "core/buffer.h"
#include "core/status.h"
#include "http/code.h"
#include "http/filter_order.h"

namespace weir {
struct ConfContext;
}

namespace weir::http {

struct Request;
struct HeaderNext;
struct BodyNext;

using HeaderFilterFn = Code (*)(Request& r, HeaderNext next);
using BodyFilterFn = Rc (*)(Request& r, ChainLink* in, BodyNext next);

struct HeaderNext {
  const HeaderFilterFn* fn;  // the next filter; the chain ends with the header serialiser
  Code operator()(Request& r) const { return (*fn)(r, HeaderNext{fn + 1}); }
};

struct BodyNext {
  const BodyFilterFn* fn;  // the next filter; the chain ends with the write filter
  Rc operator()(Request& r, ChainLink* in) const { return (*fn)(r, in, BodyNext{fn + 1}); }
};

// The built chains of one configuration.
struct FilterChains {
  std::vector<HeaderFilterFn> header;
  std::vector<BodyFilterFn> body;
  std::vector<FilterId> header_ids;
  std::vector<FilterId> body_ids;

  HeaderNext header_top() const { return HeaderNext{header.data()}; }
  BodyNext body_top() const { return BodyNext{body.data()}; }
};

// Registration at postconfiguration.
void register_header_filter(ConfContext& cf, FilterId id, HeaderFilterFn fn);
void register_body_filter(ConfContext& cf, FilterId id, BodyFilterFn fn);
// Orders the registered filters by filter_order.h.
Status build_filter_chains(ConfContext& cf);

// The last body filter, also called directly by the header serialiser (nginx:
// ngx_http_write_filter).
// The response's limit_rate: limit_rate's value (with variables), unless X-Accel-Limit-Rate or
// $limit_rate set it first; fixed from its first use on.
off_t response_limit_rate(Request& r);
Rc write_filter(Request& r, ChainLink* in);

// Runs the header filters (once per request). A header filter that turns the response into an error
// (range's 416) answers with that status, and so does send_header.
Code send_header(Request& r);
// Runs the body filters.
Rc output_filter(Request& r, ChainLink* in);

}  // namespace weir::http
