// The HTTP cache's ground (#12), shared by proxy_cache_path and its fastcgi / uwsgi / scgi twins:
// the path's parameters, the key's MD5 and the file it names in nginx's layout (the levels'
// directories taken from the end of the name, so tools that find a cached file by its key work),
// the file's header (what was stored, until when it is fresh, where the body starts, and the
// "KEY:" line nginx writes), and the index of the keys zone: a red-black tree of the keys with an
// LRU queue, in shared memory every worker sees, kept across reloads.
// nginx: src/http/ngx_http_file_cache.c, src/core/ngx_file.c (ngx_create_hashed_filename)
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conf/cycle.h"
#include "core/md5.h"
#include "core/queue.h"
#include "core/rbtree.h"
#include "core/status.h"

namespace weir::http {

inline constexpr size_t kCacheMaxLevels = 3;
// The fixed part of a cache file's header (the loader takes shorter files for damaged ones).
inline constexpr size_t kCacheFixedHeaderSize = 72;

// proxy_cache_path path [levels=] keys_zone=name:size [inactive=] [max_size=] [use_temp_path=].
struct CachePathConf {
  std::string path;                               // absolute, without a trailing '/'
  std::array<uint8_t, kCacheMaxLevels> levels{};  // characters per directory level; 0 ends
  std::string zone_name;
  size_t zone_size = 0;
  int64_t inactive = 600;  // seconds an entry stays without a request
  int64_t max_size = -1;   // bytes; -1: no limit
  int64_t min_free = 0;    // bytes the file system keeps free; 0: no limit
  bool use_temp_path = true;
  // The cache loader: files per iteration, the pause between iterations and an iteration's longest
  // time (ms); the cache manager's the same for the files it deletes.
  int64_t loader_files = 100, loader_sleep = 50, loader_threshold = 200;
  int64_t manager_files = 100, manager_sleep = 50, manager_threshold = 200;
};

// The directive's arguments after its name (the path first), relative paths under prefix; the
// errors are nginx's.
Result<CachePathConf> parse_cache_path(std::string_view directive,
                                       std::span<const std::string> args, std::string_view prefix);

using CacheKey = Md5Digest;      // the MD5 of the key's text
using CacheVariant = Md5Digest;  // the MD5 of the fields Vary names

CacheKey cache_key(std::string_view text);
std::string cache_key_hex(const CacheKey& key);
// The file a key names: path/<levels>/<32 hex digits>, each level's directory named by the
// characters before the previous level's, from the end ("levels=1:2": .../c/29/b7f5...029c).
std::string cache_file_name(const CachePathConf& conf, const CacheKey& key);
// The same name written into out, which holds cache_file_name_size(conf) bytes (no heap: a HIT
// names its file in the request's pool).
size_t cache_file_name_size(const CachePathConf& conf);
void put_cache_file_name(std::span<char> out, const CachePathConf& conf, const CacheKey& key);

// What a cache file begins with, before the upstream's header as it came and the body.
struct CacheFileHeader {
  int64_t valid_sec = 0;  // fresh until (Unix time)
  int64_t date = 0;       // when stored
  int64_t last_modified = -1;
  // Cache-Control's stale-while-revalidate and stale-if-error: seconds past valid_sec the entry
  // may still be sent while it is being updated, or when the upstream fails.
  int64_t updating_sec = 0;
  int64_t error_sec = 0;
  // A response with Vary: the MD5 of the request's values of the fields it names (zero: no Vary).
  CacheVariant variant{};
  uint32_t header_start = 0;  // the upstream's header: from here
  uint32_t body_start = 0;    // to here; the body after
};

// The file's first bytes: the fixed header, then "\nKEY: " key "\n" (header_start is its end).
std::string cache_file_prefix(CacheFileHeader h, std::string_view key);
size_t cache_file_prefix_size(std::string_view key);
// Reads the header from the file's first bytes (at least the prefix); an error says why the file
// is not this key's or is damaged (a miss, logged by the caller).
Result<CacheFileHeader> read_cache_file_header(std::string_view bytes, std::string_view key,
                                               off_t file_size);
// A revalidated entry's new lifetime, written into its file's header in place.
Status update_cache_file_validity(int fd, int64_t valid_sec, int64_t date);

// One key in the index.
struct CacheNode {
  RbNode rb;  // rb.key: the key's first bytes
  QueueNode lru;
  CacheKey key{};
  uint32_t uses = 0;      // requests for it (proxy_cache_min_uses)
  int64_t valid_sec = 0;  // its file is fresh until then
  int64_t expire = 0;     // dropped when not asked for by then (inactive)
  int64_t fs_size = 0;    // its file's size on disk
  uint32_t body_start = 0;
  ino_t uniq = 0;          // its file's inode: an open descriptor of an older file is not used
  uint64_t lock_time = 0;  // proxy_cache_lock: the fetching request holds the key until (ms)
  bool exists = false;     // a file is stored for it
  bool updating = false;   // a request is fetching it
  static CacheNode* of_lru(QueueNode* q);
};

// The keys zone's shared part.
struct CacheIndex {
  RbTree tree;
  QueueNode lru;     // most recently used first
  int64_t size = 0;  // the stored files' sizes on disk
  size_t count = 0;
  bool cold = true;  // the files on disk are not in the index yet (the loader's work)

  // All under the zone's mutex.
  CacheNode* find(const CacheKey& key) const;
  // The key's node, made when missing (the least recently used nodes not being fetched give way
  // when the zone is full: their keys go to evicted, for the caller to delete their files);
  // nullptr when nothing can give way.
  CacheNode* find_or_add(SlabPool& slab, const CacheKey& key, int64_t now, int64_t inactive,
                         std::vector<CacheKey>* evicted = nullptr);
  void touch(CacheNode& n, int64_t now, int64_t inactive);
  void remove(SlabPool& slab, CacheNode& n);
  // The least recently used node not being fetched that has expired by now, or (over max_size)
  // any such node; nullptr when none.
  CacheNode* oldest_to_drop(int64_t now, int64_t max_size) const;
};

// The keys zone's init: a new index, or the one of the configuration before (a reload).
Status init_cache_zone(SharedZone& zone, void* old_data);
CacheIndex& cache_index(const SharedZone& zone);

}  // namespace weir::http
