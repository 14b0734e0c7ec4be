#include "upstream/file_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "core/assert.h"
#include "core/md5.h"
#include "core/slab.h"
#include "core/str.h"

namespace weir::http {

namespace {

// "levels=1:2": one to three levels of one or two characters each.
bool parse_levels(std::string_view v, std::array<uint8_t, kCacheMaxLevels>& levels) {
  size_t n = 0;
  while (!v.empty()) {
    if (n == kCacheMaxLevels || (v[0] != '1' && v[0] != '2')) return false;
    levels[n++] = static_cast<uint8_t>(v[0] - '0');
    v.remove_prefix(1);
    if (v.empty()) break;
    if (v[0] != ':' || v.size() == 1) return false;
    v.remove_prefix(1);
  }
  return n > 0;
}

constexpr char kMagic[8] = {'w', 'e', 'i', 'r', 'c', 'h', '0', '3'};
// magic, valid_sec, date, last_modified, updating_sec, error_sec, two offsets, variant
constexpr size_t kFixedSize = kCacheFixedHeaderSize;
constexpr std::string_view kKeyLine = "\nKEY: ";

void put64(char* p, int64_t v) {
  std::memcpy(p, &v, 8);
}
void put32(char* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}
int64_t get64(const char* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

uintptr_t tree_key(const CacheKey& key) {
  uintptr_t k;
  std::memcpy(&k, key.data(), sizeof k);
  return k;
}

int compare_nodes(const CacheKey& key, const RbNode& n) {
  const auto& other = reinterpret_cast<const CacheNode&>(n);
  return std::memcmp(key.data(), other.key.data(), key.size());
}

bool node_less(const RbNode& a, const RbNode& b) {
  return compare_nodes(reinterpret_cast<const CacheNode&>(a).key, b) < 0;
}

// loader_files= ... manager_threshold=: the field the name sets; nullptr when none.
int64_t* tuning(CachePathConf& conf, std::string_view name) {
  if (name == "loader_files") return &conf.loader_files;
  if (name == "loader_sleep") return &conf.loader_sleep;
  if (name == "loader_threshold") return &conf.loader_threshold;
  if (name == "manager_files") return &conf.manager_files;
  if (name == "manager_sleep") return &conf.manager_sleep;
  if (name == "manager_threshold") return &conf.manager_threshold;
  return nullptr;
}

}  // namespace

Result<CachePathConf> parse_cache_path(std::string_view directive,
                                       std::span<const std::string> args, std::string_view prefix) {
  CachePathConf conf;
  std::string_view path = args[0];
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  conf.path = path.starts_with('/') ? std::string(path) : std::string(prefix) + std::string(path);
  for (const std::string& arg : args.subspan(1)) {
    std::string_view a = arg;
    if (a.starts_with("levels=")) {
      if (!parse_levels(a.substr(7), conf.levels)) {
        return Status::errorf("invalid \"levels\" \"%s\"", arg.c_str());
      }
    } else if (a.starts_with("use_temp_path=")) {
      std::string_view v = a.substr(14);
      if (v != "on" && v != "off") {
        return Status::errorf("invalid use_temp_path value \"%s\", it must be \"on\" or \"off\"",
                              arg.c_str());
      }
      conf.use_temp_path = v == "on";
    } else if (a.starts_with("keys_zone=")) {
      std::string_view v = a.substr(10);
      size_t colon = v.find(':');
      if (colon == 0 || colon == std::string_view::npos) {
        return Status::errorf("invalid keys zone size \"%s\"", arg.c_str());
      }
      auto size = parse_size(v.substr(colon + 1));
      if (!size || *size <= 0) return Status::errorf("invalid keys zone size \"%s\"", arg.c_str());
      if (*size < static_cast<int64_t>(8 * SlabPool::kPageSize)) {
        return Status::errorf("keys zone \"%s\" is too small", arg.c_str());
      }
      conf.zone_name = std::string(v.substr(0, colon));
      conf.zone_size = static_cast<size_t>(*size);
    } else if (a.starts_with("inactive=")) {
      auto t = parse_time(a.substr(9), true);
      if (!t) return Status::errorf("invalid inactive value \"%s\"", arg.c_str());
      conf.inactive = *t;
    } else if (a.starts_with("max_size=")) {
      auto n = parse_offset(a.substr(9));
      if (!n || *n < 0) return Status::errorf("invalid max_size value \"%s\"", arg.c_str());
      conf.max_size = *n;
    } else if (a.starts_with("min_free=")) {
      auto n = parse_offset(a.substr(9));
      if (!n || *n < 0) return Status::errorf("invalid min_free value \"%s\"", arg.c_str());
      conf.min_free = *n;
    } else if (int64_t* field = tuning(conf, a.substr(0, a.find('=')))) {
      std::string_view name = a.substr(0, a.find('='));
      std::string_view v = a.substr(name.size() + 1);
      auto n = name.ends_with("_files") ? parse_int(v) : parse_time(v, false);
      if (!n || *n <= 0 || a.find('=') == std::string_view::npos) {
        return Status::errorf("invalid %.*s value \"%s\"", static_cast<int>(name.size()),
                              name.data(), arg.c_str());
      }
      *field = *n;
    } else {
      return Status::errorf("invalid parameter \"%s\"", arg.c_str());
    }
  }
  if (conf.zone_name.empty()) {
    return Status::errorf("\"%.*s\" must have \"keys_zone\" parameter",
                          static_cast<int>(directive.size()), directive.data());
  }
  return conf;
}

CacheKey cache_key(std::string_view text) {
  return Md5::of(text);
}

namespace {

constexpr size_t kHexSize = 32;

void put_hex(char* out, const CacheKey& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < key.size(); i++) {
    out[2 * i] = kHex[key[i] >> 4];
    out[2 * i + 1] = kHex[key[i] & 0xf];
  }
}

}  // namespace

std::string cache_key_hex(const CacheKey& key) {
  std::string out(kHexSize, '0');
  put_hex(out.data(), key);
  return out;
}

size_t cache_file_name_size(const CachePathConf& conf) {
  size_t size = conf.path.size() + 1 + kHexSize;
  for (uint8_t level : conf.levels) {
    if (level == 0) break;
    size += 1 + level;
  }
  return size;
}

void put_cache_file_name(std::span<char> out, const CachePathConf& conf, const CacheKey& key) {
  WEIR_ASSERT(out.size() == cache_file_name_size(conf));
  char hex[kHexSize];
  put_hex(hex, key);
  char* p = std::copy(conf.path.begin(), conf.path.end(), out.data());
  size_t end = kHexSize;
  for (uint8_t level : conf.levels) {
    if (level == 0) break;
    end -= level;
    *p++ = '/';
    p = std::copy_n(hex + end, level, p);
  }
  *p++ = '/';
  std::copy_n(hex, kHexSize, p);
}

std::string cache_file_name(const CachePathConf& conf, const CacheKey& key) {
  std::string name(cache_file_name_size(conf), '\0');
  put_cache_file_name(name, conf, key);
  return name;
}

size_t cache_file_prefix_size(std::string_view key) {
  return kFixedSize + kKeyLine.size() + key.size() + 1;
}

std::string cache_file_prefix(CacheFileHeader h, std::string_view key) {
  std::string out(kFixedSize, '\0');
  h.header_start = static_cast<uint32_t>(cache_file_prefix_size(key));
  if (h.body_start < h.header_start) h.body_start = h.header_start;
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  put64(out.data() + 8, h.valid_sec);
  put64(out.data() + 16, h.date);
  put64(out.data() + 24, h.last_modified);
  put64(out.data() + 32, h.updating_sec);
  put64(out.data() + 40, h.error_sec);
  put32(out.data() + 48, h.header_start);
  put32(out.data() + 52, h.body_start);
  std::memcpy(out.data() + 56, h.variant.data(), h.variant.size());
  out += kKeyLine;
  out += key;
  out += '\n';
  return out;
}

Result<CacheFileHeader> read_cache_file_header(std::string_view bytes, std::string_view key,
                                               off_t file_size) {
  if (bytes.size() < kFixedSize) return Status::error("is too small");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return Status::error("version mismatch");
  }
  CacheFileHeader h;
  h.valid_sec = get64(bytes.data() + 8);
  h.date = get64(bytes.data() + 16);
  h.last_modified = get64(bytes.data() + 24);
  h.updating_sec = get64(bytes.data() + 32);
  h.error_sec = get64(bytes.data() + 40);
  h.header_start = get32(bytes.data() + 48);
  h.body_start = get32(bytes.data() + 52);
  std::memcpy(h.variant.data(), bytes.data() + 56, h.variant.size());
  if (h.header_start != kFixedSize + kKeyLine.size() + key.size() + 1) {
    return Status::error("has md5 collision");
  }
  if (bytes.size() < h.header_start) return Status::error("is too small");
  std::string_view line = bytes.substr(kFixedSize, h.header_start - kFixedSize);
  if (!line.starts_with(kKeyLine) || line.substr(kKeyLine.size(), key.size()) != key ||
      line.back() != '\n') {
    return Status::error("has md5 collision");
  }
  if (h.body_start < h.header_start || static_cast<off_t>(h.body_start) > file_size) {
    return Status::error("is too small");
  }
  return h;
}

