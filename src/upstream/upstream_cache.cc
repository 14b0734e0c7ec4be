#include "upstream/upstream_cache.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "conf/cycle.h"
#include "core/shm_mutex.h"
#include "core/slab.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/filter.h"
#include "http/open_file.h"
#include "http/request.h"
#include "http/script.h"
#include "http/subrequest.h"
#include "upstream/event_pipe.h"
#include "upstream/http1_response.h"
#include "upstream/lifecycle.h"
#include "upstream/upstream_headers.h"

namespace weir::http {

namespace {

// The keys zones of every protocol's *_cache_path: a zone one protocol declares, another may use.
constexpr char kCacheZoneTag = 0;

// Whether any of the values is neither empty nor "0" (proxy_cache_bypass, proxy_no_cache).
// nginx: ngx_http_test_predicates
bool any_true(Request& r, const std::vector<ComplexValue>* values) {
  if (values == nullptr) return false;
  for (const ComplexValue& v : *values) {
    std::string_view s = v.eval(r);
    if (!s.empty() && s != "0") return true;
  }
  return false;
}

// The files of keys that left the index (evicted, expired, over max_size).
void delete_files(const Log& log, const CachePath& path, const std::vector<CacheKey>& keys) {
  for (const CacheKey& key : keys) {
    std::string name = cache_file_name(path.conf, key);
    WEIR_DEBUG(log, "http file cache expire: \"%s\"", name.c_str());
    if (::unlink(name.c_str()) < 0 && errno != ENOENT) {
      log_error(LogLevel::Crit, log, errno, "unlink() \"%s\" failed", name.c_str());
    }
  }
}

// The index no longer has a file for the key (it was deleted behind its back, or found damaged).
void forget_file(UpstreamCache& c) {
  ShmLock lock(c.zone->slab->mutex());
  CacheIndex& index = cache_index(*c.zone);
  if (CacheNode* n = index.find(c.key); n != nullptr && n->exists) {
    index.size -= n->fs_size;
    n->exists = false;
  }
}

// What a file takes on disk (max_size and the loader count it so, as nginx's).
int64_t disk_usage(const struct stat& st) {
  return std::max<int64_t>(st.st_size, static_cast<int64_t>(st.st_blocks) * 512);
}

// The entry's stored header becomes u.headers_in (the length is the file's); false when it does
// not parse (a damaged file, logged).
bool load_entry_header(Request& r, Upstream& u, const CacheEntry& e) {
  u.headers_in = UpstreamHeadersIn{};
  u.buffer = *e.buffer;
  u.buffer.pos = e.buffer->start + e.header.header_start;
  u.buffer.last = e.buffer->start + e.header.body_start;
  Http1Response parser;
  parser.protocol = "cache";
  if (http1_process_header(r, parser) != HeaderResult::Done) {
    log_error(LogLevel::Crit, r.log(), 0, "cache file \"%.*s\" has a damaged header",
              static_cast<int>(e.file->name.size()), e.file->name.data());
    return false;
  }
  u.headers_in.content_length_n = e.size - static_cast<off_t>(e.header.body_start);
  u.headers_in.chunked = false;
  find_accel_headers(u);
  return true;
}

// An entry is the answer: its header (in u.headers_in) is the response's, its body goes out from
// the file with sendfile. The request ends here.
void send_entry(Request& r, Upstream& u, const CacheEntry& e, CacheStatus status) {
  UpstreamCache& c = *u.cache;
  c.status = status;
  c.store = c.may_store = false;
  if (Code rc = copy_headers(r, u); rc != Rc::Ok) {
    finalize_request(r, rc);
    return;
  }
  if (u.protocol->rewrite_headers != nullptr) u.protocol->rewrite_headers(r);
  r.read_event_handler = block_reading;
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) {
    finalize_request(r, rc);
    return;
  }
  Buffer* b;
  if (u.headers_in.content_length_n > 0) {
    b = r.pool->make<Buffer>();
    if (static_cast<off_t>(e.data.size()) == e.size) {
      // The open-file cache holds the file: header and body leave in one write.
      b->start = b->pos = const_cast<char*>(e.data.data()) + e.header.body_start;
      b->end = b->last = const_cast<char*>(e.data.data()) + e.data.size();
      b->memory = true;
    } else {
      b->in_file = true;
      b->file = e.file;
      b->file_pos = e.header.body_start;
      b->file_last = e.size;
    }
    b->last_buf = &r == r.main;
    b->last_in_chain = true;
  } else {
    b = Buffer::create_special(*r.pool, &r == r.main, false);
    b->last_in_chain = true;
  }
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  finalize_request(r, output_filter(r, cl));
}

// The key's file, opened (through the location's open_file_cache, a descriptor of the file the
// index knows, uniq) and its header read; nullptr when there is none or it is not this key's or is
// damaged (logged as nginx's lines, and the index told).
CacheEntry* open_entry(Request& r, UpstreamCache& c, size_t buffer_size, ino_t uniq, bool probing) {
  size_t name_size = cache_file_name_size(c.path->conf);
  char* name = r.pool->alloc_bytes(name_size + 1);
  put_cache_file_name({name, name_size}, c.path->conf, c.key);
  name[name_size] = '\0';
  std::string_view path(name, name_size);
  const CoreLocConf& clcf = core_loc(r);
  OpenFileInfo of;
  init_open_file_info(r, clcf, of);
  of.expect_uniq = uniq;
  if (!open_cached_file(clcf.open_file_cache, path, of, *r.pool) || !of.is_file) {
    if (of.err != ENOENT && of.err != ENOTDIR && of.err != 0) {
      log_error(LogLevel::Crit, r.log(), of.err, "%s \"%s\" failed", of.failed, name);
    }
    if (!probing) forget_file(c);
    return nullptr;
  }
  auto* file = r.pool->make<File>();
  file->fd = of.fd;  // closed with the pool, or kept by the open-file cache
  file->name = path;
  file->log = r.connection->log;
  size_t want = std::min<size_t>(buffer_size, static_cast<size_t>(of.size));
  Buffer* b = Buffer::create_temp(*r.pool, buffer_size);
  if (!of.data.empty()) {
    std::memcpy(b->start, of.data.data(), want);
  } else if (read_file(*file, b->start, want, 0) != static_cast<ssize_t>(want)) {
    log_error(LogLevel::Crit, r.log(), errno, "pread() \"%s\" failed", name);
    return nullptr;
  }
  Result<CacheFileHeader> h = read_cache_file_header({b->start, want}, c.key_text, of.size);
  if (!h.ok() || h->body_start > want) {
    log_error(LogLevel::Crit, r.log(), 0, "cache file \"%s\" %s", name,
              h.ok() ? "has too long header" : h.status().message().c_str());
    forget_file(c);
    return nullptr;
  }
  auto* e = r.pool->make<CacheEntry>();
  *e = CacheEntry{file, of.size, *h, b, of.data};
  return e;
}

// While a request fetches a key (node.updating), others with an expired entry may send it
// (proxy_cache_use_stale updating); the mark goes when the request ends, however it ends.
void clear_updating(void* data) {
  auto& c = *static_cast<UpstreamCache*>(data);
  if (!c.updating) return;
  c.updating = false;
  ShmLock lock(c.zone->slab->mutex());
  if (CacheNode* n = cache_index(*c.zone).find(c.key)) n->updating = false;
}

// proxy_cache_max_range_offset: a range that starts at or past it (or from the end) goes to the
// upstream as asked and nothing is kept. nginx: ngx_http_upstream_cache_check_range
bool range_beyond(Request& r, off_t max) {
  const Header* h = r.headers_in.range;
  if (h == nullptr || max == std::numeric_limits<off_t>::max()) return false;
  if (max == 0) return true;
  std::string_view v = h->value;
  if (v.size() < 7 || !iequals(v.substr(0, 6), "bytes=")) return false;
  v.remove_prefix(6);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  if (!v.empty() && v.front() == '-') return true;
  off_t offset = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') break;
    offset = offset * 10 + (ch - '0');
    if (offset >= max) return true;
  }
  return false;
}

