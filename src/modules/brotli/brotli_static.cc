// brotli_static (the brotli family's, as gzip_static): a request for a file with a precompressed
// "<file>.br" beside it gets that file with Content-Encoding: br, when the client prefers br
// (content_coding.h) and nginx's gzip rules allow compression (on), or in any case (always);
// precompressed.h does the serving. Handlers registered later run first: this one runs before
// gzip_static.
#include "http/core_module.h"
#include "http/precompressed.h"

namespace weir::http {

extern Module http_brotli_static_module;

namespace {

struct BrotliStaticLocConf {
  static constexpr Module* kModule = &http_brotli_static_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<StaticMode> enable;
};

Code brotli_static_handler(Request& r) {
  return serve_preferred(r, *r.loc<BrotliStaticLocConf>().enable, Coding::Brotli);
}

BrotliStaticLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<BrotliStaticLocConf>();
}

Status merge_loc_conf(ConfContext&, const BrotliStaticLocConf& prev, BrotliStaticLocConf& conf) {
  conf.enable.merge(prev.enable, StaticMode::Off);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_brotli_static_module)) return {};
  add_phase_handler(cf, Phase::Content, brotli_static_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::enum_<&BrotliStaticLocConf::enable, kStaticModes>>("brotli_static",
                                                                       kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_brotli_static_module));

}  // namespace

Module http_brotli_static_module{
    .name = "http_brotli_static",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
