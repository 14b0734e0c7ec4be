// A file as the response: its status, length, Last-Modified, ETag and type set from what the
// open-file cache found, then the header and one buffer (the file for sendfile, or the small file's
// bytes the cache holds). The static handler, gzip_static, flv and mp4 send files this way.
// nginx: the tail of ngx_http_static_handler
#pragma once

#include <string_view>

#include "http/core_module.h"
#include "http/open_file.h"
#include "http/request.h"

namespace weir::http {

// The status a failed open_cached_file answers, logged as nginx logs it.
Code open_failed(Request& r, const CoreLocConf& clcf, std::string_view path,
                 const OpenFileInfo& of);
// Opens the file a content handler serves at path, through the location's open-file cache and
// under its disable_symlinks: Ok, or the status the failure answers, logged in nginx's words (a
// missing file only with log_not_found on).
inline Code open_served_file(Request& r, const CoreLocConf& clcf, std::string_view path,
                             OpenFileInfo& of) {
  init_open_file_info(r, clcf, of);
  set_disable_symlinks(r, clcf, path, of);
  if (open_cached_file(clcf.open_file_cache, path, of, *r.pool)) [[likely]] {
    return Rc::Ok;
  }
  return open_failed(r, clcf, path, of);
}
// The start of flv's and mp4's handlers, nginx's copies of the static handler's: GET and HEAD
// only, a URI naming a file (not a directory), the body discarded, the file opened. Ok with path
// and of set, or what the handler returns (Declined: the next handler's turn).
Code open_requested_file(Request& r, std::string_view& path, OpenFileInfo& of);
// The response's header fields for the file (not sent yet): Ok, or a status.
Code set_file_headers(Request& r, const OpenFileInfo& of);
// Sends the header and the file (path names it in error messages).
Code send_file(Request& r, const OpenFileInfo& of, std::string_view path);
// The file's bytes [start, end) after the memory buffers of head (none: nullptr): flv's FLV
// header before a seek, mp4's new moov before the kept samples.
Code send_file_part(Request& r, const OpenFileInfo& of, std::string_view path, ChainLink* head,
                    off_t start, off_t end);

}  // namespace weir::http
