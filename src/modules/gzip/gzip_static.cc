// gzip_static: a request for a file that has a precompressed "<file>.gz" beside it gets that file,
// with Content-Encoding: gzip, when the client may have gzip (gzip_static on, by the gzip filter's
// rules) or in any case (always: for clients gunzip serves); precompressed.h does the serving.
// nginx: src/http/modules/ngx_http_gzip_static_module.c
#include "http/core_module.h"
#include "http/precompressed.h"
#include "modules/gzip/gzip.h"

namespace weir::http {

extern Module http_gzip_static_module;

namespace {

struct GzipStaticLocConf {
  static constexpr Module* kModule = &http_gzip_static_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<StaticMode> enable;
};

Code gzip_static_handler(Request& r) {
  StaticMode mode = *r.loc<GzipStaticLocConf>().enable;
  if (mode == StaticMode::Off) return Rc::Declined;
  return serve_precompressed(r, mode, gzip_ok(r), ".gz", "gzip");
}

GzipStaticLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<GzipStaticLocConf>();
}

Status merge_loc_conf(ConfContext&, const GzipStaticLocConf& prev, GzipStaticLocConf& conf) {
  conf.enable.merge(prev.enable, StaticMode::Off);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_gzip_static_module)) return {};
  add_phase_handler(cf, Phase::Content, gzip_static_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::enum_<&GzipStaticLocConf::enable, kStaticModes>>("gzip_static",
                                                                     kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_gzip_static_module));

}  // namespace

Module http_gzip_static_module{
    .name = "http_gzip_static",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
