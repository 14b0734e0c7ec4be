#include "http/open_file.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/file.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/file_watch.h"

namespace weir::http {

namespace {

void close_fd(void* data) {
  ::close(static_cast<int>(reinterpret_cast<intptr_t>(data)));
}

void fill_stat(OpenFileInfo& of, const struct stat& st) {
  of.uniq = st.st_ino;
  of.mtime = st.st_mtime;
  of.size = st.st_size;
  of.is_dir = S_ISDIR(st.st_mode);
  of.is_file = S_ISREG(st.st_mode);
  of.is_link = S_ISLNK(st.st_mode);
  of.is_exec = (st.st_mode & S_IXUSR) != 0;
}

// openat() of one component, for if_not_owner: refused (ELOOP) when it is a link whose owner is
// not its target's. Both sides are compared even when it is no link: a link put there between the
// two calls is caught so. nginx: ngx_openat_file_owner
int openat_owner(int at, const char* name, int flags) {
  int fd = ::openat(at, name, flags);
  if (fd < 0) return -1;
  struct stat link, target;
  int err = ELOOP;
  if (::fstatat(at, name, &link, AT_SYMLINK_NOFOLLOW) < 0 || ::fstat(fd, &target) < 0) {
    err = errno;
  } else if (link.st_uid == target.st_uid) {
    return fd;
  }
  ::close(fd);
  errno = err;
  return -1;
}

// Opens path under disable_symlinks, a component at a time from the from= part (opened as it is)
// or from "/", each directory with O_NOFOLLOW (on) or checked by owner (if_not_owner), so that a
// link where none may be fails with ELOOP (or ENOTDIR for a directory's, as O_DIRECTORY says).
// nginx: ngx_open_file_wrapper
int open_walk(const char* path, size_t len, const OpenFileInfo& of, int flags,
              const char*& failed) {
  constexpr int kSearch = O_PATH | O_DIRECTORY | O_CLOEXEC;
  const char* p = path;
  const char* end = path + len;
  char name[PATH_MAX];
  int at = AT_FDCWD;
  failed = "openat()";
  if (of.symlinks_from != 0) {
    if (of.symlinks_from >= sizeof name) {
      errno = ENAMETOOLONG;
      return -1;
    }
    std::memcpy(name, path, of.symlinks_from);
    name[of.symlinks_from] = '\0';
    at = ::open(name, kSearch | O_NONBLOCK);
    failed = "open()";
    p = path + of.symlinks_from + 1;
  } else if (*p == '/') {
    at = ::open("/", kSearch | O_NONBLOCK);
    p++;
  }
  if (at == -1) return -1;
  failed = "openat()";
  bool owner = of.symlinks == SymlinkRule::IfNotOwner;
  int fd = -1;
  for (;;) {
    const auto* slash = static_cast<const char*>(std::memchr(p, '/', static_cast<size_t>(end - p)));
    size_t n = static_cast<size_t>((slash != nullptr ? slash : end) - p);
    if (n >= sizeof name) {
      errno = ENAMETOOLONG;
      break;
    }
    std::memcpy(name, p, n);
    name[n] = '\0';
    if (slash == nullptr) {
      // The last component; "." reopens the directory a trailing slash named.
      const char* last = n == 0 ? "." : name;
      fd = owner ? openat_owner(at, last, flags) : ::openat(at, last, flags | O_NOFOLLOW);
      break;
    }
    p = slash + 1;
    if (n == 0) continue;
    int next = owner ? openat_owner(at, name, kSearch | O_NONBLOCK)
                     : ::openat(at, name, kSearch | O_NONBLOCK | O_NOFOLLOW);
    if (next < 0) break;
    if (at != AT_FDCWD) ::close(at);
    at = next;
  }
  int err = errno;
  if (at != AT_FDCWD) ::close(at);
  errno = err;
  return fd;
}

// Opens (or stats) a path without any cache. The fd, if any, is the caller's.
bool open_and_stat(const char* p, OpenFileInfo& of) {
  struct stat st;
  of.fd = -1;
  of.err = 0;
  // Under disable_symlinks a stat too is an open, through the walk (nginx: ngx_file_info_wrapper).
  bool walk = of.symlinks != SymlinkRule::Off;
  if (of.test_only && !walk) {
    if (::stat(p, &st) < 0) {
      of.err = errno;
      of.failed = "stat()";
      return false;
    }
    fill_stat(of, st);
    return true;
  }
  constexpr int kFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
  of.failed = "open()";
  int fd = walk ? open_walk(p, std::strlen(p), of, kFlags, of.failed) : ::open(p, kFlags);
  if (fd < 0) {
    of.err = errno;
    return false;
  }
  if (::fstat(fd, &st) < 0) {
    of.err = errno;
    of.failed = "fstat()";
    ::close(fd);
    return false;
  }
  fill_stat(of, st);
  if (of.is_dir || of.test_only) {
    ::close(fd);  // directories are reported, not kept open
    return true;
  }
  of.fd = fd;
  return true;
}

// Opens path for this request alone: the pool closes the descriptor.
bool open_uncached(std::string_view path, OpenFileInfo& of, Pool& pool) {
  if (!open_and_stat(path.data(), of)) return false;
  if (of.fd >= 0) pool.add_cleanup(close_fd, reinterpret_cast<void*>(static_cast<intptr_t>(of.fd)));
  return true;
}

}  // namespace

struct OpenFileCache::Entry {
  std::string name;
  int fd = -1;
  int err = 0;
  const char* failed = nullptr;
  OpenFileInfo info;   // what stat said
  time_t created = 0;  // when last validated
  time_t accessed = 0;
  unsigned uses = 0;
  unsigned refs = 0;  // requests using fd or data now
  bool dead = false;  // no longer in the cache: freed when refs drops to 0
  char* data = nullptr;
  size_t data_len = 0;
  char last_modified[clock::kHttpTimeLen];
  char etag[40];
  size_t etag_len = 0;
  Entry* prev = nullptr;
  Entry* next = nullptr;
  size_t* content_bytes = nullptr;  // the cache's count of content kept

