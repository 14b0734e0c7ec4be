// Files as buffers see them (fd + name + log), positional reads and chain writes, and temp files
// created under a `*_temp_path` with its hashed sub-directory levels. nginx: src/core/ngx_file.c,
// src/os/unix/ngx_files.c
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/status.h"

namespace weir {

struct File {
  int fd = -1;
  std::string_view name;
  const Log* log = nullptr;
  off_t offset = 0;  // end of what was written, for sequential writes
  // directio: the descriptor has O_DIRECT; reads go by blocks of this alignment (read_file_direct)
  // and never through sendfile.
  bool directio = false;
  uint32_t alignment = 512;
};

// pread until size bytes or EOF; returns bytes read or -1 (errno set).
ssize_t read_file(const File& file, char* buf, size_t size, off_t offset);
// The same from an O_DIRECT descriptor: the aligned blocks around [offset, offset + size) are read
// into a buffer of the calling thread's and the range copied out (buf needs no alignment).
ssize_t read_file_direct(const File& file, char* buf, size_t size, off_t offset);
// Writes the in-memory buffers of a chain at offset (pwritev); returns bytes written or -1.
ssize_t write_chain_to_file(File& file, ChainLink* cl, off_t offset);

// A `*_temp_path` directive's value: where temp files go and how they are spread over
// sub-directories.
struct TempPath {
  std::string name;
  std::array<int, 3> level{0, 0, 0};
};

struct TempFile {
  File file;
  const TempPath* path = nullptr;
  bool persistent = false;  // keep the file (client_body_in_file_only on)
  bool clean = false;       // remove it at cleanup (client_body_in_file_only clean)
};

// Creates a fresh temp file under path (making level directories as needed); unless persistent it
// is unlinked at once, and it is closed when the pool is released. The error names the call and
// the file that failed.
Status create_temp_file(TempFile& tf, Pool& pool, const TempPath& path);

// Creates a directory and its parents (mkdir -p), with mode (0700 unless said).
Status create_full_path(const std::string& dir, uint32_t mode = 0700);

}  // namespace weir
