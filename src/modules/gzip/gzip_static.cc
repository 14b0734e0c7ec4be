// gzip_static: a request for a file that has a precompressed "<file>.gz" beside it gets that file,
// with Content-Encoding: gzip, when the client may have gzip (gzip_static on, by the gzip filter's
// rules) or in any case (always: for clients gunzip serves). A content handler ahead of the static
// one; nothing is compressed here. nginx: src/http/modules/ngx_http_gzip_static_module.c
#include "http/core_module.h"
#include "http/file_response.h"
#include "http/request_body.h"
#include "modules/gzip/gzip.h"

namespace weir::http {

extern Module http_gzip_static_module;

namespace {

enum class GzipStatic : uint8_t { Off, On, Always };

struct GzipStaticLocConf {
  static constexpr Module* kModule = &http_gzip_static_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<GzipStatic> enable;
};

constexpr EnumName<GzipStatic> kModes[] = {
    {"off", GzipStatic::Off},
    {"on", GzipStatic::On},
    {"always", GzipStatic::Always},
};

Code gzip_static_handler(Request& r) {
  if (!(r.method & (kGet | kHead)) || r.uri.empty() || r.uri.back() == '/') return Rc::Declined;
  GzipStatic mode = *r.loc<GzipStaticLocConf>().enable;
  if (mode == GzipStatic::Off) return Rc::Declined;
  bool ok = mode == GzipStatic::Always || gzip_ok(r);
  CoreLocConf& clcf = core_loc(r);
  if (!*clcf.gzip_vary && !ok) return Rc::Declined;

  size_t root;
  std::string_view base = map_uri_to_path(r, &root, 3);
  if (base.empty()) return Code::status(500);
  char* p = const_cast<char*>(base.data()) + base.size();
  *p++ = '.';
  *p++ = 'g';
  *p++ = 'z';
  *p = '\0';
  std::string_view path{base.data(), base.size() + 3};

  OpenFileInfo of;
  init_open_file_info(clcf, of);
  if (!open_cached_file(clcf.open_file_cache, path, of, *r.pool)) {
    if (of.err == 0) return Code::status(500);
    OpenFailure f = open_failure(of.err);
    if (f.status == 404) return Rc::Declined;  // no precompressed file: the static handler goes on
    log_error(f.crit ? LogLevel::Crit : LogLevel::Error, r.log(), of.err, "%s \"%.*s\" failed",
              of.failed, static_cast<int>(path.size()), path.data());
    return Rc::Declined;
  }
  if (mode == GzipStatic::On) {
    r.gzip_vary = true;  // the .gz exists: the answer depends on Accept-Encoding
    if (!ok) return Rc::Declined;
  }
  if (of.is_dir) return Rc::Declined;
  if (!of.is_file) {
    log_error(LogLevel::Crit, r.log(), 0, "\"%.*s\" is not a regular file",
              static_cast<int>(path.size()), path.data());
    return Code::status(404);
  }
  r.root_tested = !r.error_page;
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  if (Code rc = set_file_headers(r, of); rc != Rc::Ok) return rc;
  r.headers_out.content_encoding = add_header_out(r, "Content-Encoding", "gzip");
  return send_file(r, of, path);
}

GzipStaticLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<GzipStaticLocConf>();
}

Status merge_loc_conf(ConfContext&, const GzipStaticLocConf& prev, GzipStaticLocConf& conf) {
  conf.enable.merge(prev.enable, GzipStatic::Off);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_gzip_static_module)) return {};
  add_phase_handler(cf, Phase::Content, gzip_static_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::enum_<&GzipStaticLocConf::enable, kModes>>("gzip_static",
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
