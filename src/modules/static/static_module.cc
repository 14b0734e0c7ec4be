// The static content handler: maps the URI to a file, answers 301 for a directory without its
// slash, 403/404 like nginx, and sends the file as an in_file buffer (the send chain uses sendfile,
// or the copy filter reads it when sendfile is off). nginx:
// src/http/modules/ngx_http_static_module.c
#include "http/core_module.h"
#include "http/file_response.h"
#include "http/request_body.h"

namespace weir::http {

namespace {

Code static_handler(Request& r) {
  if (!(r.method & (kGet | kHead | kPost))) return Code::status(405);
  // An empty URI comes from try_files "" under a regex alias: the alias names the file.
  if (!r.uri.empty() && r.uri.back() == '/') return Rc::Declined;

  size_t root;
  // map_uri_to_path leaves room for the terminating NUL, which a redirect reuses for its '/'.
  std::string_view path = map_uri_to_path(r, &root, 1);
  if (path.empty()) return Code::status(500);
  CoreLocConf& clcf = core_loc(r);
  const Log& log = r.log();
  WEIR_DEBUG(log, "http filename: \"%.*s\"", static_cast<int>(path.size()), path.data());

  OpenFileInfo of;
  if (Code rc = open_served_file(r, clcf, path, of); rc != Rc::Ok) return rc;
  r.root_tested = !r.error_page;

  if (of.is_dir) {
    clear_location(r);
    std::string_view location;
    if (!clcf.alias && r.args.empty()) {
      // The path's URI part plus '/', written over the NUL map_uri_to_path left.
      char* p = const_cast<char*>(path.data());
      p[path.size()] = '/';
      location = {p + root, path.size() - root + 1};
    } else {
      size_t len = r.uri.size() + 1 + (r.args.empty() ? 0 : r.args.size() + 1);
      char* p = r.pool->alloc_bytes(len);
      char* e = put(p, r.uri);
      *e++ = '/';
      if (!r.args.empty()) {
        *e++ = '?';
        e = put(e, r.args);
      }
      location = {p, len};
    }
    r.headers_out.location = add_header_out(r, "Location", location);
    return Code::status(301);
  }
  if (!of.is_file) {
    log_error(LogLevel::Crit, log, 0, "\"%.*s\" is not a regular file",
              static_cast<int>(path.size()), path.data());
    return Code::status(404);
  }
  if (r.method == kPost) return Code::status(405);
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;

  if (Code rc = set_file_headers(r, of); rc != Rc::Ok) return rc;
  return send_file(r, of, path);
}

Status init(ConfContext& cf) {
  add_phase_handler(cf, Phase::Content, static_handler);
  return {};
}

}  // namespace

Module http_static_module{
    .name = "http_static",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
