#include "http/precompressed.h"

#include <cstring>

#include "http/file_response.h"
#include "http/request_body.h"

namespace weir::http {

Code serve_precompressed(Request& r, StaticMode mode, bool ok, std::string_view suffix,
                         std::string_view coding) {
  if (mode == StaticMode::Off || !(r.method & (kGet | kHead)) || r.uri.empty() ||
      r.uri.back() == '/') {
    return Rc::Declined;
  }
  ok = ok || mode == StaticMode::Always;
  CoreLocConf& clcf = core_loc(r);
  if (!*clcf.gzip_vary && !ok) return Rc::Declined;

  size_t root;
  std::string_view base = map_uri_to_path(r, &root, suffix.size());
  if (base.empty()) return Code::status(500);
  char* p = const_cast<char*>(base.data()) + base.size();
  std::memcpy(p, suffix.data(), suffix.size());
  p[suffix.size()] = '\0';
  std::string_view path{base.data(), base.size() + suffix.size()};

  OpenFileInfo of;
  init_open_file_info(r, clcf, of);
  set_disable_symlinks(r, clcf, path, of);
  if (!open_cached_file(clcf.open_file_cache, path, of, *r.pool)) {
    if (of.err == 0) return Code::status(500);
    OpenFailure f = open_failure(of.err);
    if (f.status == 404) return Rc::Declined;  // no precompressed file: the static handler goes on
    log_error(f.crit ? LogLevel::Crit : LogLevel::Error, r.log(), of.err, "%s \"%.*s\" failed",
              of.failed, static_cast<int>(path.size()), path.data());
    return Rc::Declined;
  }
  if (mode == StaticMode::On) {
    r.gzip_vary = true;  // the file exists: the answer depends on Accept-Encoding
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
  r.headers_out.content_encoding = add_header_out(r, "Content-Encoding", coding);
  return send_file(r, of, path);
}

Code serve_preferred(Request& r, StaticMode mode, Coding coding) {
  if (mode == StaticMode::Off) return Rc::Declined;
  const Header* ae = r.headers_in.accept_encoding;
  bool ok = ae != nullptr && coding_preferred(ae->value, coding) && compression_allowed(r);
  return serve_precompressed(r, mode, ok, coding == Coding::Brotli ? ".br" : ".zst",
                             coding_token(coding));
}

}  // namespace weir::http
