// What keeps the default file cache never stale: an inotify instance per worker watching every
// directory on the way to a cached file, so that a rename, write, truncate, delete, chmod or
// unmount anywhere on that way is known before the next request is served. The cache drains the
// events at each lookup (one read that finds nothing, in the common case) and forgets the paths
// they name. A mount or unmount (a tmpfs or bind mount put on, or lazily taken off, a served
// directory) raises no inotify event on the paths it changes: the mount table's poll, in the
// worker's event loop, says so, and everything kept is forgotten then (mounts change seldom). Where
// watching cannot work (no inotify instance or watch left, a filesystem without events such as NFS
// or FUSE, a symbolic link on the way) the path is not cached: it is opened per request as nginx
// without a cache opens it, and that is logged once.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/log.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/connection.h"

namespace weir::http {

class FileWatch {
 public:
  explicit FileWatch(const Log* log) : log_(log) {}
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // Watches the directories from "/" to path's parent; false when path cannot be kept (see above).
  bool watch(std::string_view path);

  // What the events since the last drain changed. prefix: a directory whose whole tree is to be
  // forgotten; exact: one path. all: every cached path (the event queue overflowed).
  struct Change {
    std::string path;
    bool tree = false;
    bool all = false;
  };
  // Reads the events queued when it is called and calls forget(Change) for each (F: void(const
  // Change&)). Events that come while it runs are left for the next call: a log written into a
  // watched directory must not keep it reading.
  template <class F>
  void drain(F&& forget) {
    drained_ns_ = clock::wall_ns();
    drained_offset_ns_ = clock::wall_offset_ns();
    if (fd_ < 0) return;
    if (mounts_changed_) {
      mounts_changed_ = false;
      unwatch_tree("/");  // the paths may name other directories now
      forget(Change{"", false, true});
    }
    for (bool more = true; more;) {
      more = read_events();
      for (const Change& c : changes_) forget(c);
    }
  }

  // Whether a request whose newest byte arrived at arrived_ns (the kernel's receive time, the wall
  // clock's ns; 0: not known) may follow a change the last drain did not read: each change
  // queues its event when it is made, so one made before such a request came was read by a drain
  // that began after the request had come. That lets a busy worker read the queue once for all
  // the requests that came together. The comparison needs the wall clock not to have been set
  // since that drain (its offset from the monotonic clock, as the event loop last read them, has
  // not moved), and no unmount to be pending.
  bool may_be_newer(int64_t arrived_ns) const {
    if (arrived_ns == 0 || arrived_ns >= drained_ns_ || mounts_changed_) return true;
    int64_t moved = clock::wall_offset_ns() - drained_offset_ns_;
    return moved > kClockJitterNs || moved < -kClockJitterNs;
  }

 private:
  // How far the offset of the wall clock from the monotonic one may move between two readings of
  // the pair without the wall clock having been set (the two reads are not simultaneous).
  static constexpr int64_t kClockJitterNs = 100000;

  bool start();
  void watch_mounts();
  static void mounts_event(Event& ev);
  bool read_events();  // fills changes_; true when the read filled the buffer (more may wait)
  void unwatch_tree(const std::string& dir);
  bool add_dir(const std::string& dir);
  void log_once(int err, const char* what, std::string_view path);

  const Log* log_;
  int fd_ = -1;
  bool failed_ = false;  // no inotify instance: nothing is cached
  bool logged_ = false;
  std::unordered_map<std::string, int, StringViewHash, std::equal_to<>> dirs_;  // path -> wd
  std::unordered_map<int, std::string> wds_;
  std::vector<Change> changes_;
  Connection* mounts_ = nullptr;  // /proc/self/mountinfo in the event loop
  bool mounts_changed_ = false;
  // When the last drain began (the event loop's cached wall clock, which is no later), and the
  // wall clock's offset from the monotonic one then.
  int64_t drained_ns_ = 0;
  int64_t drained_offset_ns_ = 0;
};

}  // namespace weir::http
