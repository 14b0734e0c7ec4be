// The postpone filter (seed 004's place between ssi and gzip): it keeps subrequests' output in
// order. The only subrequests today are background ones, whose output nobody reads: it is marked
// sent and dropped here, so the filters above reuse their buffers and the subrequest ends without
// touching the client's socket. nginx: src/http/ngx_http_postpone_filter_module.c
#include "http/core_module.h"
#include "http/filter.h"

namespace weir::http {

namespace {

Rc postpone_filter(Request& r, ChainLink* in, BodyNext next) {
  if (!r.background) return next(r, in);
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    b.pos = b.last;
    if (b.in_file) b.file_pos = b.file_last;
  }
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
