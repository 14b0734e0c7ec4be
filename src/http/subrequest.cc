#include "http/subrequest.h"

#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/http_connection.h"
#include "http/variables.h"

namespace weir::http {

Request* create_subrequest(Request& r, std::string_view uri, std::string_view args,
                           SubrequestFlags flags, PostSubrequest* post) {
  if (r.subrequests == 0) {
    log_error(LogLevel::Error, r.log(), 0, "subrequests cycle while processing \"%.*s\"",
              static_cast<int>(uri.size()), uri.data());
    return nullptr;
  }
  // The counter is 16 bits in nginx; the same margin keeps the behaviour alike.
  if (r.main->count >= 65535 - 1000) {
    log_error(LogLevel::Crit, r.log(), 0,
              "request reference counter overflow while processing \"%.*s\"",
              static_cast<int>(uri.size()), uri.data());
    return nullptr;
  }
  Pool& pool = *r.pool;
  auto* sr = pool.make<Request>();
  sr->connection = r.connection;
  sr->http_connection = r.http_connection;
  sr->pool = &pool;
  sr->main = r.main;
  sr->parent = &r;
  sr->main_conf = r.main_conf;
  sr->srv_conf = r.srv_conf;
  sr->loc_conf = core_srv(r).ctx->loc_conf;
  sr->ctx = static_cast<void**>(pool.alloc_zeroed(sizeof(void*) * module_count(ModuleType::Http)));
  sr->variables = r.variables;  // shared, as nginx does: values cached by one are seen by the other
  sr->header_in = r.header_in;
  sr->headers_in = r.headers_in;
  sr->request_body = r.request_body;
  sr->method = kGet;
  sr->method_name = "GET";
  sr->http_version = r.http_version;
  sr->http_protocol = r.http_protocol;
  sr->schema = r.schema;
  sr->request_line = r.request_line;
  sr->unparsed_uri = r.unparsed_uri;
  sr->uri = uri;
  sr->args = args;
  sr->exten = uri_exten(uri);
  sr->internal = true;
  sr->background = flags.background;
  sr->subrequest_in_memory = flags.in_memory;
  sr->waited = flags.waited;
  sr->post_subrequest = post;
  sr->discard_body = r.discard_body;
  sr->expect_tested = true;
  sr->main_filter_need_in_memory = r.main_filter_need_in_memory;
  sr->uri_changes = 11;
  sr->subrequests = static_cast<uint8_t>(r.subrequests - 1);
  sr->start_sec = clock::now();
  sr->start_msec = clock::wall_msec();
  sr->read_event_handler = request_empty_handler;
  sr->write_event_handler = handle_request;
  if (flags.clone) {
    sr->method = r.method;
    sr->method_name = r.method_name;
    sr->loc_conf = r.loc_conf;
    sr->valid_location = r.valid_location;
    sr->valid_unparsed_uri = r.valid_unparsed_uri;
    sr->content_handler = r.content_handler;
    sr->phase_handler = r.phase_handler;
    sr->captures = r.captures;
    sr->ncaptures = r.ncaptures;
    sr->captures_data = r.captures_data;
    sr->write_event_handler = core_run_phases;
    update_location_config(*sr);
  }
  if (!sr->background) {
    // Its output goes after what r has sent so far: it takes its place in r's postponed list, and
    // is the active request at once when r is active with nothing else waiting.
    HttpConnection& hc = *r.http_connection;
    if (hc.active == &r && r.postponed == nullptr) hc.active = sr;
    auto* pr = pool.make<PostponedRequest>();
    pr->request = sr;
    PostponedRequest** tail = &r.postponed;
    while (*tail != nullptr) tail = &(*tail)->next;
    *tail = pr;
  }
  r.main->count++;
  post_request(*sr);
  return sr;
}

}  // namespace weir::http
