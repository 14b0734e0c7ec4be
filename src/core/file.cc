#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/str.h"

namespace weir {

ssize_t read_file(const File& file, char* buf, size_t size, off_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(file.fd, buf + done, size - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += n;
  }
  return static_cast<ssize_t>(done);
}

ssize_t read_file_direct(const File& file, char* buf, size_t size, off_t offset) {
  // Per thread (the loop's, and each pool thread's), aligned for any directio_alignment up to it.
  constexpr size_t kAlign = 4096;
  constexpr size_t kScratch = 1 << 20;
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<char, Free> scratch(
      static_cast<char*>(std::aligned_alloc(kAlign, kScratch)));
  if (scratch == nullptr) {
    errno = ENOMEM;
    return -1;
  }
  auto align = static_cast<off_t>(file.alignment);
  size_t done = 0;
  while (done < size) {
    off_t want_from = offset + static_cast<off_t>(done);
    off_t from = want_from & ~(align - 1);
    off_t to = (offset + static_cast<off_t>(size) + align - 1) & ~(align - 1);
    to = std::min(to, from + static_cast<off_t>(kScratch));
    ssize_t n = ::pread(file.fd, scratch.get(), static_cast<size_t>(to - from), from);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (from + n <= want_from) break;  // the end of the file
    size_t take = std::min(static_cast<size_t>(from + n - want_from), size - done);
    std::memcpy(buf + done, scratch.get() + (want_from - from), take);
    done += take;
    if (from + n < to) break;  // the end of the file
  }
  return static_cast<ssize_t>(done);
}

ssize_t write_chain_to_file(File& file, ChainLink* cl, off_t offset) {
  ssize_t total = 0;
  while (cl != nullptr) {
    struct iovec iov[64];
    int n = 0;
    size_t size = 0;
    for (; cl != nullptr && n < 64; cl = cl->next) {
      Buffer* b = cl->buf;
      if (!b->in_memory() || b->last == b->pos) continue;
      iov[n].iov_base = b->pos;
      iov[n].iov_len = b->last - b->pos;
      size += iov[n].iov_len;
      n++;
    }
    if (n == 0) break;
    size_t done = 0;
    int first = 0;
    while (done < size) {
      ssize_t w = ::pwritev(file.fd, iov + first, n - first, offset);
      if (w < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      done += w;
      offset += w;
      total += w;
      // Skip what was written (a short write can end mid-iovec).
      while (first < n && static_cast<size_t>(w) >= iov[first].iov_len) {
        w -= iov[first].iov_len;
        first++;
      }
      if (first < n) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + w;
        iov[first].iov_len -= w;
      }
    }
  }
  file.offset = offset;
  return total;
}

Status create_full_path(const std::string& dir, uint32_t mode) {
  std::string path;
  for (size_t i = 0; i <= dir.size(); i++) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      path = dir.substr(0, i);
      if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) < 0 && errno != EEXIST) {
        return Status::sys_error(errno, "mkdir", path);
      }
    }
  }
  return {};
}

namespace {

uint32_t g_temp_number = 0;

void close_temp(void* data) {
  auto* tf = static_cast<TempFile*>(data);
  if (tf->file.fd >= 0) {
    ::close(tf->file.fd);
    tf->file.fd = -1;
  }
  if (tf->clean && !tf->file.name.empty()) {
    std::string name(tf->file.name);
    ::unlink(name.c_str());
  }
}

}  // namespace

Status create_temp_file(TempFile& tf, Pool& pool, const TempPath& path) {
  if (g_temp_number == 0) g_temp_number = static_cast<uint32_t>(::getpid()) * 1000 + 1;
  for (int attempt = 0; attempt < 1000; attempt++) {
    uint32_t n = g_temp_number++;
    // The number, zero-padded to 10 digits; level directories take its last digits (nginx's
    // layout).
    char digits[16];
    char* e = put_uint_pad(digits, n, 10);
    std::string_view num(digits, e - digits);
    std::string name = path.name;
    size_t tail = num.size();
    for (int len : path.level) {
      if (len == 0) break;
      name += '/';
      name.append(num.substr(tail - len, len));
      tail -= len;
    }
    std::string dir = name;
    name += '/';
    name.append(num);
    int fd = ::open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
      if (Status s = create_full_path(dir); !s.ok()) return s;
      fd = ::open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return Status::sys_error(errno, "open", name);
    }
    if (!tf.persistent) ::unlink(name.c_str());
    tf.file.fd = fd;
    tf.file.name = pool.dup(name);
    tf.file.offset = 0;
    tf.path = &path;
    pool.add_cleanup(close_temp, &tf);
    return {};
  }
  return Status::sys_error(EEXIST, "open", path.name);
}

}  // namespace weir
