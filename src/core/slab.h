// The allocator inside a shared-memory zone: the zone is cut into 4 KiB pages; small sizes (8 bytes
// to 2 KiB, in powers of two) come from pages carved into equal slots, larger ones from runs of
// whole pages (first fit; freed runs merge with free neighbours). Everything it keeps lives in the
// zone, so every process that maps the zone at the same address (the workers, forked after the
// master made it) shares one heap; callers hold mutex() around use (alloc/free take it
// themselves). Out of memory is an answer (nullptr), never a crash: the zone's owner evicts and
// retries, or logs. nginx: src/core/ngx_slab.c
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/shm_mutex.h"

namespace weir {

class SlabPool {
 public:
  static constexpr size_t kPageSize = 4096;
  static constexpr size_t kMaxSlot = kPageSize / 2;  // larger sizes take whole pages

  // Formats [addr, addr + size) (page aligned, as mmap gives it) as a pool whose object sits at
  // addr. nullptr when the zone is too small to hold any page.
  static SlabPool* create(void* addr, size_t size);

  void* alloc(size_t size);
  void* alloc_locked(size_t size);
  void* calloc_locked(size_t size);  // zeroed
  void free(void* p);
  void free_locked(void* p);

  ShmMutex& mutex() { return mutex_; }
  size_t total_pages() const { return npages_; }
  size_t free_pages() const { return free_pages_; }

  void* data = nullptr;  // the zone owner's root object (its tree, its counters)

 private:
  struct Page;
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr unsigned kMinShift = 3;
  static constexpr unsigned kShifts = 12;  // slot sizes 1 << 3 ... 1 << 11

  char* page_addr(uint32_t i) const { return base_ + size_t{i} * kPageSize; }
  uint32_t alloc_pages(uint32_t n);
  void free_pages(uint32_t i, uint32_t n);
  void mark_free(uint32_t i, uint32_t n);
  void push(uint32_t& head, uint32_t i);
  void unlink(uint32_t& head, uint32_t i);
  void* alloc_slot(unsigned shift);
  void free_slot(uint32_t page, char* p);

  ShmMutex mutex_;
  Page* pages_ = nullptr;  // one descriptor per page
  char* base_ = nullptr;   // the first page
  uint32_t npages_ = 0;
  uint32_t free_pages_ = 0;
  uint32_t free_runs_ = kNone;      // heads of free runs
  uint32_t partial_[kShifts] = {};  // slot pages with a free slot, by slot size
};

}  // namespace weir
