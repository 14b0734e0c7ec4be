// Conditional requests: If-Modified-Since / If-None-Match turn a 200 into 304, If-Unmodified-Since
// / If-Match into 412, compared against the response's Last-Modified and ETag. nginx:
// src/http/modules/ngx_http_not_modified_filter_module.c
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/special_response.h"

namespace weir::http {

namespace {

bool test_if_unmodified(Request& r) {
  if (r.headers_out.last_modified_time == -1) return false;
  auto t = clock::parse_http_time(r.headers_in.if_unmodified_since->value);
  return t && *t >= r.headers_out.last_modified_time;
}

bool test_if_modified(Request& r) {
  if (r.headers_out.last_modified_time == -1) return true;
  IfModifiedSince mode = *core_loc(r).if_modified_since;
  if (mode == IfModifiedSince::Off) return true;
  auto ims = clock::parse_http_time(r.headers_in.if_modified_since->value);
  if (!ims) return true;
  if (*ims == r.headers_out.last_modified_time) return false;
  return mode == IfModifiedSince::Exact || *ims < r.headers_out.last_modified_time;
}

bool test_if_match(Request& r, Header* h, bool weak) {
  if (r.headers_out.etag == nullptr) return false;
  std::string_view v = h->value;
  if (v == "*") return true;
  std::string_view etag = r.headers_out.etag->value;
  size_t i = 0;
  while (i < v.size()) {
    if (weak && v.size() - i > 2 && v[i] == 'W' && v[i + 1] == '/') i += 2;
    if (etag.size() > v.size() - i) return false;
    if (v.compare(i, etag.size(), etag) == 0) {
      i += etag.size();
      while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) i++;
      if (i == v.size() || v[i] == ',') return true;
    }
    while (i < v.size() && v[i] != ',') i++;
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
  }
  return false;
}

Code not_modified_header_filter(Request& r, HeaderNext next) {
  if (r.headers_out.status != 200 || !r.is_main() || r.disable_not_modified) return next(r);
  HeadersIn& in = r.headers_in;
  if (in.if_unmodified_since != nullptr && !test_if_unmodified(r))
    return filter_finalize_request(r, nullptr, 412);
  if (in.if_match != nullptr && !test_if_match(r, in.if_match, false))
    return filter_finalize_request(r, nullptr, 412);
  if (in.if_modified_since != nullptr || in.if_none_match != nullptr) {
    if (in.if_modified_since != nullptr && test_if_modified(r)) return next(r);
    if (in.if_none_match != nullptr && !test_if_match(r, in.if_none_match, true)) return next(r);
    r.headers_out.status = 304;
    r.headers_out.status_line = {};
    r.headers_out.content_type = {};
    clear_content_length(r);
    clear_accept_ranges(r);
    if (r.headers_out.content_encoding != nullptr) {
      r.headers_out.content_encoding->hash = 0;
      r.headers_out.content_encoding = nullptr;
    }
  }
  return next(r);
}

Status init(ConfContext& cf) {
  register_header_filter(cf, FilterId::NotModified, not_modified_header_filter);
  return {};
}

}  // namespace

Module http_not_modified_filter_module{
    .name = "http_not_modified_filter",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
