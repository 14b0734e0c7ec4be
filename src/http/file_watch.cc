#include "http/file_watch.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <utility>
#include <vector>

#include "event/event_loop.h"

namespace weir::http {

namespace {

// What a directory on the way to a cached file may do that changes what a path names or holds.
// (Creation is left out: only what exists is cached, and a name is taken over by a move or only
// after a delete, both seen.)
constexpr uint32_t kMask = IN_ATTRIB | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW |
                           IN_EXCL_UNLINK;

// Filesystems whose changes made elsewhere (another client, the FUSE daemon) raise no event.
bool without_events(long type) {
  switch (type) {
    case NFS_SUPER_MAGIC:
    case SMB_SUPER_MAGIC:
    case static_cast<long>(0xFF534D42):  // CIFS
    case static_cast<long>(0xFE534D42):  // SMB2
    case 0x65735546:                     // FUSE
    case V9FS_MAGIC:
    case CEPH_SUPER_MAGIC:
    case AFS_SUPER_MAGIC:
    case CODA_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

}  // namespace

FileWatch::~FileWatch() {
  if (fd_ >= 0) ::close(fd_);
  if (mounts_ != nullptr) close_connection(*mounts_);
}

void FileWatch::watch_mounts() {
  if (log_ == nullptr || ConnectionPool::current == nullptr || EventLoop::current == nullptr)
    return;
  int fd = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  Connection* c = ConnectionPool::current->get(fd, *log_);
  if (c == nullptr) {
    ::close(fd);
    return;
  }
  c->data = this;
  c->idle = true;  // an exiting worker closes it (mounts_event)
  c->read.handler = c->write.handler = mounts_event;
  if (EventLoop::current->add_connection(*c) != Rc::Ok) {
    close_connection(*c);
    return;
  }
  mounts_ = c;
}

void FileWatch::mounts_event(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* self = static_cast<FileWatch*>(c->data);
  if (c->close) {
    self->mounts_ = nullptr;
    close_connection(*c);
    return;
  }
  // The table changed: its poll says so with an error (the readable state it always has is
  // reported once, when it is added).
  if (!c->pending_error) return;
  c->pending_error = false;
  self->mounts_changed_ = true;
}

void FileWatch::log_once(int err, const char* what, std::string_view path) {
  if (logged_ || log_ == nullptr) return;
  logged_ = true;
  log_error(LogLevel::Notice, *log_, err,
            "%s \"%.*s\": files on that way are opened per request, not cached", what,
            static_cast<int>(path.size()), path.data());
}

bool FileWatch::start() {
  if (fd_ >= 0) return true;
  if (failed_) return false;
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    failed_ = true;
    if (log_ != nullptr) {
      log_error(LogLevel::Notice, *log_, errno,
                "inotify_init1() failed: files are opened per request, not cached");
    }
    return false;
  }
  watch_mounts();
  return true;
}

bool FileWatch::add_dir(const std::string& dir) {
  if (dirs_.contains(dir)) return true;
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) == 0 && without_events(static_cast<long>(fs.f_type))) {
    log_once(0, "the filesystem sends no change events at", dir);
    return false;
  }
  int wd = ::inotify_add_watch(fd_, dir.c_str(), kMask);
  if (wd < 0) {
    // ENOTDIR: a symbolic link (not followed), whose target may change unseen; ENOSPC: no watch
    // left (fs.inotify.max_user_watches); ENOENT/EACCES: the open will say.
    if (errno != ENOTDIR && errno != ENOENT && errno != EACCES) {
      log_once(errno, "inotify_add_watch() failed for", dir);
    }
    return false;
  }
  // A directory watched again under another name (a rename seen before) is one watch: the new
  // name replaces the old.
  if (auto it = wds_.find(wd); it != wds_.end()) dirs_.erase(it->second);
  dirs_.emplace(dir, wd);
  wds_[wd] = dir;
  return true;
}

bool FileWatch::watch(std::string_view path) {
  // Only a path in one spelling: events name a file by its directory's watched name, so "a//b"
  // (merge_slashes off) would leave "a/b" unseen.
  if (path.empty() || path[0] != '/' || path.find("//") != std::string_view::npos || !start()) {
    return false;
  }
  std::string dir;
  dir.reserve(path.size());
  for (size_t slash = 0; slash != std::string_view::npos;) {
    size_t next = path.find('/', slash + 1);
    if (next == std::string_view::npos) break;  // the last part is the file itself
    dir.assign(path.substr(0, slash == 0 ? 1 : slash));
    if (!add_dir(dir)) return false;
    slash = next;
  }
  // The path's parent (or "/" for "/name").
  size_t last = path.rfind('/');
  dir.assign(path.substr(0, last == 0 ? 1 : last));
  if (!add_dir(dir)) return false;
  // The file itself must not be a symbolic link: its target's changes raise no event here.
  struct stat st {};
  return ::lstat(std::string(path).c_str(), &st) == 0 && !S_ISLNK(st.st_mode);
}

void FileWatch::unwatch_tree(const std::string& dir) {
  std::string prefix = dir;
  if (prefix != "/") prefix += '/';
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (it->first == dir || it->first.starts_with(prefix)) {
      ::inotify_rm_watch(fd_, it->second);
      wds_.erase(it->second);
      it = dirs_.erase(it);
    } else {
      ++it;
    }
  }
}

bool FileWatch::read_events() {
  alignas(inotify_event) char buf[8192];
  changes_.clear();
  ssize_t n = ::read(fd_, buf, sizeof buf);
  if (n <= 0) return false;
  for (char* p = buf; p < buf + n;) {
    auto* ev = reinterpret_cast<inotify_event*>(p);
    p += sizeof(inotify_event) + ev->len;
    if (ev->mask & IN_Q_OVERFLOW) {
      changes_.emplace_back().all = true;
      continue;
    }
    auto it = wds_.find(ev->wd);
    if (it == wds_.end()) continue;  // a watch removed since
    Change& c = changes_.emplace_back();
    c.path = it->second;
    std::string_view name = ev->len != 0 ? std::string_view(ev->name) : std::string_view();
    if (name.empty()) {
      // The directory itself: renamed, deleted, unmounted, its permissions changed.
      c.tree = true;
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED))
        unwatch_tree(c.path);
      continue;
    }
    if (c.path != "/") c.path += '/';
    c.path += name;
    c.tree = (ev->mask & IN_ISDIR) != 0 || dirs_.contains(c.path);
    if (c.tree) unwatch_tree(c.path);
  }
  // A read returns whole events: room left for the largest one means the queue was emptied.
  return static_cast<size_t>(n) > sizeof buf - (sizeof(inotify_event) + NAME_MAX + 1);
}

}  // namespace weir::http
