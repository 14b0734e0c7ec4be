#include "core/file_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/file.h"

namespace weir {

namespace {

void log_failed(LogLevel level, const Log& log, int err, const char* call,
                const std::string& path) {
  log_error(level, log, err, "%s \"%s\" failed", call, path.c_str());
}

bool set_time(const std::string& path, int fd, time_t t) {
  timespec times[2] = {{t, 0}, {t, 0}};
  return (fd >= 0 ? ::futimens(fd, times) : ::utimensat(AT_FDCWD, path.c_str(), times, 0)) == 0;
}

}  // namespace

bool set_file_time(const std::string& path, time_t time) {
  return set_time(path, -1, time);
}

bool copy_file(const std::string& from, const std::string& to, uint32_t access, time_t time,
               const Log& log) {
  int fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    log_failed(LogLevel::Crit, log, errno, "open()", from);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) < 0) {
    log_failed(LogLevel::Alert, log, errno, "fstat()", from);
    ::close(fd);
    return false;
  }
  if (access == 0) access = st.st_mode & 07777;
  if (time == -1) time = st.st_mtime;
  int nfd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, access);
  if (nfd < 0) {
    log_failed(LogLevel::Crit, log, errno, "open()", to);
    ::close(fd);
    return false;
  }
  bool ok = true;
  constexpr size_t kBuffer = 65536;
  auto buf = std::make_unique<char[]>(kBuffer);
  for (off_t left = st.st_size; left > 0 && ok;) {
    auto len = static_cast<size_t>(std::min<off_t>(left, kBuffer));
    ssize_t n = ::read(fd, buf.get(), len);
    if (n != static_cast<ssize_t>(len)) {
      log_failed(LogLevel::Alert, log, n < 0 ? errno : 0, "read()", from);
      ok = false;
    } else if (::write(nfd, buf.get(), len) != static_cast<ssize_t>(len)) {
      log_failed(LogLevel::Alert, log, errno, "write()", to);
      ok = false;
    }
    left -= static_cast<off_t>(len);
  }
  if (ok && !set_time(to, nfd, time)) {
    log_failed(LogLevel::Alert, log, errno, "utimes()", to);
    ok = false;
  }
  ::close(fd);
  ::close(nfd);
  return ok;
}

bool ext_rename_file(const std::string& from, const std::string& to, const RenameOptions& o,
                     const Log& log) {
  int err = 0;
  auto failed = [&] {
    if (o.delete_source && ::unlink(from.c_str()) < 0) {
      log_failed(LogLevel::Crit, log, errno, "unlink()", from);
    }
    if (err != 0) {
      log_error(LogLevel::Crit, log, err, "rename() \"%s\" to \"%s\" failed", from.c_str(),
                to.c_str());
    }
    return false;
  };
  if (o.access != 0 && ::chmod(from.c_str(), o.access) < 0) {
    log_failed(LogLevel::Crit, log, errno, "chmod()", from);
    return failed();
  }
  if (o.time != -1 && !set_time(from, -1, o.time)) {
    log_failed(LogLevel::Crit, log, errno, "utimes()", from);
    return failed();
  }
  if (::rename(from.c_str(), to.c_str()) == 0) return true;
  err = errno;
  if (err == ENOENT) {
    if (!o.create_path) return failed();
    size_t slash = to.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      if (Status s = create_full_path(to.substr(0, slash), dir_access(o.path_access)); !s.ok()) {
        log_error(LogLevel::Crit, log, 0, "%s", s.message().c_str());
        err = 0;
        return failed();
      }
    }
    if (::rename(from.c_str(), to.c_str()) == 0) return true;
    err = errno;
  }
  if (err == EXDEV) {
    // Another file system: a copy beside the destination, then renamed over it.
    static uint32_t serial = 0;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, ".%010u", ++serial);
    std::string tmp = to + suffix;
    if (copy_file(from, tmp, o.access, o.time, log)) {
      if (::rename(tmp.c_str(), to.c_str()) == 0) {
        if (::unlink(from.c_str()) < 0) {
          log_failed(LogLevel::Crit, log, errno, "unlink()", from);
          return false;
        }
        return true;
      }
      log_error(LogLevel::Crit, log, errno, "rename() \"%s\" to \"%s\" failed", tmp.c_str(),
                to.c_str());
      if (::unlink(tmp.c_str()) < 0) log_failed(LogLevel::Crit, log, errno, "unlink()", tmp);
    }
    err = 0;
  }
  return failed();
}

bool walk_tree(const std::string& dir, const TreeHandlers& h, const Log& log) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    log_failed(LogLevel::Crit, log, errno, "opendir()", dir);
    return false;
  }
  bool ok = true;
  while (ok) {
    errno = 0;
    dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) {
        log_failed(LogLevel::Crit, log, errno, "readdir()", dir);
        ok = false;
      }
      break;
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    std::string path = dir + "/" + e->d_name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
      log_failed(LogLevel::Crit, log, errno, "lstat()", path);
      ok = false;
      break;
    }
    if (S_ISREG(st.st_mode)) {
      ok = !h.file || h.file(path, st);
    } else if (S_ISDIR(st.st_mode)) {
      ok = (!h.pre_dir || h.pre_dir(path, st)) && walk_tree(path, h, log) &&
           (!h.post_dir || h.post_dir(path, st));
    } else {
      ok = !h.special || h.special(path, st);
    }
  }
  ::closedir(d);
  return ok;
}

}  // namespace weir