  void drop_content() {
    std::free(data);
    if (content_bytes != nullptr) *content_bytes -= data_len;
    data = nullptr;
    data_len = 0;
  }
  void close_fd() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  // The content of a small regular file (while the cache's content_max allows) and the
  // validators, read at (re)validation.
  void load(const OpenFileInfo& of, size_t content_max = SIZE_MAX) {
    info = of;
    info.fd = -1;
    drop_content();
    clock::format_http_time(last_modified, of.mtime);
    char* p = etag;
    *p++ = '"';
    p = put_hex(p, static_cast<uint64_t>(of.mtime));
    *p++ = '-';
    p = put_hex(p, static_cast<uint64_t>(of.size));
    *p++ = '"';
    etag_len = static_cast<size_t>(p - etag);
    size_t kept = content_bytes != nullptr ? *content_bytes : 0;
    if (fd >= 0 && of.is_file && of.size <= OpenFileCache::kContentMax &&
        kept + static_cast<size_t>(of.size) <= content_max) {
      size_t n = static_cast<size_t>(of.size);
      data = static_cast<char*>(std::malloc(n ? n : 1));
      File f;
      f.fd = fd;
      if (data == nullptr || read_file(f, data, n, 0) != static_cast<ssize_t>(n)) {
        drop_content();  // changing under us: serve it from the file
      } else {
        data_len = n;
        if (content_bytes != nullptr) *content_bytes += n;
      }
    }
  }
};

OpenFileCache::OpenFileCache(size_t max, time_t inactive, size_t content_max, const Log* log)
    : max_(max),
      inactive_(inactive),
      content_max_(content_max),
      watch_(std::make_unique<FileWatch>(log)) {}

OpenFileCache::~OpenFileCache() {
  for (auto& [name, e] : map_) {
    e->close_fd();
    e->drop_content();
    delete e;
  }
}

void OpenFileCache::unlink(Entry* e) {
  if (e->prev != nullptr) {
    e->prev->next = e->next;
  } else if (head_ == e) {
    head_ = e->next;
  }
  if (e->next != nullptr) {
    e->next->prev = e->prev;
  } else if (tail_ == e) {
    tail_ = e->prev;
  }
  e->prev = e->next = nullptr;
}

void OpenFileCache::touch(Entry* e) {
  if (head_ == e) return;
  unlink(e);
  e->next = head_;
  if (head_ != nullptr) head_->prev = e;
  head_ = e;
  if (tail_ == nullptr) tail_ = e;
}

void OpenFileCache::retire(Entry* e) {
  unlink(e);
  map_.erase(e->name);
  e->dead = true;
  if (e->refs == 0) {
    e->close_fd();
    e->drop_content();
    delete e;
  }
}

void OpenFileCache::release(void* entry) {
  auto* e = static_cast<Entry*>(entry);
  if (--e->refs == 0 && e->dead) {
    e->close_fd();
    e->drop_content();
    delete e;
  }
}

void OpenFileCache::expire(time_t now) {
  // Like nginx, at most two inactive entries per lookup: the cost stays flat.
  for (int i = 0; i < 2 && tail_ != nullptr && now - tail_->accessed > inactive_; i++)
    retire(tail_);
}

void OpenFileCache::forget(std::string_view path, bool tree) {
  if (!tree) {
    if (auto it = map_.find(path); it != map_.end()) retire(it->second);
    return;
  }
  std::vector<Entry*> gone;
  for (auto& [name, e] : map_) {
    if (name.starts_with(path) &&
        (name.size() == path.size() || name[path.size()] == '/' || path == "/")) {
      gone.push_back(e);
    }
  }
  for (Entry* e : gone) retire(e);
}

void OpenFileCache::forget_all() {
  while (tail_ != nullptr) retire(tail_);
}

void OpenFileCache::fill(const Entry& e, OpenFileInfo& of, Pool& pool) {
  bool test_only = of.test_only;
  time_t valid = of.valid;
  unsigned min_uses = of.min_uses;
  bool errors = of.errors;
  ino_t expect_uniq = of.expect_uniq;
  of = e.info;
  of.expect_uniq = expect_uniq;
  of.test_only = test_only;
  of.valid = valid;
  of.min_uses = min_uses;
  of.errors = errors;
  of.fd = e.fd;
  of.last_modified_text = {e.last_modified, clock::kHttpTimeLen};
  of.etag_text = {e.etag, e.etag_len};
  of.data = e.data != nullptr ? std::string_view(e.data, e.data_len) : std::string_view();
  if (e.fd >= 0 || e.data != nullptr) {
    auto* me = const_cast<Entry*>(&e);
    me->refs++;
    pool.add_cleanup(release, me);
  }
}

// Re-stats an entry whose validity ran out. False when the path now names another file (or
// nothing).
bool OpenFileCache::refresh(Entry& e, OpenFileInfo& of) {
  struct stat st;
  if (::stat(e.name.c_str(), &st) < 0) return false;
  if (e.err != 0 || st.st_ino != e.info.uniq || (e.fd < 0 && !e.info.is_dir && !of.test_only))
    return false;
  OpenFileInfo now;
  fill_stat(now, st);
  if (now.mtime != e.info.mtime || now.size != e.info.size) {
    // Changed in place: the same descriptor, new size and dates, the content read again.
    e.load(now, content_max_);
  }
  e.created = clock::now();
  return true;
}

bool OpenFileCache::lookup(std::string_view path, OpenFileInfo& of, Pool& pool) {
  time_t now = clock::now();
  if (watch_ != nullptr) {
    if (!fd_budget_set_) {
      // The default cache keeps at most an eighth of the worker's descriptors open, so that a
      // worker left at a low RLIMIT_NOFILE (1024 under systemd) still accepts its connections.
      fd_budget_set_ = true;
      struct rlimit rl {};
      if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        max_ = std::min(max_, std::max<size_t>(16, static_cast<size_t>(rl.rlim_cur) / 8));
      }
    }
    // What changed before this request came is forgotten before it is answered.
    if (watch_->may_be_newer(of.arrived_ns)) {
      watch_->drain([this](const FileWatch::Change& c) {
        if (c.all) {
          forget_all();
        } else {
          forget(c.path, c.tree);
        }
      });
    }
    of.errors = false;
    of.min_uses = 1;
  }
  expire(now);
  auto it = map_.find(path);
  if (it != map_.end()) {
    Entry* e = it->second;
    e->uses++;
    e->accessed = now;
    touch(e);
    bool fresh = (watch_ != nullptr || now - e->created < of.valid) &&
                 (of.expect_uniq == 0 || e->err != 0 || e->info.uniq == of.expect_uniq);
    if (fresh || refresh(*e, of)) {
      if (e->err != 0) {
        of.err = e->err;
        of.failed = e->failed;
        return false;
      }
      if (e->fd < 0 && !e->info.is_dir && !of.test_only) {
        // Known from a stat (or not used often enough to be kept open): open it now.
        OpenFileInfo opened = of;
        if (!open_and_stat(e->name.c_str(), opened)) {
          of.err = opened.err;
          of.failed = opened.failed;
          retire(e);
          return false;
        }
        if (e->uses < of.min_uses) {
          pool.add_cleanup(close_fd, reinterpret_cast<void*>(static_cast<intptr_t>(opened.fd)));
          of = opened;
          return true;
        }
        e->fd = opened.fd;
        e->load(opened, content_max_);
        e->created = now;
      }
      fill(*e, of, pool);
      return true;
    }
    retire(e);  // another file (or none) now: start afresh
  }

