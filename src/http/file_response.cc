#include "http/file_response.h"

#include "http/core_module.h"
#include "http/filter.h"

namespace weir::http {

Code set_file_headers(Request& r, const OpenFileInfo& of) {
  r.connection->log->action = "sending response to client";
  r.headers_out.status = 200;
  r.headers_out.content_length_n = of.size;
  r.headers_out.last_modified_time = of.mtime;
  r.headers_out.last_modified_text = of.last_modified_text;  // formatted once per cache validation
  if (!of.etag_text.empty()) {
    if (*core_loc(r).etag) r.headers_out.etag = add_header_out(r, "ETag", of.etag_text);
  } else if (set_etag(r) != Rc::Ok) {
    return Code::status(500);
  }
  if (set_content_type(r) != Rc::Ok) return Code::status(500);
  return Rc::Ok;
}

Code send_file(Request& r, const OpenFileInfo& of, std::string_view path) {
  if (!r.is_main() && of.size == 0) return send_header(r);
  r.allow_ranges = true;
  auto* b = r.pool->make<Buffer>();
  auto* file = r.pool->make<File>();
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;
  b->last_buf = r.is_main();
  b->last_in_chain = true;
  if (of.data.size() == static_cast<size_t>(of.size) && of.data.data() != nullptr) {
    // A small file the cache holds: a memory buffer, sent with the headers in one write.
    b->pos = b->start = const_cast<char*>(of.data.data());
    b->last = b->end = b->pos + of.data.size();
    b->memory = of.size != 0;
    b->sync = !(b->last_buf || b->memory);
  } else {
    b->file_pos = 0;
    b->file_last = of.size;
    b->in_file = of.size != 0;
    b->sync = !(b->last_buf || b->in_file);
    file->fd = of.fd;
    file->name = path;
    file->log = r.connection->log;
    b->file = file;
  }
  ChainLink out{b, nullptr};
  return output_filter(r, &out);
}

}  // namespace weir::http