// A field of the entry's stored header ("vary", "etag": lower case), or empty.
std::string_view stored_field(const CacheEntry& e, std::string_view name) {
  std::string_view head(e.buffer->start + e.header.header_start,
                        e.header.body_start - e.header.header_start);
  for (size_t at = head.find("\r\n"); at != std::string_view::npos;
       at = head.find("\r\n", at + 2)) {
    std::string_view line = head.substr(at + 2);
    line = line.substr(0, line.find("\r\n"));
    if (line.size() > name.size() && line[name.size()] == ':' &&
        iequals(line.substr(0, name.size()), name)) {
      return trim_ows(line.substr(name.size() + 1));
    }
  }
  return {};
}

// The request's variant for a Vary value: the MD5 of each named field's name and values.
// nginx: ngx_http_file_cache_vary
CacheVariant request_variant(Request& r, std::string_view vary) {
  Md5 md5;
  while (!vary.empty()) {
    size_t comma = vary.find(',');
    std::string_view name = trim_ows(vary.substr(0, comma));
    vary = comma == std::string_view::npos ? std::string_view() : vary.substr(comma + 1);
    if (name.empty()) continue;
    for (char ch : name) {
      char low = to_lower(ch);
      md5.update({&low, 1});
    }
    md5.update(":");
    for (const Header* h : r.headers_in.headers) {
      if (h->hash == 0 || !iequals(h->lowcase_key, name)) continue;
      md5.update(h->value);
      md5.update(",");
    }
    md5.update("\n");
  }
  return md5.final();
}

// Where a variant other than the main key's is kept: the MD5 of the key's and the variant's.
CacheKey variant_key(const CacheKey& main, const CacheVariant& variant) {
  Md5 md5;
  md5.update({reinterpret_cast<const char*>(main.data()), main.size()});
  md5.update({reinterpret_cast<const char*>(variant.data()), variant.size()});
  return md5.final();
}

void lock_wait_handler(Request& r) {
  if (r.connection->write.delayed) return;  // woken early: the timer still runs
  r.read_event_handler = block_reading;
  r.write_event_handler = request_empty_handler;
  init_upstream(r);
}

// proxy_cache_lock, for a key with no entry: the first request fetches it (holding the key for
// lock_age), the others wait for its entry, looking every half second, for up to lock_timeout;
// then they go to the upstream themselves and keep nothing. True: the request waits.
// nginx: ngx_http_file_cache_lock, ngx_http_file_cache_lock_wait
bool lock_or_wait(Request& r, Upstream& u, const CacheSettings& cs) {
  UpstreamCache& c = *u.cache;
  if (!*cs.lock) return false;
  uint64_t now = clock::msec();
  int64_t held = 0;  // ms the key stays another's
  bool was_updating = c.updating;
  {
    ShmLock lock(c.zone->slab->mutex());
    CacheNode* n = cache_index(*c.zone).find(c.key);
    if (n == nullptr) return false;
    held = static_cast<int64_t>(n->lock_time - now);
    if (!n->updating || held <= 0) {
      n->updating = c.updating = true;
      n->lock_time = now + *cs.lock_age;
    }
  }
  if (c.updating) {
    if (!was_updating) r.pool->add_cleanup(clear_updating, &c);
    return false;
  }
  if (c.lock_wait_until == 0) c.lock_wait_until = now + *cs.lock_timeout;
  if (now >= c.lock_wait_until) {
    log_error(LogLevel::Info, r.log(), 0, "cache lock timeout");
    c.may_store = false;
    return false;
  }
  uint64_t wait = std::min<uint64_t>({500, static_cast<uint64_t>(held), c.lock_wait_until - now});
  Connection& conn = *r.connection;
  r.read_event_handler = test_reading;
  r.write_event_handler = lock_wait_handler;
  conn.write.delayed = true;
  add_timer(conn.write, wait);
  return true;
}