  if (watch_ != nullptr && !watch_->watch(path)) return open_uncached(path, of, pool);
  if (!open_and_stat(path.data(), of)) {
    if (of.errors &&
        (of.err == ENOENT || of.err == ENOTDIR || of.err == EACCES || of.err == ENAMETOOLONG)) {
      auto* e = new Entry();
      e->name = std::string(path);
      e->err = of.err;
      e->failed = of.failed;
      e->created = e->accessed = now;
      e->uses = 1;
      map_.emplace(e->name, e);
      touch(e);
    }
    return false;
  }
  if (map_.size() >= max_ && tail_ != nullptr) retire(tail_);
  auto* e = new Entry();
  e->name = std::string(path);
  e->created = e->accessed = now;
  e->uses = 1;
  e->content_bytes = &content_bytes_;
  if (of.fd >= 0 && of.min_uses > 1) {
    // Not used often enough yet to be kept open: remembered, but this request closes the
    // descriptor.
    e->load(of, content_max_);
    map_.emplace(e->name, e);
    touch(e);
    pool.add_cleanup(close_fd, reinterpret_cast<void*>(static_cast<intptr_t>(of.fd)));
    return true;
  }
  e->fd = of.fd;
  e->load(of, content_max_);
  map_.emplace(e->name, e);
  touch(e);
  fill(*e, of, pool);
  return true;
}

bool open_cached_file(OpenFileCache* cache, std::string_view path, OpenFileInfo& of, Pool& pool) {
  if (cache != nullptr && of.symlinks == SymlinkRule::Off) return cache->lookup(path, of, pool);
  return open_uncached(path, of, pool);
}

OpenFailure open_failure(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
      return {404, false};
    case EACCES:
    case EMLINK:
    case ELOOP:
      return {403, false};
    default:
      return {500, true};
  }
}

}  // namespace weir::http
