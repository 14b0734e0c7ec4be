// stub_status: the server's connection and request counters as nginx prints them, the text
// monitoring agents scrape, and $connections_active/_reading/_writing/_waiting. The counters are
// kept by every worker in shared memory (event/connection.h); waiting is what is active and
// neither reading a request's header nor serving one.
// nginx: src/http/modules/ngx_http_stub_status_module.c
#include <string>

#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_stub_status_module;

namespace {

Code stub_status_handler(Request& r) {
  if (!(r.method & (kGet | kHead))) return Code::status(405);
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  ConnectionCounts c = connection_counts();
  char* p = r.pool->alloc_bytes(256);
  char* e = put(p, "Active connections: ");
  e = put_uint(e, c.active);
  e = put(e, " \nserver accepts handled requests\n ");
  e = put_uint(e, c.accepted);
  *e++ = ' ';
  e = put_uint(e, c.handled);
  *e++ = ' ';
  e = put_uint(e, c.requests);
  e = put(e, " \nReading: ");
  e = put_uint(e, c.reading);
  e = put(e, " Writing: ");
  e = put_uint(e, c.writing);
  e = put(e, " Waiting: ");
  e = put_uint(e, c.waiting);
  e = put(e, " \n");
  return send_response(r, 200, {p, static_cast<size_t>(e - p)}, "text/plain");
}

void var_connections(Request& r, VariableValue& v, uintptr_t which) {
  ConnectionCounts c = connection_counts();
  uint64_t n = which == 0 ? c.active : which == 1 ? c.reading : which == 2 ? c.writing : c.waiting;
  char* p = r.pool->alloc_bytes(24);
  v.set({p, static_cast<size_t>(put_uint(p, n) - p)});
  v.no_cacheable = true;
}

Status stub_status_directive(ConfContext& cf, const ConfNode&) {
  set_location_handler(cf, stub_status_handler);
  return {};
}

Status preconfiguration(ConfContext& cf) {
  const char* names[] = {"connections_active", "connections_reading", "connections_writing",
                         "connections_waiting"};
  for (uintptr_t i = 0; i < 4; i++) {
    if (Status s = add_variable(cf, names[i], kVarNoCacheable, var_connections, i); !s.ok()) {
      return s;
    }
  }
  return {};
}

constexpr Directive kDirectives[] = {
    directive<stub_status_directive>("stub_status", kHttpSrvConf | kHttpLocConf | kNoArgs | kTake1),
};
static_assert(directives_of(kDirectives, &http_stub_status_module));

}  // namespace

Module http_stub_status_module{
    .name = "http_stub_status",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
};

}  // namespace weir::http
