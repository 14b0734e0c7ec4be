// zstd_static (the zstd family's, as gzip_static): a request for a file with a precompressed
// "<file>.zst" beside it gets that file with Content-Encoding: zstd, when the client prefers zstd
// (content_coding.h) and nginx's gzip rules allow compression (on), or in any case (always);
// precompressed.h does the serving. Handlers registered later run first: this one runs before
// gzip_static.
#include "http/core_module.h"
#include "http/precompressed.h"

namespace weir::http {

extern Module http_zstd_static_module;

namespace {

struct ZstdStaticLocConf {
  static constexpr Module* kModule = &http_zstd_static_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<StaticMode> enable;
};

Code zstd_static_handler(Request& r) {
  return serve_preferred(r, *r.loc<ZstdStaticLocConf>().enable, Coding::Zstd);
}

ZstdStaticLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<ZstdStaticLocConf>();
}

Status merge_loc_conf(ConfContext&, const ZstdStaticLocConf& prev, ZstdStaticLocConf& conf) {
  conf.enable.merge(prev.enable, StaticMode::Off);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_zstd_static_module)) return {};
  add_phase_handler(cf, Phase::Content, zstd_static_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::enum_<&ZstdStaticLocConf::enable, kStaticModes>>("zstd_static",
                                                                     kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_zstd_static_module));

}  // namespace

Module http_zstd_static_module{
    .name = "http_zstd_static",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
