// mirror: copies each request to other URIs as background subrequests ("mirror /audit;"), after
// reading the client's body so that the mirrors see it too (mirror_request_body, on by default).
// The mirrors' responses are ignored; the client's response does not wait for them, the
// connection's next request does. nginx: src/http/modules/ngx_http_mirror_module.c
#include <string>
#include <vector>

#include "http/core_module.h"
#include "http/request_body.h"
#include "http/subrequest.h"

namespace weir::http {

extern Module http_mirror_module;

namespace {

struct MirrorConf {
  static constexpr Module* kModule = &http_mirror_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<std::string>* uris = nullptr;  // nullptr: no mirroring
  bool uris_set = false;                     // "mirror" seen here (a URI or "off")
  Setting<bool> request_body;
};

struct MirrorCtx {
  static constexpr Module* kModule = &http_mirror_module;
  Code status =
      Rc::Done;  // what the phase handler answers when it runs again after the body is read
};

Code start_mirrors(Request& r) {
  for (const std::string& uri : *r.loc<MirrorConf>().uris) {
    Request* sr = create_subrequest(r, uri, r.args, {.background = true});
    if (sr == nullptr) return Code::status(500);
    sr->header_only = true;
    sr->method = r.method;
    sr->method_name = r.method_name;
  }
  return Rc::Declined;
}

void body_read(Request& r) {
  auto* ctx = r.get_ctx<MirrorCtx>();
  r.preserve_body = true;
  r.write_event_handler = core_run_phases;
  ctx->status = start_mirrors(r);
  run_phases(r);
}

Code mirror_handler(Request& r) {
  if (!r.is_main()) return Rc::Declined;
  MirrorConf& conf = r.loc<MirrorConf>();
  if (conf.uris == nullptr) return Rc::Declined;
  if (!*conf.request_body) return start_mirrors(r);
  if (auto* ctx = r.get_ctx<MirrorCtx>()) return ctx->status;
  r.set_ctx(r.pool->make<MirrorCtx>());
  Code rc = read_client_request_body(r, body_read);
  if (rc.is_status() && rc.http_status() >= kHttpSpecialResponse) return rc;
  finalize_request(r, Rc::Done);
  return Rc::Done;
}

Status set_mirror(ConfContext& cf, const ConfNode& n, MirrorConf& mc) {
  const std::string& uri = n.args[1];
  if (uri == "off") {
    if (mc.uris_set) return Status::error("is duplicate");
    mc.uris_set = true;
    mc.uris = nullptr;
    return {};
  }
  if (mc.uris_set && mc.uris == nullptr) return Status::error("is duplicate");
  if (mc.uris == nullptr) mc.uris = cf.pool.make<std::vector<std::string>>();
  mc.uris_set = true;
  mc.uris->push_back(uri);
  return {};
}

MirrorConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<MirrorConf>();
}

Status merge_loc_conf(ConfContext&, const MirrorConf& prev, MirrorConf& conf) {
  if (!conf.uris_set) {
    conf.uris = prev.uris;
    conf.uris_set = prev.uris_set;
  }
  conf.request_body.merge(prev.request_body, true);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_mirror_module)) return {};
  add_phase_handler(cf, Phase::Precontent, mirror_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<set_mirror>("mirror", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&MirrorConf::request_body>>("mirror_request_body",
                                                     kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_mirror_module));

}  // namespace

Module http_mirror_module{
    .name = "http_mirror",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
