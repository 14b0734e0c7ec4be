// flv (ngx_http_flv_module, which Debian's nginx has): a location with `flv` serves its files as
// the static handler does, and a request with ?start=N (a byte offset a Flash player seeks to) gets
// the FLV file header and the file from that byte on. nginx: src/http/modules/ngx_http_flv_module.c

#include "core/str.h"
#include "http/core_module.h"
#include "http/file_response.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_flv_module;

namespace {

// "FLV", version 1, audio and video, a 9-byte header; then the first previous-tag size (0).
constexpr std::string_view kFlvHeader{"FLV\x1\x5\0\0\0\x9\0\0\0\0", 13};

Code flv_handler(Request& r) {
  std::string_view path;
  OpenFileInfo of;
  if (Code rc = open_requested_file(r, path, of); rc != Rc::Ok) return rc;
  off_t start = 0;
  std::string_view value;
  if (!r.args.empty() && find_arg(r.args, "start", value)) {
    std::optional<int64_t> n = parse_int(value);
    if (n && *n < of.size) start = static_cast<off_t>(*n);
  }
  if (Code rc = set_file_headers(r, of); rc != Rc::Ok) return rc;
  r.connection->log->action = "sending flv to client";
  if (start == 0) return send_file(r, of, path);
  // The ETag is made from what is sent, as nginx makes it.
  r.headers_out.content_length_n = static_cast<off_t>(kFlvHeader.size()) + of.size - start;
  clear_etag(r);
  if (set_etag(r) != Rc::Ok) return Code::status(500);
  ChainLink head{Buffer::create_memory(*r.pool, kFlvHeader), nullptr};
  return send_file_part(r, of, path, &head, start, of.size);
}

Status flv_directive(ConfContext& cf, const ConfNode&) {
  set_location_handler(cf, flv_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<flv_directive>("flv", kHttpLocConf | kNoArgs),
};
static_assert(directives_of(kDirectives, &http_flv_module));

}  // namespace

Module http_flv_module{
    .name = "http_flv",
    .type = ModuleType::Http,
    .directives = kDirectives,
};

}  // namespace weir::http
