#include "http/open_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace weir::http {

namespace {

void close_fd(void* data) { ::close(static_cast<int>(reinterpret_cast<intptr_t>(data))); }

bool fill_info(OpenFileInfo& of, const struct stat& st) {
  of.uniq = st.st_ino;
  of.mtime = st.st_mtime;
  of.size = st.st_size;
  of.is_dir = S_ISDIR(st.st_mode);
  of.is_file = S_ISREG(st.st_mode);
  of.is_link = S_ISLNK(st.st_mode);
  of.is_exec = (st.st_mode & S_IXUSR) != 0;
  return true;
}

}  // namespace

bool open_cached_file(OpenFileCache* cache, std::string_view path, OpenFileInfo& of, Pool& pool) {
  (void)cache;
  of.fd = -1;
  of.err = 0;
  const char* p = path.data();  // NUL-terminated by the caller
  struct stat st;
  if (of.test_only) {
    if (::stat(p, &st) < 0) {
      of.err = errno;
      of.failed = "stat()";
      return false;
    }
    return fill_info(of, st);
  }
  int fd = ::open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    of.err = errno;
    of.failed = "open()";
    return false;
  }
  if (::fstat(fd, &st) < 0) {
    of.err = errno;
    of.failed = "fstat()";
    ::close(fd);
    return false;
  }
  fill_info(of, st);
  if (of.is_dir) {
    // Directories are reported, not kept open.
    ::close(fd);
    return true;
  }
  of.fd = fd;
  pool.add_cleanup(close_fd, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  return true;
}

}  // namespace weir::http
