#include "http/file_response.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "http/core_module.h"
#include "http/filter.h"
#include "http/request_body.h"

namespace weir::http {

Code open_failed(Request& r, const CoreLocConf& clcf, std::string_view path,
                 const OpenFileInfo& of) {
  if (of.err == 0) return Code::status(500);
  OpenFailure f = open_failure(of.err);
  if (f.status != 404 || *clcf.log_not_found) {
    log_error(f.crit ? LogLevel::Crit : LogLevel::Error, r.log(), of.err, "%s \"%.*s\" failed",
              of.failed, static_cast<int>(path.size()), path.data());
  }
  return Code::status(f.status);
}

Code open_requested_file(Request& r, std::string_view& path, OpenFileInfo& of) {
  if (!(r.method & (kGet | kHead))) return Code::status(405);
  if (r.uri.back() == '/') return Rc::Declined;
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  size_t root;
  path = map_uri_to_path(r, &root, 0);
  if (path.empty()) return Code::status(500);
  if (Code rc = open_served_file(r, core_loc(r), path, of); rc != Rc::Ok) return rc;
  if (!of.is_file) return Rc::Declined;
  r.root_tested = !r.error_page;
  return Rc::Ok;
}

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

// The buffer that sends the file's bytes [start, end): the bytes the cache holds (sent with the
// headers in one write), or the file for sendfile. After send_header, which may have ended the
// request. Inline: the static path takes it on every request.
[[gnu::always_inline]] inline Buffer* file_buffer(Request& r, const OpenFileInfo& of,
                                                  std::string_view path, off_t start, off_t end,
                                                  Buffer* b, File* file) {
  b->last_buf = r.is_main();
  b->last_in_chain = true;
  if (of.data.size() == static_cast<size_t>(of.size) && of.data.data() != nullptr) {
    b->start = const_cast<char*>(of.data.data());
    b->pos = b->start + start;
    b->last = b->start + end;
    b->end = b->start + of.data.size();
    b->memory = end != start;
    b->sync = !(b->last_buf || b->memory);
  } else {
    b->file_pos = start;
    b->file_last = end;
    b->in_file = end != start;
    b->sync = !(b->last_buf || b->in_file);
    file->fd = of.fd;
    file->name = path;
    file->log = r.connection->log;
    use_directio(r, of, path, *file);
    b->file = file;
  }
  return b;
}

}  // namespace

Code send_file(Request& r, const OpenFileInfo& of, std::string_view path) {
  if (!r.is_main() && of.size == 0) return send_header(r);
  r.allow_ranges = true;
  auto* b = r.pool->make<Buffer>();
  auto* file = r.pool->make<File>();
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;
  ChainLink out{file_buffer(r, of, path, 0, of.size, b, file), nullptr};
  return output_filter(r, &out);
}

Code send_file_part(Request& r, const OpenFileInfo& of, std::string_view path, ChainLink* head,
                    off_t start, off_t end) {
  r.allow_ranges = true;
  auto* b = r.pool->make<Buffer>();
  auto* file = r.pool->make<File>();
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;
  ChainLink out{file_buffer(r, of, path, start, end, b, file), nullptr};
  if (head == nullptr) return output_filter(r, &out);
  ChainLink* last = head;
  while (last->next != nullptr) last = last->next;
  last->next = &out;
  return output_filter(r, head);
}

}  // namespace weir::http
