// The cache's ground: proxy_cache_path's parameters and nginx's errors, the key's MD5 and the file
// it names (checked against md5sum and nginx's documented layout), the file header's round trip and
// what a damaged or foreign file is told, and the keys zone's index (lookup, LRU order, expiry,
// max_size, eviction when the zone is full) in a real shared slab, also from forked workers.
#include "upstream/file_cache.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/shm_mutex.h"
#include "core/slab.h"

namespace weir::http {
namespace {

Result<CachePathConf> parse(std::vector<std::string> args) {
  return parse_cache_path("proxy_cache_path", args, "/prefix/");
}

TEST(CachePath, ParametersAsNginxReadsThem) {
  auto c = parse({"cache/", "levels=1:2", "keys_zone=one:10m", "inactive=1h", "max_size=2g",
                  "use_temp_path=off"});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->path, "/prefix/cache");
  EXPECT_EQ(c->levels[0], 1);
  EXPECT_EQ(c->levels[1], 2);
  EXPECT_EQ(c->levels[2], 0);
  EXPECT_EQ(c->zone_name, "one");
  EXPECT_EQ(c->zone_size, size_t{10} << 20);
  EXPECT_EQ(c->inactive, 3600);
  EXPECT_EQ(c->max_size, int64_t{2} << 30);
  EXPECT_FALSE(c->use_temp_path);
  auto d = parse({"/var/cache/x", "keys_zone=z:1m"});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->path, "/var/cache/x");
  EXPECT_EQ(d->levels[0], 0);
  EXPECT_EQ(d->inactive, 600);  // nginx's default
  EXPECT_EQ(d->max_size, -1);
  EXPECT_TRUE(d->use_temp_path);
}

TEST(CachePath, TheLoaderAndManagerTuning) {
  auto c =
      parse({"c", "keys_zone=z:1m", "loader_files=5", "loader_sleep=1s", "loader_threshold=300ms",
             "manager_files=7", "manager_sleep=10ms", "manager_threshold=2s", "min_free=1g"});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->loader_files, 5);
  EXPECT_EQ(c->loader_sleep, 1000);
  EXPECT_EQ(c->loader_threshold, 300);
  EXPECT_EQ(c->manager_files, 7);
  EXPECT_EQ(c->manager_sleep, 10);
  EXPECT_EQ(c->manager_threshold, 2000);
  EXPECT_EQ(c->min_free, int64_t{1} << 30);
  auto d = parse({"c", "keys_zone=z:1m"});
  EXPECT_EQ(d->loader_files, 100);  // nginx's defaults
  EXPECT_EQ(d->manager_sleep, 50);
  EXPECT_EQ(d->min_free, 0);
}

TEST(CachePath, ErrorsInNginxsWords) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"c", "levels=3", "keys_zone=z:1m"}, "invalid \"levels\" \"levels=3\""},
      {{"c", "levels=1:2:2:1", "keys_zone=z:1m"}, "invalid \"levels\" \"levels=1:2:2:1\""},
      {{"c", "levels=1:", "keys_zone=z:1m"}, "invalid \"levels\" \"levels=1:\""},
      {{"c", "keys_zone=z"}, "invalid keys zone size \"keys_zone=z\""},
      {{"c", "keys_zone=z:1x"}, "invalid keys zone size \"keys_zone=z:1x\""},
      {{"c", "keys_zone=z:1k"}, "keys zone \"keys_zone=z:1k\" is too small"},
      {{"c", "keys_zone=z:1m", "inactive=soon"}, "invalid inactive value \"inactive=soon\""},
      {{"c", "keys_zone=z:1m", "max_size=big"}, "invalid max_size value \"max_size=big\""},
      {{"c", "keys_zone=z:1m", "use_temp_path=yes"},
       "invalid use_temp_path value \"use_temp_path=yes\", it must be \"on\" or \"off\""},
      {{"c", "keys_zone=z:1m", "colour=red"}, "invalid parameter \"colour=red\""},
      {{"c", "levels=1:2"}, "\"proxy_cache_path\" must have \"keys_zone\" parameter"},
      {{"c", "keys_zone=z:1m", "loader_files=0"}, "invalid loader_files value \"loader_files=0\""},
      {{"c", "keys_zone=z:1m", "manager_sleep=x"},
       "invalid manager_sleep value \"manager_sleep=x\""},
      {{"c", "keys_zone=z:1m", "min_free=-1"}, "invalid min_free value \"min_free=-1\""},
  };
  for (const Case& k : cases) {
    auto c = parse(k.args);
    ASSERT_FALSE(c.ok()) << k.message;
    EXPECT_EQ(c.status().message(), k.message);
  }
}