Status update_cache_file_validity(int fd, int64_t valid_sec, int64_t date) {
  char both[16];
  put64(both, valid_sec);
  put64(both + 8, date);
  if (::pwrite(fd, both, sizeof both, 8) != static_cast<ssize_t>(sizeof both)) {
    return Status::errorf("pwrite() failed (%d: %s)", errno, std::strerror(errno));
  }
  return {};
}

CacheNode* CacheNode::of_lru(QueueNode* q) {
  return reinterpret_cast<CacheNode*>(reinterpret_cast<char*>(q) - offsetof(CacheNode, lru));
}

CacheNode* CacheIndex::find(const CacheKey& key) const {
  uintptr_t k = tree_key(key);
  RbNode* n = tree.find([&](const RbNode& node) {
    if (k != node.key) return k < node.key ? -1 : 1;
    return compare_nodes(key, node);
  });
  return reinterpret_cast<CacheNode*>(n);
}

void CacheIndex::touch(CacheNode& n, int64_t now, int64_t inactive) {
  n.lru.unlink();
  lru.push_front(&n.lru);
  n.expire = now + inactive;
}

CacheNode* CacheIndex::find_or_add(SlabPool& slab, const CacheKey& key, int64_t now,
                                   int64_t inactive, std::vector<CacheKey>* evicted) {
  if (CacheNode* n = find(key)) {
    touch(*n, now, inactive);
    return n;
  }
  void* p = slab.calloc_locked(sizeof(CacheNode));
  while (p == nullptr) {
    // The zone is full: the least recently used key not being fetched gives way.
    CacheNode* victim = nullptr;
    for (QueueNode* q = lru.back(); q != nullptr && q != &lru; q = q->prev) {
      CacheNode* c = CacheNode::of_lru(q);
      if (!c->updating) {
        victim = c;
        break;
      }
    }
    if (victim == nullptr) return nullptr;
    if (evicted != nullptr && victim->exists) evicted->push_back(victim->key);
    remove(slab, *victim);
    p = slab.calloc_locked(sizeof(CacheNode));
  }
  auto* n = new (p) CacheNode;
  n->key = key;
  n->rb.key = tree_key(key);
  tree.insert(&n->rb, node_less);
  lru.push_front(&n->lru);
  n->expire = now + inactive;
  count++;
  return n;
}

void CacheIndex::remove(SlabPool& slab, CacheNode& n) {
  n.lru.unlink();
  tree.erase(&n.rb);
  if (n.exists) size -= n.fs_size;
  count--;
  slab.free_locked(&n);
}

CacheNode* CacheIndex::oldest_to_drop(int64_t now, int64_t max_size) const {
  for (QueueNode* q = lru.back(); q != nullptr && q != &lru; q = q->prev) {
    CacheNode* n = CacheNode::of_lru(q);
    if (n->updating) continue;
    bool over = max_size >= 0 && size > max_size;
    return n->expire <= now || over ? n : nullptr;
  }
  return nullptr;
}

Status init_cache_zone(SharedZone& zone, void* /*old_data*/) {
  // A zone kept from the configuration before (a reload) keeps its index and its entries.
  if (zone.slab->data != nullptr) return {};
  void* p = zone.slab->calloc_locked(sizeof(CacheIndex));
  if (p == nullptr) return Status::errorf("zone \"%s\" is too small", zone.name.c_str());
  zone.slab->data = new (p) CacheIndex;
  return {};
}

CacheIndex& cache_index(const SharedZone& zone) {
  return *static_cast<CacheIndex*>(zone.slab->data);
}

}  // namespace weir::http
