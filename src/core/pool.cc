#include "core/pool.h"

#include <cstdlib>
#include <cstring>

#include "core/assert.h"
#include "core/buffer.h"
#include "core/config.h"

namespace weir {

namespace {

// Standard blocks are kept for reuse; a worker's working set of blocks stays bounded by its busy
// requests.
struct BlockCache {
  void* head = nullptr;
  size_t count = 0;
  static constexpr size_t kMaxCached = 4096;
};
BlockCache g_cache;

void* get_block(size_t size) {
  if (size == Pool::kDefaultBlock && g_cache.head != nullptr) {
    void* b = g_cache.head;
    g_cache.head = *static_cast<void**>(b);
    g_cache.count--;
    return b;
  }
  void* b = std::malloc(size);
  if (b == nullptr) throw std::bad_alloc();
  return b;
}

void put_block(void* b, size_t size) {
  if (kRecycleMemory && size == Pool::kDefaultBlock && g_cache.count < BlockCache::kMaxCached) {
    *static_cast<void**>(b) = g_cache.head;
    g_cache.head = b;
    g_cache.count++;
    return;
  }
  std::free(b);
}

// Large allocations of up to 128 KiB, by power-of-two class from 4 KiB: freed ones are kept for
// the next request (glibc would otherwise trim and regrow the heap around them), up to 16 MiB.
struct LargeCache {
  static constexpr size_t kMinShift = 12;
  static constexpr size_t kClasses = 6;  // 4 KiB ... 128 KiB
  static constexpr size_t kMaxBytes = 16 * 1024 * 1024;
  void* head[kClasses] = {};
  size_t bytes = 0;
};
LargeCache g_large;

// The class of a large allocation of `size` bytes, or kClasses when it is not cached.
size_t large_class(size_t size) {
  size_t c = 0;
  while (c < LargeCache::kClasses && (size_t{1} << (LargeCache::kMinShift + c)) < size) c++;
  return c;
}

}  // namespace

void Pool::trim_block_cache() {
  while (g_cache.head != nullptr) {
    void* b = g_cache.head;
    g_cache.head = *static_cast<void**>(b);
    std::free(b);
  }
  g_cache.count = 0;
  for (void*& head : g_large.head) {
    while (head != nullptr) {
      void* b = head;
      head = *static_cast<void**>(b);
      std::free(b);
    }
  }
  g_large.bytes = 0;
}

Pool::Large* Pool::get_large(size_t size) {
  size_t c = large_class(size);
  if (c < LargeCache::kClasses) {
    size = size_t{1} << (LargeCache::kMinShift + c);
    if (void* b = g_large.head[c]) {
      g_large.head[c] = *static_cast<void**>(b);
      g_large.bytes -= size;
      auto* l = static_cast<Large*>(b);
      l->size = size;
      return l;
    }
  }
  auto* l = static_cast<Large*>(std::malloc(sizeof(Large) + size));
  if (l == nullptr) throw std::bad_alloc();
  l->size = size;
  return l;
}

void Pool::put_large(Large* l) {
  size_t c = large_class(l->size);
  if (kRecycleMemory && c < LargeCache::kClasses &&
      l->size == size_t{1} << (LargeCache::kMinShift + c) &&
      g_large.bytes + l->size <= LargeCache::kMaxBytes) {
    *reinterpret_cast<void**>(l) = g_large.head[c];
    g_large.head[c] = l;
    g_large.bytes += l->size;
    return;
  }
  std::free(l);
}

void Pool::new_block(size_t min_size) {
  size_t size = block_size_;
  if (min_size + sizeof(Block) + alignof(std::max_align_t) > size) {
    size = min_size + sizeof(Block) + alignof(std::max_align_t);
  }
  auto* b = static_cast<Block*>(get_block(size));
  b->next = blocks_;
  b->size = size;
  blocks_ = b;
  cur_ = reinterpret_cast<char*>(b + 1);
  end_ = reinterpret_cast<char*>(b) + size;
}

void* Pool::alloc_slow(size_t size, size_t align) {
  WEIR_ASSERT(align <= alignof(std::max_align_t));
  if (size > block_size_ / 2) {
    // Large: its own allocation, freed (or cached) at reset or by free_large().
    Large* l = get_large(size);
    l->prev = nullptr;
    l->next = large_;
    if (large_ != nullptr) large_->prev = l;
    large_ = l;
    return l + 1;
  }
  new_block(size + align);
  return alloc(size, align);
}

bool Pool::free_large(void* p) {
  for (Large* l = large_; l != nullptr; l = l->next) {
    if (static_cast<void*>(l + 1) == p) {
      if (l->prev != nullptr) {
        l->prev->next = l->next;
      } else {
        large_ = l->next;
      }
      if (l->next != nullptr) l->next->prev = l->prev;
      put_large(l);
      return true;
    }
  }
  return false;
}

void* Pool::alloc_zeroed(size_t size) {
  void* p = alloc(size);
  std::memset(p, 0, size);
  return p;
}

std::string_view Pool::dup(std::string_view s) {
  if (s.empty()) return {};
  char* p = alloc_bytes(s.size());
  std::memcpy(p, s.data(), s.size());
  return {p, s.size()};
}

Pool::Cleanup* Pool::add_cleanup(void (*fn)(void*), void* data) {
  auto* c = static_cast<Cleanup*>(alloc(sizeof(Cleanup), alignof(Cleanup)));
  c->fn = fn;
  c->data = data;
  c->next = cleanups_;
  cleanups_ = c;
  return c;
}

void Pool::release() {
  // Cleanups may allocate from or look into the pool: run them before freeing memory.
  while (cleanups_ != nullptr) {
    Cleanup* c = cleanups_;
    cleanups_ = c->next;
    if (c->fn != nullptr) c->fn(c->data);
  }
  while (large_ != nullptr) {
    Large* l = large_;
    large_ = l->next;
    put_large(l);
  }
  while (blocks_ != nullptr) {
    Block* b = blocks_;
    blocks_ = b->next;
    put_block(b, b->size);
  }
  cur_ = end_ = nullptr;
  free_links_ = nullptr;
}

}  // namespace weir