std::string md5sum(const std::string& text) {
  std::string cmd = "printf '%s' '" + text + "' | md5sum";
  FILE* f = ::popen(cmd.c_str(), "r");
  char out[64] = {};
  if (f != nullptr) {
    if (std::fgets(out, sizeof out, f) == nullptr) out[0] = '\0';
    ::pclose(f);
  }
  return std::string(out).substr(0, 32);
}

TEST(CacheKey, TheMd5OfTheKeyNamesTheFileUnderItsLevels) {
  std::string text = "httpbackend/index.html?a=1";
  CacheKey key = cache_key(text);
  EXPECT_EQ(cache_key_hex(key), md5sum(text));
  // nginx's documented layout: "levels=1:2" gives /data/nginx/cache/c/29/b7f5...029c.
  CachePathConf conf;
  conf.path = "/data/nginx/cache";
  conf.levels = {1, 2, 0};
  std::string hex = cache_key_hex(key);
  EXPECT_EQ(cache_file_name(conf, key),
            "/data/nginx/cache/" + hex.substr(31, 1) + "/" + hex.substr(29, 2) + "/" + hex);
  conf.levels = {2, 2, 1};
  EXPECT_EQ(cache_file_name(conf, key), "/data/nginx/cache/" + hex.substr(30, 2) + "/" +
                                            hex.substr(28, 2) + "/" + hex.substr(27, 1) + "/" +
                                            hex);
  conf.levels = {0, 0, 0};
  EXPECT_EQ(cache_file_name(conf, key), "/data/nginx/cache/" + hex);
}

TEST(CacheFile, TheHeaderComesBackAndADamagedFileIsTold) {
  CacheFileHeader h;
  h.valid_sec = 1'800'000'000;
  h.date = 1'700'000'000;
  h.last_modified = 1'600'000'000;
  std::string key = "httpbackend/a";
  std::string raw_header = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
  h.body_start = 0;
  std::string prefix = cache_file_prefix(h, key);
  EXPECT_NE(prefix.find("\nKEY: httpbackend/a\n"), std::string::npos);
  // Written again once the upstream's header is known.
  h.body_start = static_cast<uint32_t>(prefix.size() + raw_header.size());
  prefix = cache_file_prefix(h, key);
  std::string file = prefix + raw_header + "body";
  auto got = read_cache_file_header(file, key, static_cast<off_t>(file.size()));
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->valid_sec, h.valid_sec);
  EXPECT_EQ(got->date, h.date);
  EXPECT_EQ(got->last_modified, h.last_modified);
  EXPECT_EQ(got->header_start, prefix.size());
  EXPECT_EQ(file.substr(got->header_start, got->body_start - got->header_start), raw_header);
  EXPECT_EQ(file.substr(got->body_start), "body");

  auto fails = [&](std::string bytes, std::string_view k, off_t size, const char* why) {
    auto r = read_cache_file_header(bytes, k, size);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.status().message(), why);
  };
  fails(file.substr(0, 10), key, 10, "is too small");
  std::string other = file;
  other[0] = 'x';
  fails(other, key, static_cast<off_t>(file.size()), "version mismatch");
  fails(file, "httpbackend/b", static_cast<off_t>(file.size()), "has md5 collision");
  fails(file, "httpbackend/ab", static_cast<off_t>(file.size()), "has md5 collision");
  // Cut before the body's start (a truncated file).
  fails(file, key, static_cast<off_t>(h.body_start - 1), "is too small");
}

struct Zone {
  explicit Zone(size_t size) : size(size) {
    addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    slab = SlabPool::create(addr, size);
    zone.name = "z";
    zone.size = size;
    zone.slab = slab;
  }
  ~Zone() { ::munmap(addr, size); }
  size_t size;
  void* addr;
  SlabPool* slab;
  SharedZone zone;
};

CacheKey key_of(int i) {
  return cache_key("key" + std::to_string(i));
}

