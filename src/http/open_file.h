// Opening files for the static, index and try_files handlers: one call that opens (or only stats) a path and
// reports what it is, with nginx's error distinctions; open_file_cache keeps descriptors and results of
// hot files so they cost no open/fstat/close.
// nginx: src/core/ngx_open_file_cache.c (ngx_open_cached_file)
#pragma once

#include <sys/types.h>

#include <ctime>
#include <string_view>

#include "core/pool.h"

namespace weir::http {

struct OpenFileInfo {
  int fd = -1;
  ino_t uniq = 0;
  time_t mtime = 0;
  off_t size = 0;
  int err = 0;
  const char* failed = nullptr;  // the call that failed ("open()", "stat()")
  bool test_only = false;        // stat, do not open
  bool test_dir = false;         // a directory is fine
  bool is_dir = false;
  bool is_file = false;
  bool is_link = false;
  bool is_exec = false;
  bool errors = false;  // cache errors too (open_file_cache_errors)
  bool events = false;
  uint64_t valid = 0;    // open_file_cache_valid, ms
  unsigned min_uses = 1;
};

class OpenFileCache;

// Opens or stats path (NUL-terminated). A descriptor it returns stays open until the pool is released
// (or belongs to the cache). Returns false with of.err / of.failed set.
bool open_cached_file(OpenFileCache* cache, std::string_view path, OpenFileInfo& of, Pool& pool);

}  // namespace weir::http
