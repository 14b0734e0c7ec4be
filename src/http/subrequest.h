// Subrequests: a request made by another one on the same connection, for another URI, that runs its
// own phases and filters (nginx: ngx_http_subrequest). What exists today are background subrequests
// (the mirror module's): the main request does not wait for them and their output goes nowhere (the
// postpone filter drops it), but the connection is held, and the main request logged, only once
// they have ended. nginx: src/http/ngx_http_core_module.c (ngx_http_subrequest),
// src/http/ngx_http_request.c
#pragma once

#include <string_view>

#include "http/request.h"

namespace weir::http {

// Creates a GET background subrequest of r for uri?args, sharing r's headers, body and variables,
// and posts it to run once the current handlers return. Returns nullptr (logged) on a subrequest
// cycle or overflow.
Request* create_background_subrequest(Request& r, std::string_view uri, std::string_view args);

}  // namespace weir::http
