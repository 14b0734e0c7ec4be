// A file as the response: its status, length, Last-Modified, ETag and type set from what the
// open-file cache found, then the header and one buffer (the file for sendfile, or the small file's
// bytes the cache holds). The static handler and gzip_static send files this way.
// nginx: the tail of ngx_http_static_handler
#pragma once

#include <string_view>

#include "http/open_file.h"
#include "http/request.h"

namespace weir::http {

// The response's header fields for the file (not sent yet): Ok, or a status.
Code set_file_headers(Request& r, const OpenFileInfo& of);
// Sends the header and the file (path names it in error messages).
Code send_file(Request& r, const OpenFileInfo& of, std::string_view path);

}  // namespace weir::http
