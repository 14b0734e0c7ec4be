// Opening files for the static, index and try_files handlers: one call that opens (or only stats) a
// path and reports what it is, with nginx's error distinctions. With open_file_cache, a worker
// keeps descriptors and what stat said for hot files (revalidated every open_file_cache_valid), so
// a hit costs no open/fstat/close; for small files it also keeps the content and the formatted
// Last-Modified and ETag, so a response is one write. A cached snapshot is coherent: size, dates
// and bytes come from the same validation. nginx: src/core/ngx_open_file_cache.c
// (ngx_open_cached_file)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/log.h"
#include "core/pool.h"
#include "core/str.h"
#include "http/file_watch.h"

namespace weir::http {

// disable_symlinks: which symbolic links a path may go through.
enum class SymlinkRule : uint8_t { Off, On, IfNotOwner };

struct OpenFileInfo {
  int fd = -1;
  ino_t uniq = 0;
  time_t mtime = 0;
  off_t size = 0;
  int err = 0;
  const char* failed = nullptr;  // the call that failed ("open()", "stat()")
  bool test_only = false;        // stat, do not open
  bool test_dir = false;
  bool is_dir = false;
  bool is_file = false;
  bool is_link = false;
  bool is_exec = false;
  bool errors = false;  // open_file_cache_errors
  time_t valid = 60;    // open_file_cache_valid, seconds
  unsigned min_uses = 1;
  // In: the file the caller knows the path to name (its inode, the HTTP cache's entry); a cached
  // descriptor of another is not used, however fresh. 0: any.
  ino_t expect_uniq = 0;
  // In: when the newest byte of the request arrived (Connection::rx_ns; 0: not known). The default
  // cache reads its change events only for a request that may be newer than their last read.
  int64_t arrived_ns = 0;
  // In: disable_symlinks, and the length of the path's part before which it is not checked
  // (from=). With a rule, the path is opened a component at a time and no cache is used.
  SymlinkRule symlinks = SymlinkRule::Off;
  size_t symlinks_from = 0;
  // From the cache, for small regular files: the whole content and the formatted validators.
  std::string_view data;
  std::string_view last_modified_text;
  std::string_view etag_text;
};

class OpenFileCache {
 public:
  OpenFileCache(size_t max, time_t inactive) : max_(max), inactive_(inactive) {}
  // The default cache (no open_file_cache configured): never stale, kept so by a FileWatch rather
  // than by open_file_cache_valid; errors are not kept, and the content of small files up to
  // content_max bytes in all.
  OpenFileCache(size_t max, time_t inactive, size_t content_max, const Log* log);
  ~OpenFileCache();
  OpenFileCache(const OpenFileCache&) = delete;
  OpenFileCache& operator=(const OpenFileCache&) = delete;

  bool lookup(std::string_view path, OpenFileInfo& of, Pool& pool);
  size_t size() const { return map_.size(); }
  bool watched() const { return watch_ != nullptr; }

  // Files up to this size keep their content in the cache.
  static constexpr off_t kContentMax = 32 * 1024;

 private:
  struct Entry;
  using Hash = StringViewHash;
  void touch(Entry* e);
  void unlink(Entry* e);
  void retire(Entry* e);  // out of the map; closed when the last request using it is done
  void expire(time_t now);
  void fill(const Entry& e, OpenFileInfo& of, Pool& pool);
  bool refresh(Entry& e, OpenFileInfo& of);
  static void release(void* entry);

  void forget(std::string_view path, bool tree);
  void forget_all();

  std::unordered_map<std::string, Entry*, Hash, std::equal_to<>> map_;
  Entry* head_ = nullptr;  // most recently used
  Entry* tail_ = nullptr;
  size_t max_;
  time_t inactive_;
  size_t content_max_ = SIZE_MAX;  // bytes of file content kept, in all
  size_t content_bytes_ = 0;
  std::unique_ptr<FileWatch> watch_;
  bool fd_budget_set_ = false;  // max_ bounded by the worker's RLIMIT_NOFILE (default cache)
};

// Opens or stats path (NUL-terminated), through the cache when there is one. A descriptor it
// returns stays open until the pool is released. Returns false with of.err / of.failed set.
bool open_cached_file(OpenFileCache* cache, std::string_view path, OpenFileInfo& of, Pool& pool);

// What a failed open (of.err) answers, as nginx's static handlers answer it: 404 when the file is
// not there, 403 when it may not be opened, else 500; logged at error level, or crit for a 500.
struct OpenFailure {
  int status;
  bool crit;
};
OpenFailure open_failure(int err);

}  // namespace weir::http
