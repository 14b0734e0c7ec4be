// What the gzip filter and gzip_static share: whether this request may get a gzipped response
// (Accept-Encoding with a non-zero q, gzip_http_version, gzip_proxied for requests through a proxy,
// gzip_disable), tested once per request. nginx: ngx_http_gzip_ok (ngx_http_core_module.c)
#pragma once

#include "http/request.h"

namespace weir::http {

bool gzip_ok(Request& r);

}  // namespace weir::http