// X-Accel-Expires: seconds from now, or "@" a Unix time; 0: not cached. nginx:
// ngx_http_upstream_process_accel_expires
void accel_expires(std::string_view v, int64_t now, bool& cacheable, int64_t& valid) {
  bool at = v.starts_with('@');
  if (at) v.remove_prefix(1);
  auto n = parse_int(v);
  if (!n) return;
  if (at) {
    valid = *n;
  } else if (*n == 0) {
    cacheable = false;
  } else {
    valid = now + *n;
  }
}

// The digits after name= in a Cache-Control value; -1: not there; -2: not a number.
int64_t cache_control_number(std::string_view v, std::string_view name) {
  size_t at = ifind(v, name);
  if (at == std::string_view::npos) return -1;
  int64_t n = 0;
  for (size_t i = at + name.size(); i < v.size(); i++) {
    char ch = v[i];
    if (ch == ',' || ch == ';' || ch == ' ') break;
    if (ch < '0' || ch > '9') return -2;
    n = n * 10 + (ch - '0');
  }
  return n;
}

// The longest Vary value a response is kept with (nginx's NGX_HTTP_CACHE_VARY_LEN).
constexpr size_t kMaxVary = 128;

// What a response's header says of its lifetime in a cache.
struct Validity {
  bool cacheable = true;
  int64_t valid = 0;     // fresh until; 0: the header does not say
  int64_t updating = 0;  // stale-while-revalidate
  int64_t error = 0;     // stale-if-error
};

// Cache-Control: no-cache, no-store and private keep the response out; s-maxage or max-age give
// its lifetime (0: not kept), stale-while-revalidate and stale-if-error its grace. nginx:
// ngx_http_upstream_process_cache_control
void cache_control(std::string_view v, int64_t now, bool lifetime, Validity& out) {
  if (ifind(v, "no-cache") != std::string_view::npos ||
      ifind(v, "no-store") != std::string_view::npos ||
      ifind(v, "private") != std::string_view::npos) {
    out.cacheable = false;
    return;
  }
  int64_t n = cache_control_number(v, "s-maxage=");
  if (n == -1) n = cache_control_number(v, "max-age=");
  if (lifetime && n != -1) {
    if (n <= 0) {
      out.cacheable = false;
      return;
    }
    out.valid = now + n;
  }
  int64_t updating = cache_control_number(v, "stale-while-revalidate=");
  int64_t error = cache_control_number(v, "stale-if-error=");
  if (updating == -2 || error == -2) {
    out.cacheable = false;
    return;
  }
  if (updating >= 0) out.updating = out.error = updating;
  if (error >= 0) out.error = error;
}

int64_t valid_for_status(const std::vector<CacheValid>* list, int status) {
  if (list == nullptr) return 0;
  for (const CacheValid& v : *list) {
    if (v.status == status || v.status == 0) return v.seconds;
  }
  return 0;
}

