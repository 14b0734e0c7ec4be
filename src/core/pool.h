// Pool: the arena that a cycle, a connection or a request allocates from; everything in it dies
// with it. Cleanups run in reverse order on reset/destruction. Standard-size blocks are recycled
// through a per-process cache, and so are large allocations up to 128 KiB (by power-of-two size
// class: a proxied response's header buffer, the event pipe's buffers), so a request costs no
// malloc in steady state. nginx: src/core/ngx_palloc.c
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace weir {

struct ChainLink;
struct Buffer;

class Pool : public std::pmr::memory_resource {
 public:
  static constexpr size_t kDefaultBlock = 4096;

  explicit Pool(size_t block_size = kDefaultBlock) : block_size_(block_size) {}
  ~Pool() override { release(); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void* alloc(size_t size, size_t align = alignof(std::max_align_t)) {
    if (cur_ != nullptr) {
      auto p = (reinterpret_cast<uintptr_t>(cur_) + align - 1) & ~(uintptr_t{align} - 1);
      if (p + size <= reinterpret_cast<uintptr_t>(end_)) {
        cur_ = reinterpret_cast<char*>(p + size);
        return reinterpret_cast<void*>(p);
      }
    }
    return alloc_slow(size, align);
  }
  void* alloc_zeroed(size_t size);
  char* alloc_bytes(size_t size) { return static_cast<char*>(alloc(size, 1)); }

  template <class T, class... Args>
  T* make(Args&&... args) {
    void* p = alloc(sizeof(T), alignof(T));
    T* obj = new (p) T(std::forward<Args>(args)...);
    if constexpr (!std::is_trivially_destructible_v<T>) {
      add_cleanup([](void* o) { static_cast<T*>(o)->~T(); }, obj);
    }
    return obj;
  }
  template <class T>
  T* make_array(size_t n) {
    static_assert(std::is_trivially_destructible_v<T>);
    T* a = static_cast<T*>(alloc(sizeof(T) * (n ? n : 1), alignof(T)));
    for (size_t i = 0; i < n; i++) new (a + i) T();
    return a;
  }

  std::string_view dup(std::string_view s);

  struct Cleanup {
    void (*fn)(void*);
    void* data;
    Cleanup* next;
  };
  // Registers fn(data) to run when the pool is reset or destroyed; the handle can be disarmed (fn =
  // nullptr).
  Cleanup* add_cleanup(void (*fn)(void*), void* data);
  // Registers a cleanup whose node the caller keeps in this pool's memory (inside its own context):
  // one allocation fewer.
  void add_cleanup(Cleanup& c, void (*fn)(void*), void* data) {
    c = Cleanup{fn, data, cleanups_};
    cleanups_ = &c;
  }

  // Frees everything, runs cleanups, keeps nothing: the pool can be used again afterwards.
  void reset() { release(); }
  // Frees one large allocation early (nginx's ngx_pfree); small ones live until reset.
  bool free_large(void* p);

  // Chain links are reused through a per-pool free list (nginx's pool->chain).
  ChainLink* alloc_link();
  void free_link(ChainLink* cl);

  size_t block_size() const { return block_size_; }
  bool empty() const { return blocks_ == nullptr && large_ == nullptr; }

  // Returns cached standard blocks to the system (used by idle processes and tests).
  static void trim_block_cache();

 private:
  struct Block {
    Block* next;
    size_t size;
  };
  struct alignas(std::max_align_t) Large {
    Large* next;
    Large* prev;
    size_t size;  // what follows the header (a size class's when cached)
  };

  void* alloc_slow(size_t size, size_t align);
  static Large* get_large(size_t size);
  static void put_large(Large* l);
  void new_block(size_t min_size);
  void release();
  void do_deallocate(void*, size_t, size_t) override {}
  void* do_allocate(size_t bytes, size_t align) override { return alloc(bytes, align); }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }

  size_t block_size_;
  char* cur_ = nullptr;
  char* end_ = nullptr;
  Block* blocks_ = nullptr;
  Large* large_ = nullptr;
  Cleanup* cleanups_ = nullptr;
  ChainLink* free_links_ = nullptr;
};

}  // namespace weir
