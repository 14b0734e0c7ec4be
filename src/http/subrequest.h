// Subrequests: a request made by another one on the same connection, for another URI, that runs its
// own phases and filters. An ordinary subrequest's output takes its place in the parent's: the
// parent's postponed list keeps the order, the postpone filter sends each part when its turn comes,
// and the connection's events go to the subrequest whose turn it is (HttpConnection::active). An
// in-memory one keeps its output for the parent (auth_request, SSI's set); a background one
// (mirror) is not waited for and its output is dropped, but the connection is held, and the main
// request logged, only once it has ended. nginx: src/http/ngx_http_core_module.c
// (ngx_http_subrequest), src/http/ngx_http_postpone_filter_module.c, src/http/ngx_http_request.c
#pragma once

#include <string_view>

#include "http/request.h"

namespace weir::http {

struct SubrequestFlags {
  bool in_memory = false;   // keep the output in sr->out (up to subrequest_output_buffer_size)
  bool waited = false;      // the parent checks sr->done when it resumes
  bool background = false;  // nobody waits; the output is dropped
  // The parent's own request again (slice's next piece, a cache's background update): its method,
  // location and content handler, straight to the content phase with no new location lookup.
  bool clone = false;
};

// Creates a GET (or, cloned, r's method) subrequest of r for uri?args, sharing r's headers, body
// and variables, and posts it to run once the current handlers return. Returns nullptr (logged) on
// a subrequest cycle or when the request's reference count would overflow, as nginx enforces. post:
// called when the subrequest's handler is done (PostSubrequest).
Request* create_subrequest(Request& r, std::string_view uri, std::string_view args,
                           SubrequestFlags flags, PostSubrequest* post = nullptr);

}  // namespace weir::http