// The upstream's answer as the cache file keeps it: an HTTP/1 status line and header lines (the
// framing and hop-by-hop ones left out: the body is stored as it is, and its length is the file's).
std::string stored_header(const UpstreamHeadersIn& in) {
  std::string out = "HTTP/1.1 ";
  if (in.status_line.size() > 3) {
    out += in.status_line;
  } else {
    out += std::to_string(in.status);
  }
  out += "\r\n";
  for (const Header* h : in.headers) {
    std::string_view k = h->lowcase_key;
    if (k == "transfer-encoding" || k == "connection" || k == "keep-alive" ||
        k == "content-length") {
      continue;
    }
    out += h->key;
    out += ": ";
    out += h->value;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

// The cache manager's pass over one path: the least recently used entries past their inactive
// time, or while the path is over max_size or its file system under min_free, leave the index and
// the disk, at most manager_files of them or for manager_threshold; then the time until the next
// pass (manager_sleep when there was more to do). nginx: ngx_http_file_cache_manager
uint64_t manage_cache(void* data, bool (*stop)()) {
  auto& path = *static_cast<CachePath*>(data);
  const CachePathConf& conf = path.conf;
  SharedZone& zone = *path.zone;
  uint64_t started = clock::msec();
  std::vector<CacheKey> dropped;
  for (int64_t files = 0;; files++) {
    int64_t now = clock::now();
    bool need_space = false;
    if (conf.min_free > 0) {
      struct statvfs fs {};
      need_space = ::statvfs(conf.path.c_str(), &fs) == 0 &&
                   static_cast<int64_t>(fs.f_bavail * fs.f_frsize) < conf.min_free;
    }
    int64_t wait = 10;  // seconds until the least recently used entry expires
    bool found = false;
    {
      ShmLock lock(zone.slab->mutex());
      CacheIndex& index = cache_index(zone);
      if (CacheNode* n = index.oldest_to_drop(now, need_space ? 0 : conf.max_size)) {
        if (n->exists) dropped.push_back(n->key);
        index.remove(*zone.slab, *n);
        found = true;
      } else if (QueueNode* q = index.lru.back()) {
        wait = std::clamp<int64_t>(CacheNode::of_lru(q)->expire - now, 1, 10);
      }
    }
    delete_files(*path.log, path, dropped);
    dropped.clear();
    if (!found) return static_cast<uint64_t>(wait) * 1000;
    if (stop()) return 0;
    clock::update();
    if (files + 1 >= conf.manager_files ||
        clock::msec() - started >= static_cast<uint64_t>(conf.manager_threshold)) {
      return static_cast<uint64_t>(conf.manager_sleep);
    }
  }
}

// The loader's walk (nftw passes no context of its own).
struct LoaderWalk {
  CachePath* path = nullptr;
  bool (*stop)() = nullptr;
  int64_t files = 0;
  uint64_t started = 0;
};
LoaderWalk g_walk;

bool is_hex_name(std::string_view name) {
  return name.size() == 32 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// One file under the path: a cache file goes into the index (its freshness is read from its
// header when it is asked for); anything else but a temp file in the making is deleted, as nginx's.
int load_file(const char* name, const struct stat* st, int type, FTW* ftw) {
  if (type != FTW_F) return 0;
  CachePath& path = *g_walk.path;
  const Log& log = *path.log;
  std::string_view base(name + ftw->base);
  bool temp = !base.empty() &&
              std::all_of(base.begin(), base.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (temp) return 0;
  if (!is_hex_name(base) || st->st_size < static_cast<off_t>(kCacheFixedHeaderSize)) {
    if (is_hex_name(base))
      log_error(LogLevel::Crit, log, 0, "cache file \"%s\" is too small", name);
    if (::unlink(name) < 0 && errno != ENOENT) {
      log_error(LogLevel::Crit, log, errno, "unlink() \"%s\" failed", name);
    }
    return 0;
  }
  CacheKey key{};
  for (size_t i = 0; i < key.size(); i++) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    key[i] = static_cast<uint8_t>(nibble(base[2 * i]) << 4 | nibble(base[2 * i + 1]));
  }
  SharedZone& zone = *path.zone;
  std::vector<CacheKey> evicted;
  {
    ShmLock lock(zone.slab->mutex());
    CacheIndex& index = cache_index(zone);
    if (index.find(key) == nullptr) {
      if (CacheNode* n =
              index.find_or_add(*zone.slab, key, clock::now(), path.conf.inactive, &evicted)) {
        n->exists = true;
        n->uses = 1;
        n->fs_size = disk_usage(*st);
        n->uniq = st->st_ino;
        index.size += n->fs_size;
      }
    }
  }
  delete_files(log, path, evicted);
  clock::update();
  if (++g_walk.files >= path.conf.loader_files ||
      clock::msec() - g_walk.started >= static_cast<uint64_t>(path.conf.loader_threshold)) {
    ::usleep(static_cast<useconds_t>(path.conf.loader_sleep) * 1000);
    clock::update();
    g_walk.files = 0;
    g_walk.started = clock::msec();
  }
  return g_walk.stop() ? 1 : 0;
}

// The cache loader: the files a path holds from before the start go into the index, once per
// zone (a reload keeps the zone and what the loader found). nginx: ngx_http_file_cache_loader
void load_cache(void* data, bool (*stop)()) {
  auto& path = *static_cast<CachePath*>(data);
  SharedZone& zone = *path.zone;
  {
    ShmLock lock(zone.slab->mutex());
    if (!cache_index(zone).cold) return;
  }
  g_walk = LoaderWalk{&path, stop, 0, clock::msec()};
  if (::nftw(path.conf.path.c_str(), load_file, 16, FTW_PHYS) != 0) return;  // stopped
  int64_t size;
  {
    ShmLock lock(zone.slab->mutex());
    cache_index(zone).cold = false;
    size = cache_index(zone).size;
  }
  struct statvfs fs {};
  size_t bsize = ::statvfs(path.conf.path.c_str(), &fs) == 0 ? fs.f_bsize : 512;
  log_error(LogLevel::Notice, *path.log, 0, "http file cache: %s %.3fM, bsize: %zu",
            path.conf.path.c_str(), static_cast<double>(size) / (1024 * 1024), bsize);
}

}  // namespace

namespace {

// The expired entry being revalidated, or nullptr.
const CacheEntry* revalidating(Request& r) {
  Upstream* u = r.upstream;
  if (u == nullptr || u->cache == nullptr || u->cache->status != CacheStatus::Expired ||
      u->cache->stale.file == nullptr || !*u->conf->cache->revalidate) {
    return nullptr;
  }
  return &u->cache->stale;
}

}  // namespace

std::string_view cache_last_modified(Request& r) {
  const CacheEntry* e = revalidating(r);
  if (e == nullptr || e->header.last_modified < 0) return {};
  char* buf = r.pool->alloc_bytes(32);
  char* end = clock::format_http_time(buf, e->header.last_modified);
  return {buf, static_cast<size_t>(end - buf)};
}

std::string_view cache_etag(Request& r) {
  const CacheEntry* e = revalidating(r);
  return e == nullptr ? std::string_view() : stored_field(*e, "etag");
}

std::string_view cache_status_name(CacheStatus s) {
  switch (s) {
    case CacheStatus::Miss:
      return "MISS";
    case CacheStatus::Bypass:
      return "BYPASS";
    case CacheStatus::Expired:
      return "EXPIRED";
    case CacheStatus::Stale:
      return "STALE";
    case CacheStatus::Updating:
      return "UPDATING";
    case CacheStatus::Revalidated:
      return "REVALIDATED";
    case CacheStatus::Hit:
      return "HIT";
  }
  return "MISS";
}

namespace cache_detail {

Status set_cache(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  if (s.enabled != -1) return Status::error("is duplicate");
  const std::string& name = n.args[1];
  if (name == "off") {
    s.enabled = 0;
    return {};
  }
  if (name.find('$') != std::string::npos) {
    auto* value = cf.pool.make<ComplexValue>();
    if (Status st = value->compile(cf, name); !st.ok()) return st;
    s.value = value;
    s.enabled = 1;
    return {};
  }
  Result<SharedZone*> zone = cf.cycle.add_zone(name, 0, &kCacheZoneTag);
  if (!zone.ok()) return zone.status();
  s.zone = *zone;
  s.enabled = 1;
  return {};
}

Status set_key(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  if (s.key != nullptr) return Status::error("is duplicate");
  auto* key = cf.pool.make<ComplexValue>();
  if (Status st = key->compile(cf, n.args[1]); !st.ok()) return st;
  s.key = key;
  return {};
}

// proxy_cache_valid [code ...] time: without codes, 200, 301 and 302.
Status add_valid(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  const std::string& time = n.args.back();
  auto seconds = parse_time(time, true);
  if (!seconds) return cf.errorf("invalid time value \"%s\"", time.c_str());
  if (s.valid == nullptr) s.valid = cf.pool.make<std::vector<CacheValid>>();
  if (n.args.size() == 2) {
    for (int status : {200, 301, 302}) s.valid->push_back({status, *seconds});
    return {};
  }
  for (size_t i = 1; i + 1 < n.args.size(); i++) {
    const std::string& code = n.args[i];
    if (code == "any") {
      s.valid->push_back({0, *seconds});
      continue;
    }
    auto status = parse_int(code);
    if (!status || *status < 100 || *status > 599) {
      return cf.errorf("invalid status \"%s\"", code.c_str());
    }
    s.valid->push_back({static_cast<int>(*status), *seconds});
  }
  return {};
}

Status set_methods(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  static constexpr EnumName<uint32_t> kMethods[] = {
      {"GET", kGet},
      {"HEAD", kHead},
      {"POST", kPost},
  };
  if (Status st = add_bits(cf, n, kMethods, s.methods); !st.ok()) return st;
  s.methods = *s.methods | kGet | kHead;  // always cached, as in nginx
  return {};
}

namespace {

Status add_predicates(ConfContext& cf, const ConfNode& n, std::vector<ComplexValue>*& list) {
  if (list == nullptr) list = cf.pool.make<std::vector<ComplexValue>>();
  for (size_t i = 1; i < n.args.size(); i++) {
    ComplexValue v;
    if (Status st = v.compile(cf, n.args[i]); !st.ok()) return st;
    list->push_back(std::move(v));
  }
  return {};
}

}  // namespace

Status add_bypass(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  return add_predicates(cf, n, s.bypass);
}

Status add_no_cache(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  return add_predicates(cf, n, s.no_cache);
}

Status set_min_uses(ConfContext&, const ConfNode& n, CacheSettings& s) {
  if (s.min_uses.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  s.min_uses = std::max<int64_t>(*v, 1);  // 0, which nginx takes, counts as 1 there too
  return {};
}

Status set_use_stale(ConfContext& cf, const ConfNode& n, CacheSettings& s) {
  static constexpr EnumName<uint32_t> kBits[] = {
      {"error", kNextError},
      {"timeout", kNextTimeout},
      {"invalid_header", kNextInvalidHeader},
      {"updating", kStaleUpdating},
      {"http_500", kNext500},
      {"http_502", kNext502},
      {"http_503", kNext503},
      {"http_504", kNext504},
      {"http_403", kNext403},
      {"http_404", kNext404},
      {"http_429", kNext429},
      {"off", kNextOff},
  };
  return add_bits(cf, n, kBits, s.use_stale);
}

Status cache_path(ConfContext& cf, const ConfNode& n) {
  std::span<const std::string> args(n.args);
  Result<CachePathConf> conf = parse_cache_path(n.name(), args.subspan(1), cf.cycle.prefix);
  if (!conf.ok()) return cf.error(conf.status().message());  // nginx's words name no directive
  Result<SharedZone*> zone = cf.cycle.add_zone(conf->zone_name, conf->zone_size, &kCacheZoneTag);
  if (!zone.ok()) return zone.status();
  if ((*zone)->data != nullptr) {
    return Status::errorf("duplicate zone \"%s\"", conf->zone_name.c_str());
  }
  auto* path = cf.pool.make<CachePath>();
  path->conf = std::move(*conf);
  path->dir.name = path->conf.path;
  path->zone = *zone;
  path->log = &cf.cycle.log;
  if (Status s = cf.cycle.add_path(&path->dir); !s.ok()) return s;
  (*zone)->data = path;
  (*zone)->init = init_cache_zone;
  cf.cycle.managed_paths.push_back({manage_cache, load_cache, path});
  return {};
}

}  // namespace cache_detail

Result<const CacheSettings*> merge_cache_settings(ConfContext& cf, std::string_view prefix,
                                                  const CacheSettings& prev, CacheSettings& conf,
                                                  bool default_key) {
  if (conf.enabled == -1) {
    conf.enabled = prev.enabled;
    conf.zone = prev.zone;
    conf.value = prev.value;
  }
  if (conf.key == nullptr) conf.key = prev.key;
  if (conf.valid == nullptr) conf.valid = prev.valid;
  conf.methods.merge(prev.methods, kGet | kHead);
  if (conf.bypass == nullptr) conf.bypass = prev.bypass;
  if (conf.no_cache == nullptr) conf.no_cache = prev.no_cache;
  conf.min_uses.merge(prev.min_uses, 1);
  conf.use_stale.merge(prev.use_stale, 0);
  if (*conf.use_stale & kNextOff) conf.use_stale = 0;
  conf.revalidate.merge(prev.revalidate, false);
  conf.convert_head.merge(prev.convert_head, true);
  conf.lock.merge(prev.lock, false);
  conf.lock_timeout.merge(prev.lock_timeout, 5000);
  conf.lock_age.merge(prev.lock_age, 5000);
  conf.max_range_offset.merge(prev.max_range_offset, std::numeric_limits<off_t>::max());
  conf.background_update.merge(prev.background_update, false);
  if (conf.enabled != 1) return static_cast<const CacheSettings*>(nullptr);
  if (conf.value != nullptr) {
    conf.zones = cf.pool.make<std::vector<SharedZone*>>();
    for (SharedZone& z : cf.cycle.zones) {
      if (z.tag == &kCacheZoneTag && z.data != nullptr) conf.zones->push_back(&z);
    }
  } else if (conf.zone->data == nullptr) {
    return cf.errorf("\"%.*s_cache\" zone \"%s\" is unknown", static_cast<int>(prefix.size()),
                     prefix.data(), conf.zone->name.c_str());
  }
  if (conf.key == nullptr && !default_key) {
    std::string p(prefix);
    return cf.error("no \"" + p + "_cache_key\" for \"" + p + "_cache\"");
  }
  return static_cast<const CacheSettings*>(&conf);
}

namespace {

// proxy_cache with variables: the zone the value names; nullptr with none ("", "off"), or with
// nginx's line when no zone has the name (the request fails).
SharedZone* zone_named(Request& r, const CacheSettings& cs, bool& failed) {
  std::string_view name = cs.value->eval(r);
  if (name.empty() || name == "off") return nullptr;
  for (SharedZone* z : *cs.zones) {
    if (z->name == name) return z;
  }
  log_error(LogLevel::Error, r.log(), 0, "cache \"%.*s\" not found", static_cast<int>(name.size()),
            name.data());
  failed = true;
  return nullptr;
}

}  // namespace

bool serve_from_cache(Request& r, Upstream& u) {
  const CacheSettings* cs = u.conf->cache;
  if (cs == nullptr || !(r.method & *cs->methods)) return false;
  // Again after waiting for the lock: the key, its use and what the wait knew stay.
  UpstreamCache* c = u.cache;
  bool again = c != nullptr;
  if (!again) {
    SharedZone* zone = cs->zone;
    if (cs->value != nullptr) {
      bool failed = false;
      zone = zone_named(r, *cs, failed);
      if (failed) {
        finalize_request(r, Code::status(500));
        return true;
      }
      if (zone == nullptr) return false;
    }
    c = r.pool->make<UpstreamCache>();
    u.cache = c;
    c->zone = zone;
    c->path = static_cast<const CachePath*>(zone->data);
    c->key_text = cs->key != nullptr ? cs->key->eval(r) : u.protocol->cache_key(r);
    c->key = c->main_key = cache_key(c->key_text);
    c->convert_head = (r.method & kHead) && *cs->convert_head;
    WEIR_DEBUG(r.log(), "http cache key: \"%.*s\"", static_cast<int>(c->key_text.size()),
               c->key_text.data());
    if (any_true(r, cs->bypass)) {
      c->status = CacheStatus::Bypass;
      return false;
    }
  }
  int64_t now = clock::now();
  int64_t node_valid = 0;
  CacheEntry* e = nullptr;
  for (int pass = 0;; pass++) {
    bool exists = false;
    bool cold = false;
    ino_t uniq = 0;
    std::vector<CacheKey> dropped;
    {
      ShmLock lock(c->zone->slab->mutex());
      CacheIndex& index = cache_index(*c->zone);
      cold = index.cold;
      CacheNode* n =
          index.find_or_add(*c->zone->slab, c->key, now, c->path->conf.inactive, &dropped);
      if (n == nullptr) {
        log_error(LogLevel::Alert, r.log(), 0, "could not allocate node in cache keys zone \"%s\"",
                  c->zone->name.c_str());
        c->may_store = false;
      } else {
        if (!again) n->uses++;  // each key counts its own uses (a variant's too)
        c->may_store = n->uses >= static_cast<uint32_t>(*cs->min_uses);
        exists = n->exists;
        uniq = n->uniq;
        node_valid = n->valid_sec;
      }
    }
    delete_files(r.log(), *c->path, dropped);
    // Before the loader has run, the disk is asked (as nginx's).
    e = exists || cold ? open_entry(r, *c, u.conf->buffer_size, uniq, !exists) : nullptr;
    if (e == nullptr || e->header.variant == CacheVariant{}) break;
    // Kept with Vary: this request's variant may be another, kept under a key of its own.
    CacheVariant want = request_variant(r, stored_field(*e, "vary"));
    if (want == e->header.variant) break;
    e = nullptr;
    if (c->secondary) break;  // a variant's file that is not this one's: a miss
    c->secondary = true;
    c->key = variant_key(c->main_key, want);
  }
  if (e == nullptr) {
    if (range_beyond(r, *cs->max_range_offset)) c->may_store = false;
    return c->may_store && lock_or_wait(r, u, *cs);
  }
  // A revalidation renews the index's lifetime and the file's header in place; a copy of the
  // header the open-file cache keeps may be older (the loader's entries know only the file's).
  e->header.valid_sec = std::max(e->header.valid_sec, node_valid);
  if (e->header.valid_sec >= now) {
    if (!load_entry_header(r, u, *e)) {
      finalize_request(r, Code::status(500));
      return true;
    }
    u.phase = UpstreamPhase::Done;  // nothing of the upstream is started
    send_entry(r, u, *e, CacheStatus::Hit);
    return true;
  }
  if (range_beyond(r, *cs->max_range_offset)) c->may_store = false;
  // Expired: kept at hand while one request fetches it anew; the others send it meanwhile when
  // proxy_cache_use_stale updating (or stale-while-revalidate) allows, else fetch it too.
  c->stale = *e;
  c->status = CacheStatus::Expired;
  c->stale_error = now < e->header.valid_sec + e->header.error_sec;
  bool stale_updating =
      (*cs->use_stale & kStaleUpdating) != 0 || now < e->header.valid_sec + e->header.updating_sec;
  bool other_updating = false;
  {
    ShmLock lock(c->zone->slab->mutex());
    if (CacheNode* n = cache_index(*c->zone).find(c->key)) {
      other_updating = n->updating;
      if (!n->updating) n->updating = c->updating = true;
    }
  }
  if (c->updating) r.pool->add_cleanup(clear_updating, c);
  // The background update itself fetches, whoever holds the key.
  if (r.background) return false;
  CacheStatus send_as = CacheStatus::Miss;
  if (other_updating && stale_updating) {
    send_as = CacheStatus::Updating;
  } else if (c->updating && stale_updating && *cs->background_update) {
    // proxy_cache_background_update: the expired entry goes out now, and a background subrequest
    // for the same URI fetches and keeps the new one. nginx:
    // ngx_http_upstream_cache_background_update
    Request* sr = create_subrequest(r, r.uri, r.args, {.background = true, .clone = true});
    if (sr != nullptr) {
      sr->header_only = true;
      send_as = CacheStatus::Stale;
    }
  }
  if (send_as != CacheStatus::Miss) {
    if (!load_entry_header(r, u, *e)) {
      finalize_request(r, Code::status(500));
      return true;
    }
    u.phase = UpstreamPhase::Done;
    send_entry(r, u, *e, send_as);
    return true;
  }
  return false;
}

namespace {

// What u.headers_in says of the response's lifetime: X-Accel-Expires first, then Cache-Control,
// then Expires (unless proxy_ignore_headers names them); Set-Cookie and Vary keep it out.
Validity header_validity(const Upstream& u, int64_t now) {
  const UpstreamHeadersIn& in = u.headers_in;
  uint32_t ignore = u.conf->ignore_headers;
  Validity out;
  if (in.x_accel_expires != nullptr && !(ignore & kIgnoreXAccelExpires)) {
    accel_expires(in.x_accel_expires->value, now, out.cacheable, out.valid);
  }
  bool by_accel = out.valid != 0;
  const Header* expires = nullptr;
  for (const Header* h : in.headers) {
    std::string_view k = h->lowcase_key;
    // A cookie is one client's; Vary: * makes a variant of every request (and a longer Vary names
    // more fields than nginx keeps).
    bool keeps_out = (k == "set-cookie" && !(ignore & kIgnoreSetCookie)) ||
                     (k == "vary" && !(ignore & kIgnoreVary) &&
                      (trim_ows(h->value) == "*" || h->value.size() > kMaxVary));
    if (keeps_out) {
      out.cacheable = false;
    } else if (k == "cache-control" && !(ignore & kIgnoreCacheControl)) {
      cache_control(h->value, now, !by_accel, out);
    } else if (k == "expires" && !(ignore & kIgnoreExpires)) {
      expires = h;
    }
  }
  if (expires != nullptr && out.valid == 0 && out.cacheable) {
    auto t = clock::parse_http_time(expires->value);
    if (!t || *t < now) {
      out.cacheable = false;
    } else {
      out.valid = *t;
    }
  }
  return out;
}

}  // namespace

void decide_caching(Request& r, Upstream& u) {
  UpstreamCache* c = u.cache;
  if (c == nullptr) return;
  bool may = c->may_store;
  c->store = c->may_store = false;
  const CacheSettings& cs = *u.conf->cache;
  if (!may || any_true(r, cs.no_cache)) return;
  int64_t now = clock::now();
  Validity v = header_validity(u, now);
  if (!v.cacheable) return;
  if (v.valid == 0) {
    int64_t seconds = valid_for_status(cs.valid, u.headers_in.status);
    if (seconds == 0) return;
    v.valid = now + seconds;
  }
  // Vary: the response is this request's variant; under a variant's own key, only that variant.
  c->variant = CacheVariant{};
  if (!(u.conf->ignore_headers & kIgnoreVary)) {
    std::string vary;
    for (const Header* h : u.headers_in.headers) {
      if (h->lowcase_key != "vary") continue;
      if (!vary.empty()) vary += ',';
      vary += h->value;
    }
    if (vary.size() > kMaxVary) return;
    if (!vary.empty()) c->variant = request_variant(r, vary);
  }
  if (c->secondary &&
      (c->variant == CacheVariant{} || variant_key(c->main_key, c->variant) != c->key)) {
    return;
  }
  c->store = c->may_store = true;
  c->valid_sec = v.valid;
  c->updating_sec = v.updating;
  c->error_sec = v.error;
  WEIR_DEBUG(r.log(), "http cacheable: 1");
}

bool serve_stale(Request& r, Upstream& u, uint32_t ft) {
  UpstreamCache* c = u.cache;
  if (c == nullptr || c->status != CacheStatus::Expired || c->stale.file == nullptr) return false;
  uint32_t use = *u.conf->cache->use_stale;
  if (use & kNextError) use |= kNextNoLive;
  // stale-if-error stands for the failures to reach the upstream, not for an answer it gave (as
  // nginx 1.22's).
  bool failed = (ft & (kNextError | kNextTimeout | kNextInvalidHeader | kNextNoLive)) != 0;
  if (!(use & ft) && !(failed && c->stale_error)) return false;
  release_upstream(r, u, Rc::Declined);
  if (!load_entry_header(r, u, c->stale)) {
    finalize_request(r, Code::status(500));
    return true;
  }
  send_entry(r, u, c->stale, CacheStatus::Stale);
  return true;
}

bool serve_revalidated(Request& r, Upstream& u) {
  UpstreamCache* c = u.cache;
  if (c == nullptr || c->status != CacheStatus::Expired || c->stale.file == nullptr ||
      u.headers_in.status != 304 || !*u.conf->cache->revalidate) {
    return false;
  }
  WEIR_DEBUG(r.log(), "http upstream not modified");
  int64_t now = clock::now();
  // The lifetime the 304 gives, else the entry's own header's, else proxy_cache_valid's for 304.
  Validity v = header_validity(u, now);
  release_upstream(r, u, Rc::Ok);
  if (!load_entry_header(r, u, c->stale)) {
    finalize_request(r, Code::status(500));
    return true;
  }
  if (v.valid == 0) v = header_validity(u, now);
  if (v.valid == 0) {
    int64_t seconds = valid_for_status(u.conf->cache->valid, 304);
    if (seconds != 0) v.valid = now + seconds;
  }
  if (v.valid != 0) {
    const CacheEntry& e = c->stale;
    int fd = ::open(std::string(e.file->name).c_str(), O_WRONLY | O_CLOEXEC);
    Status s = fd < 0 ? Status::errorf("open() \"%.*s\" failed",
                                       static_cast<int>(e.file->name.size()), e.file->name.data())
                      : update_cache_file_validity(fd, v.valid, now);
    if (fd >= 0) ::close(fd);
    if (!s.ok()) {
      log_error(LogLevel::Crit, r.log(), errno, "%s", s.message().c_str());
    } else {
      ShmLock lock(c->zone->slab->mutex());
      if (CacheNode* n = cache_index(*c->zone).find(c->key)) n->valid_sec = v.valid;
    }
  }
  clear_updating(c);
  send_entry(r, u, c->stale, CacheStatus::Revalidated);
  return true;
}

bool start_cache_file(Request& r, Upstream& u, EventPipe& p) {
  UpstreamCache& c = *u.cache;
  std::string header = stored_header(u.headers_in);
  CacheFileHeader h;
  h.valid_sec = c.valid_sec;
  h.date = clock::now();
  h.last_modified = r.headers_out.last_modified_time;
  h.updating_sec = c.updating_sec;
  h.error_sec = c.error_sec;
  h.variant = c.variant;
  h.body_start = static_cast<uint32_t>(cache_file_prefix_size(c.key_text) + header.size());
  if (h.body_start > u.conf->buffer_size) {
    // A HIT reads the header with one buffer_size read, as nginx's.
    WEIR_DEBUG(r.log(), "http cache header too long for the buffer: %u", h.body_start);
    c.store = false;
    return false;
  }
  std::string head = cache_file_prefix(h, c.key_text);
  head += header;
  p.store = true;
  if (!c.path->conf.use_temp_path) p.temp_path = &c.path->dir;
  if (make_pipe_temp_file(p) != Rc::Ok) {
    // Not kept (logged); the response goes on as any other, spilling where it would have.
    c.store = false;
    p.store = false;
    p.temp_file = nullptr;
    p.temp_path = u.conf->temp_path;
    return false;
  }
  File& f = p.temp_file->file;
  if (::pwrite(f.fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) {
    log_error(LogLevel::Crit, r.log(), errno, "pwrite() \"%.*s\" failed",
              static_cast<int>(f.name.size()), f.name.data());
    c.store = false;
    p.store = false;  // the file is the response's spill now, deleted with it
    return false;
  }
  f.offset = static_cast<off_t>(head.size());
  c.body_start = h.body_start;
  return true;
}

void finish_cache_file(Request& r, Upstream& u, bool complete) {
  UpstreamCache& c = *u.cache;
  EventPipe& p = *u.pipe;
  c.store = false;
  if (!complete || p.temp_file == nullptr) return;
  TempFile& tf = *p.temp_file;
  off_t body = tf.file.offset - static_cast<off_t>(c.body_start);
  // A HEAD that went to the upstream as HEAD (proxy_cache_convert_head off) is kept without its
  // body, as nginx keeps it: the key is to tell it apart.
  bool head = (r.method & kHead) && !c.convert_head;
  if (u.headers_in.content_length_n != -1 && u.headers_in.content_length_n != body && !head) return;
  std::string to = cache_file_name(c.path->conf, c.key);
  std::string from(tf.file.name);
  int rc = ::rename(from.c_str(), to.c_str());
  if (rc < 0 && errno == ENOENT) {
    if (Status s = create_full_path(to.substr(0, to.rfind('/'))); !s.ok()) {
      log_error(LogLevel::Crit, r.log(), 0, "%s", s.message().c_str());
      return;
    }
    rc = ::rename(from.c_str(), to.c_str());
  }
  if (rc < 0) {
    log_error(LogLevel::Crit, r.log(), errno, "rename() \"%s\" to \"%s\" failed", from.c_str(),
              to.c_str());
    return;
  }
  tf.clean = false;  // it is the cache's file now
  WEIR_DEBUG(r.log(), "http file cache rename: \"%s\" to \"%s\"", from.c_str(), to.c_str());
  struct stat st {};
  int64_t disk_size = ::fstat(tf.file.fd, &st) == 0 ? disk_usage(st) : tf.file.offset;
  int64_t now = clock::now();
  std::vector<CacheKey> dropped;
  bool indexed = false;
  {
    ShmLock lock(c.zone->slab->mutex());
    CacheIndex& index = cache_index(*c.zone);
    CacheNode* n = index.find_or_add(*c.zone->slab, c.key, now, c.path->conf.inactive, &dropped);
    if (n != nullptr) {
      if (n->exists) index.size -= n->fs_size;
      n->exists = true;
      n->fs_size = disk_size;
      n->uniq = st.st_ino;
      n->valid_sec = c.valid_sec;
      n->body_start = c.body_start;
      index.size += n->fs_size;
      indexed = true;
    }
  }
  if (!indexed) dropped.push_back(c.key);
  delete_files(r.log(), *c.path, dropped);
  clear_updating(&c);
}

}  // namespace weir::http
