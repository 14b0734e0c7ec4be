// The HTTP cache on the upstream lifecycle (#12), once for proxy and its fastcgi / uwsgi / scgi
// twins: the directives' values (proxy_cache_path, proxy_cache, proxy_cache_key, _valid, _methods,
// _bypass, proxy_no_cache, _min_uses), the look-up before the upstream is asked (a HIT is sent
// from its file with sendfile and the upstream is never asked), the decision once the upstream's
// header is read whether the response is kept (proxy_cache_valid, X-Accel-Expires, Cache-Control,
// Expires; never with Set-Cookie or Vary), and the file: the event pipe spills every byte of a
// kept response to a temp file that begins with the cache header, moved into place when the body
// came whole. The stored header is the upstream's answer as HTTP/1 lines, whatever the protocol,
// so a HIT is read back by one parser. nginx: ngx_http_upstream_cache*, ngx_http_file_cache.c
#pragma once

#include <cstdint>
#include <vector>

#include "conf/setting.h"
#include "upstream/file_cache.h"
#include "upstream/upstream.h"

namespace weir::http {

// One proxy_cache_path: its keys zone's data.
struct CachePath {
  CachePathConf conf;
  TempPath dir;  // conf.path, made at start; the temp files' place with use_temp_path=off
  SharedZone* zone = nullptr;
  const Log* log = nullptr;  // the cycle's: the cache manager and loader write to it
};

// proxy_cache_valid [code ...] time.
struct CacheValid {
  int status = 0;  // 0: any
  int64_t seconds = 0;
};

// A location's cache directives.
struct CacheSettings {
  int enabled = -1;  // -1: unset; 0: off; 1: zone (or value)
  SharedZone* zone = nullptr;
  // proxy_cache with variables: the value names the zone per request ("" or "off": none), among
  // the configuration's keys zones.
  ComplexValue* value = nullptr;
  std::vector<SharedZone*>* zones = nullptr;
  ComplexValue* key = nullptr;  // nullptr: the protocol's (UpstreamProtocol::cache_key)
  std::vector<CacheValid>* valid = nullptr;
  Setting<uint32_t> methods;  // kGet | kHead | kPost
  std::vector<ComplexValue>* bypass = nullptr;
  std::vector<ComplexValue>* no_cache = nullptr;
  Setting<int64_t> min_uses;
  Setting<uint32_t> use_stale;  // kNext* bits, kStaleUpdating; kNextOff: off
  Setting<bool> revalidate, convert_head;
  Setting<bool> lock;
  Setting<uint64_t> lock_timeout, lock_age;  // ms
  Setting<off_t> max_range_offset;           // a range starting further is passed on, not kept
  Setting<bool> background_update;
};

// proxy_cache_use_stale's "updating" (its other conditions are the kNext* bits).
inline constexpr uint32_t kStaleUpdating = 0x10000;

// $upstream_cache_status's values.
enum class CacheStatus : uint8_t { Miss, Bypass, Expired, Stale, Updating, Revalidated, Hit };

// Whether the response is an entry sent from its file (HIT, and the expired entry's statuses).
constexpr bool sent_from_file(CacheStatus s) {
  return s == CacheStatus::Hit || s == CacheStatus::Stale || s == CacheStatus::Updating ||
         s == CacheStatus::Revalidated;
}

// A cache file opened for a request: its header read, its body to be sent from it.
struct CacheEntry {
  File* file = nullptr;
  off_t size = 0;
  CacheFileHeader header;
  Buffer* buffer = nullptr;  // the file's first buffer_size bytes
  // The whole file, when the open-file cache keeps it (small files): the body is sent from it.
  std::string_view data;
};

// A request's part in the cache (Upstream::cache).
struct UpstreamCache {
  SharedZone* zone = nullptr;
  const CachePath* path = nullptr;
  std::string_view key_text;
  CacheKey key{};          // the file's: the main key's, or a variant's (Vary)
  CacheKey main_key{};     // the MD5 of key_text
  CacheVariant variant{};  // the kept response's (Vary), zero: none
  bool secondary = false;  // key is a variant's
  CacheStatus status = CacheStatus::Miss;
  bool may_store = true;         // min_uses reached (nginx's "scarce" otherwise)
  bool store = false;            // this response goes to the cache
  bool convert_head = false;     // a HEAD is fetched (and kept) as a GET
  bool updating = false;         // this request marked the key as being fetched
  bool stale_error = false;      // the expired entry may stand in for a failure (stale-if-error)
  uint64_t lock_wait_until = 0;  // proxy_cache_lock: the waiting ends then (ms)
  // An expired entry kept open while the upstream is asked: sent instead when the upstream fails
  // (proxy_cache_use_stale) or says it has not changed (proxy_cache_revalidate).
  CacheEntry stale;
  int64_t valid_sec = 0;  // the kept response is fresh until then
  int64_t updating_sec = 0, error_sec = 0;
  uint32_t body_start = 0;  // where its body begins in the file
};

namespace cache_detail {

Status set_cache(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status set_key(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status add_valid(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status set_methods(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status add_bypass(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status add_no_cache(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status set_min_uses(ConfContext& cf, const ConfNode& n, CacheSettings& s);
Status set_use_stale(ConfContext& cf, const ConfNode& n, CacheSettings& s);
// proxy_cache_path and its twins (the directive's name says which).
Status cache_path(ConfContext& cf, const ConfNode& n);

}  // namespace cache_detail

// Inherits the outer level's settings; the result the lifecycle runs by (nullptr: no cache).
// default_key: the protocol makes the key when none is written (else one must be).
Result<const CacheSettings*> merge_cache_settings(ConfContext& cf, std::string_view prefix,
                                                  const CacheSettings& prev, CacheSettings& conf,
                                                  bool default_key);

// Before the request is built: a fresh entry is sent from its file, or the request waits while
// another fetches the key (proxy_cache_lock; init_upstream runs again after) - true: the request
// is taken care of; otherwise u.cache notes the key and status and the upstream is asked (false).
bool serve_from_cache(Request& r, Upstream& u);
// The upstream's header is read: whether the response is kept (u.cache->store).
void decide_caching(Request& r, Upstream& u);
// The upstream failed (ft: the kNext* condition) and no other peer takes the request: the expired
// entry is sent instead when proxy_cache_use_stale (or stale-if-error) allows (true: answered).
bool serve_stale(Request& r, Upstream& u, uint32_t ft);
// The upstream answered a revalidation with 304: the expired entry is fresh again and sent (true).
bool serve_revalidated(Request& r, Upstream& u);
// The event pipe starts with a response to keep: its temp file, in the cache's place, begins with
// the cache header (false: it cannot be made; the response is not kept).
bool start_cache_file(Request& r, Upstream& u, EventPipe& p);
// The body ended (complete: as the upstream framed it): the file is moved into place and the
// index told, or dropped with its temp file.
void finish_cache_file(Request& r, Upstream& u, bool complete);

// $upstream_cache_status.
std::string_view cache_status_name(CacheStatus s);
// $upstream_cache_last_modified, $upstream_cache_etag: the expired entry's validators while it is
// revalidated (proxy sends them as If-Modified-Since and If-None-Match); empty otherwise.
std::string_view cache_last_modified(Request& r);
std::string_view cache_etag(Request& r);

}  // namespace weir::http
