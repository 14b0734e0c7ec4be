#include "http/filter.h"

#include <algorithm>

#include "http/core_module.h"

namespace weir::http {

std::string_view filter_name(FilterId id) {
  switch (id) {
    case FilterId::Slice:
      return "slice";
    case FilterId::NotModified:
      return "not_modified";
    case FilterId::RangeBody:
      return "range_body";
    case FilterId::Copy:
      return "copy";
    case FilterId::Image:
      return "image_filter";
    case FilterId::Xslt:
      return "xslt";
    case FilterId::HeadersMore:
      return "headers_more";
    case FilterId::Headers:
      return "headers";
    case FilterId::Userid:
      return "userid";
    case FilterId::Gunzip:
      return "gunzip";
    case FilterId::Addition:
      return "addition";
    case FilterId::Sub:
      return "sub";
    case FilterId::Charset:
      return "charset";
    case FilterId::Ssi:
      return "ssi";
    case FilterId::Postpone:
      return "postpone";
    case FilterId::Brotli:
      return "brotli";
    case FilterId::Zstd:
      return "zstd";
    case FilterId::Gzip:
      return "gzip";
    case FilterId::RangeHeader:
      return "range_header";
    case FilterId::Http2:
      return "http2";
    case FilterId::Chunked:
      return "chunked";
    case FilterId::Header:
      return "header";
    case FilterId::Write:
      return "write";
  }
  return "?";
}

void register_header_filter(ConfContext& cf, FilterId id, HeaderFilterFn fn) {
  core_main_conf(cf).header_registrations.emplace_back(id, fn);
}

void register_body_filter(ConfContext& cf, FilterId id, BodyFilterFn fn) {
  core_main_conf(cf).body_registrations.emplace_back(id, fn);
}

Status build_filter_chains(ConfContext& cf) {
  CoreMainConf& cmcf = core_main_conf(cf);
  FilterChains& fc = cmcf.filters;
  fc = FilterChains{};
  for (FilterId id : kFilterRunOrder) {
    for (const auto& [rid, fn] : cmcf.header_registrations) {
      if (rid == id) {
        fc.header.push_back(fn);
        fc.header_ids.push_back(id);
      }
    }
    for (const auto& [rid, fn] : cmcf.body_registrations) {
      if (rid == id) {
        fc.body.push_back(fn);
        fc.body_ids.push_back(id);
      }
    }
  }
  if (fc.header_ids.empty() || fc.header_ids.back() != FilterId::Header || fc.body_ids.empty() ||
      fc.body_ids.back() != FilterId::Write) {
    return cf.error("the output filter chains lack the header or the write filter");
  }
  return {};
}

Code send_header(Request& r) {
  if (r.post_action) return Rc::Ok;  // the response was sent before the post action began
  if (r.header_sent) {
    log_error(LogLevel::Alert, r.log(), 0, "header already sent");
    return Rc::Error;
  }
  if (r.err_status != 0) {
    r.headers_out.status = r.err_status;
    r.headers_out.status_line = {};
  }
  return core_main(r).filters.header_top()(r);
}

Rc output_filter(Request& r, ChainLink* in) {
  Rc rc = core_main(r).filters.body_top()(r, in);
  if (rc == Rc::Error) r.connection->error = true;
  return rc;
}

}  // namespace weir::http
