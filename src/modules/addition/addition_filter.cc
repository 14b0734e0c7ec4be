// The addition filter (ngx_http_addition_module, which Debian's nginx has): a 200 response of
// addition_types (text/html) to the main request gets add_before_body's URI's answer before its
// body and add_after_body's after it, both as subrequests whose output takes its place through the
// postpone filter. Content-Length and Accept-Ranges go, the ETag turns weak.
// nginx: src/http/modules/ngx_http_addition_filter_module.c

#include <string>
#include <vector>

#include "http/core_module.h"
#include "http/subrequest.h"

namespace weir::http {

extern Module http_addition_filter_module;

namespace {

struct AdditionLocConf {
  static constexpr Module* kModule = &http_addition_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<std::string> before_body;
  Setting<std::string> after_body;
  Setting<std::vector<std::string>> types;
};

struct AdditionCtx {
  static constexpr Module* kModule = &http_addition_filter_module;
  bool before_sent = false;
  bool done = false;  // the body has passed (and what follows it was asked for)
};

Code addition_header_filter(Request& r, HeaderNext next) {
  if (r.headers_out.status != 200 || !r.is_main()) return next(r);
  const auto& conf = r.loc<AdditionLocConf>();
  if (conf.before_body->empty() && conf.after_body->empty()) return next(r);
  if (!content_type_in(r, *conf.types)) return next(r);
  r.set_ctx(r.pool->make<AdditionCtx>());
  clear_content_length(r);
  clear_accept_ranges(r);
  weak_etag(r);
  r.preserve_body = true;
  return next(r);
}

Rc addition_body_filter(Request& r, ChainLink* in, BodyNext next) {
  if (in == nullptr || r.header_only) return next(r, in);
  auto* ctx = r.get_ctx<AdditionCtx>();
  if (ctx == nullptr || ctx->done) return next(r, in);
  const auto& conf = r.loc<AdditionLocConf>();
  if (!ctx->before_sent) {
    ctx->before_sent = true;
    if (!conf.before_body->empty() &&
        create_subrequest(r, *conf.before_body, {}, SubrequestFlags{}) == nullptr) {
      return Rc::Error;
    }
  }
  if (conf.after_body->empty()) {
    ctx->done = true;
    return next(r, in);
  }
  // The body's end is no longer the response's: the after part follows it.
  bool last = false;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    if (cl->buf->last_buf) {
      cl->buf->last_buf = false;
      cl->buf->last_in_chain = true;
      cl->buf->sync = true;
      last = true;
    }
  }
  Rc rc = next(r, in);
  if (rc == Rc::Error || !last) return rc;
  if (create_subrequest(r, *conf.after_body, {}, SubrequestFlags{}) == nullptr) return Rc::Error;
  ctx->done = true;
  return send_special(r, true, false);
}

AdditionLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<AdditionLocConf>();
}

Status merge_loc_conf(ConfContext&, const AdditionLocConf& prev, AdditionLocConf& conf) {
  conf.before_body.merge(prev.before_body, "");
  conf.after_body.merge(prev.after_body, "");
  conf.types.merge(prev.types, {"text/html"});
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_addition_filter_module)) return {};
  register_header_filter(cf, FilterId::Addition, addition_header_filter);
  register_body_filter(cf, FilterId::Addition, addition_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::str<&AdditionLocConf::before_body>>("add_before_body",
                                                        kHttpMainSrvLoc | kTake1),
    directive<slot::str<&AdditionLocConf::after_body>>("add_after_body", kHttpMainSrvLoc | kTake1),
    directive<slot::mime_types<&AdditionLocConf::types>>("addition_types",
                                                         kHttpMainSrvLoc | kOneMore),
};
static_assert(directives_of(kDirectives, &http_addition_filter_module));

}  // namespace

Module http_addition_filter_module{
    .name = "http_addition_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
