#include "http/file_response.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

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

namespace {

// directio: a file of at least that size is read through a descriptor of its own opened with
// O_DIRECT (the cached one is shared and stays as it is), by aligned blocks, never with sendfile.
// A file replaced since it was opened is served from what was opened.
void use_directio(Request& r, const OpenFileInfo& of, std::string_view path, File& file) {
  const CoreLocConf& clcf = core_loc(r);
  if (*clcf.directio < 0 || of.size < *clcf.directio || of.data.data() != nullptr) return;
  std::string name(path);
  int fd = ::open(name.c_str(), O_RDONLY | O_DIRECT | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    log_error(LogLevel::Alert, r.log(), errno, "open() \"%s\" with O_DIRECT failed", name.c_str());
    return;
  }
  struct stat st;
  if (::fstat(fd, &st) < 0 || st.st_ino != of.uniq || st.st_size != of.size) {
    ::close(fd);
    return;
  }
  r.pool->add_cleanup([](void* p) { ::close(static_cast<int>(reinterpret_cast<intptr_t>(p))); },
                      reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  file.fd = fd;
  file.directio = true;
  file.alignment = static_cast<uint32_t>(*clcf.directio_alignment);
}

}  // namespace

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
    use_directio(r, of, path, *file);
    b->file = file;
  }
  ChainLink out{b, nullptr};
  return output_filter(r, &out);
}

}  // namespace weir::http