TEST(CacheIndex, FindsTouchesExpiresAndKeepsAcrossAReload) {
  Zone z(1 << 20);
  ASSERT_TRUE(init_cache_zone(z.zone, nullptr).ok());
  CacheIndex& index = cache_index(z.zone);
  ShmLock lock(z.slab->mutex());
  for (int i = 0; i < 100; i++)
    ASSERT_NE(index.find_or_add(*z.slab, key_of(i), 1000 + i, 60), nullptr);
  EXPECT_EQ(index.count, 100u);
  CacheNode* n = index.find(key_of(42));
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->key, key_of(42));
  EXPECT_EQ(index.find(key_of(1000)), nullptr);
  // Asked again: the same node, now the most recently used.
  EXPECT_EQ(index.find_or_add(*z.slab, key_of(0), 2000, 60), index.find(key_of(0)));
  // The oldest (key 1, not asked since 1001) expires at 1061; key 0 was touched at 2000.
  EXPECT_EQ(index.oldest_to_drop(1060, -1), nullptr);
  CacheNode* old = index.oldest_to_drop(1061, -1);
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->key, key_of(1));
  // One being fetched is passed over.
  old->updating = true;
  EXPECT_EQ(index.oldest_to_drop(1062, -1)->key, key_of(2));
  old->updating = false;
  // Over max_size the oldest goes whatever its age.
  CacheNode* big = index.find(key_of(5));
  big->exists = true;
  big->fs_size = 5000;
  index.size += 5000;
  EXPECT_EQ(index.oldest_to_drop(0, 4999)->key, key_of(1));
  EXPECT_EQ(index.oldest_to_drop(0, 5000), nullptr);
  index.remove(*z.slab, *big);
  EXPECT_EQ(index.size, 0);
  EXPECT_EQ(index.find(key_of(5)), nullptr);
  EXPECT_EQ(index.count, 99u);
  // A reload keeps the zone: its init finds the index there.
  ASSERT_TRUE(init_cache_zone(z.zone, z.zone.data).ok());
  EXPECT_EQ(&cache_index(z.zone), &index);
  EXPECT_EQ(index.count, 99u);
}

TEST(CacheIndex, AFullZoneEvictsTheLeastRecentlyUsed) {
  Zone z(8 * SlabPool::kPageSize);
  ASSERT_TRUE(init_cache_zone(z.zone, nullptr).ok());
  CacheIndex& index = cache_index(z.zone);
  ShmLock lock(z.slab->mutex());
  std::vector<CacheKey> evicted;
  int i = 0;
  while (evicted.empty() && i < 100000) {
    CacheNode* n = index.find_or_add(*z.slab, key_of(i), i, 600, &evicted);
    ASSERT_NE(n, nullptr);
    n->exists = i != 0;  // the first has no file: evicted silently
    i++;
  }
  // The first to go had no file; the second is named for its file to be deleted.
  EXPECT_EQ(index.find(key_of(0)), nullptr);
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0], key_of(1));
  EXPECT_NE(index.find(key_of(i - 1)), nullptr);
  // Every node being fetched: nothing can give way.
  for (QueueNode* q = index.lru.next; q != &index.lru; q = q->next)
    CacheNode::of_lru(q)->updating = true;
  EXPECT_EQ(index.find_or_add(*z.slab, key_of(999999), i, 600), nullptr);
}

TEST(CacheIndex, ForkedWorkersShareTheIndex) {
  Zone z(1 << 20);
  ASSERT_TRUE(init_cache_zone(z.zone, nullptr).ok());
  constexpr int kWorkers = 4;
  constexpr int kKeys = 500;
  for (int w = 0; w < kWorkers; w++) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      CacheIndex& index = cache_index(z.zone);
      for (int i = 0; i < kKeys; i++) {
        ShmLock lock(z.slab->mutex());
        CacheNode* n = index.find_or_add(*z.slab, key_of(i), i, 600);
        if (n == nullptr) ::_exit(1);
        n->uses++;
      }
      ::_exit(0);
    }
  }
  for (int w = 0; w < kWorkers; w++) {
    int status = 0;
    ::wait(&status);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  CacheIndex& index = cache_index(z.zone);
  EXPECT_EQ(index.count, static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; i++) {
    CacheNode* n = index.find(key_of(i));
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->uses, static_cast<uint32_t>(kWorkers));
  }
}

}  // namespace
}  // namespace weir::http
