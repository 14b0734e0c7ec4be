// Whole-file operations: moving a finished temp file into place (creating its directories, copying
// across file systems), copying a file with its access and time, and walking a directory tree.
// proxy_store and dav's PUT, COPY and MOVE rest on them. nginx: src/core/ngx_file.c
// (ngx_ext_rename_file, ngx_copy_file, ngx_walk_tree)
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/log.h"

namespace weir {

struct RenameOptions {
  uint32_t access = 0;         // the file's mode, set before the move (0: left as it is)
  uint32_t path_access = 0;    // for the directories create_path makes (searchable where readable)
  time_t time = -1;            // the file's modification time, set before the move (-1: left)
  bool create_path = false;    // the destination's missing directories are made
  bool delete_source = false;  // a move that fails deletes the source
};

// Renames from to to as RenameOptions say; false (logged at crit, in nginx's words) when it fails.
bool ext_rename_file(const std::string& from, const std::string& to, const RenameOptions& o,
                     const Log& log);

// Copies from to to (truncated), with mode access (0: from's) and modification time (-1: from's);
// false when it fails (logged).
bool copy_file(const std::string& from, const std::string& to, uint32_t access, time_t time,
               const Log& log);

// Sets a file's (or directory's) modification and access time; false (errno set) when it fails.
bool set_file_time(const std::string& path, time_t time);

// The directory mode for a file mode: searchable where readable. nginx: ngx_dir_access
constexpr uint32_t dir_access(uint32_t access) {
  return access | (access & 0444) >> 2;
}

// What walk_tree calls for each entry below a directory (names with their full paths; the entry's
// lstat). A handler returning false stops the walk.
struct TreeHandlers {
  std::function<bool(const std::string&, const struct stat&)> file;
  std::function<bool(const std::string&, const struct stat&)> pre_dir;   // before its entries
  std::function<bool(const std::string&, const struct stat&)> post_dir;  // after them
  std::function<bool(const std::string&, const struct stat&)> special;   // not a file or directory
};

// Walks the tree below dir (not dir itself), depth first; false when a directory cannot be read
// (logged at crit) or a handler stopped it.
bool walk_tree(const std::string& dir, const TreeHandlers& h, const Log& log);

}  // namespace weir
