#include "core/slab.h"

#include <cstring>
#include <new>

namespace weir {

// What a page is: part of a free run (its first page holds the run's length, its last the first's
// index), part of an allocated run (the first holds the length), or a slot page.
struct SlabPool::Page {
  enum class Kind : uint8_t { FreeHead, FreeTail, FreeInner, RunHead, RunInner, Slots };
  uint32_t next = kNone;  // list links: free runs, or slot pages with room
  uint32_t prev = kNone;
  uint32_t run = 0;   // FreeHead, RunHead: pages in the run
  uint32_t head = 0;  // FreeTail: the run's first page
  uint16_t free_slot = 0;
  uint16_t used = 0;  // Slots: slots in use
  Kind kind = Kind::FreeInner;
  uint8_t shift = 0;  // Slots: log2 of the slot size
};

namespace {

constexpr uint16_t kNoSlot = UINT16_MAX;

uintptr_t align_up(uintptr_t v, size_t a) {
  return (v + a - 1) & ~(uintptr_t{a} - 1);
}

}  // namespace

SlabPool* SlabPool::create(void* addr, size_t size) {
  auto start = reinterpret_cast<uintptr_t>(addr);
  uintptr_t end = start + size;
  uintptr_t descs = align_up(start + sizeof(SlabPool), alignof(Page));
  if (descs >= end) return nullptr;
  auto n = static_cast<uint32_t>((end - descs) / (kPageSize + sizeof(Page)));
  uintptr_t base = 0;
  while (n > 0) {
    base = align_up(descs + n * sizeof(Page), kPageSize);
    if (base + size_t{n} * kPageSize <= end) break;
    n--;
  }
  if (n == 0) return nullptr;
  auto* pool = new (addr) SlabPool();
  pool->pages_ = reinterpret_cast<Page*>(descs);
  for (uint32_t i = 0; i < n; i++) new (&pool->pages_[i]) Page();
  pool->base_ = reinterpret_cast<char*>(base);
  pool->npages_ = n;
  for (uint32_t& h : pool->partial_) h = kNone;
  pool->mark_free(0, n);
  pool->push(pool->free_runs_, 0);
  pool->free_pages_ = n;
  return pool;
}

void SlabPool::push(uint32_t& head, uint32_t i) {
  Page& p = pages_[i];
  p.prev = kNone;
  p.next = head;
  if (head != kNone) pages_[head].prev = i;
  head = i;
}

void SlabPool::unlink(uint32_t& head, uint32_t i) {
  Page& p = pages_[i];
  if (p.prev != kNone) {
    pages_[p.prev].next = p.next;
  } else {
    head = p.next;
  }
  if (p.next != kNone) pages_[p.next].prev = p.prev;
  p.next = p.prev = kNone;
}

void SlabPool::mark_free(uint32_t i, uint32_t n) {
  pages_[i].kind = Page::Kind::FreeHead;
  pages_[i].run = n;
  for (uint32_t j = i + 1; j < i + n; j++) pages_[j].kind = Page::Kind::FreeInner;
  if (n > 1) {
    pages_[i + n - 1].kind = Page::Kind::FreeTail;
    pages_[i + n - 1].head = i;
  }
}

uint32_t SlabPool::alloc_pages(uint32_t n) {
  for (uint32_t i = free_runs_; i != kNone; i = pages_[i].next) {
    uint32_t run = pages_[i].run;
    if (run < n) continue;
    unlink(free_runs_, i);
    if (run > n) {
      mark_free(i + n, run - n);
      push(free_runs_, i + n);
    }
    pages_[i].kind = Page::Kind::RunHead;
    pages_[i].run = n;
    for (uint32_t j = i + 1; j < i + n; j++) pages_[j].kind = Page::Kind::RunInner;
    free_pages_ -= n;
    return i;
  }
  return kNone;
}

void SlabPool::free_pages(uint32_t i, uint32_t n) {
  free_pages_ += n;
  uint32_t after = i + n;
  if (after < npages_ && pages_[after].kind == Page::Kind::FreeHead) {
    unlink(free_runs_, after);
    n += pages_[after].run;
  }
  if (i > 0) {
    Page& before = pages_[i - 1];
    uint32_t start = kNone;
    if (before.kind == Page::Kind::FreeHead) start = i - 1;
    if (before.kind == Page::Kind::FreeTail) start = before.head;
    if (start != kNone) {
      unlink(free_runs_, start);
      n += pages_[start].run;
      i = start;
    }
  }
  mark_free(i, n);
  push(free_runs_, i);
}

void* SlabPool::alloc_slot(unsigned shift) {
  uint32_t& list = partial_[shift];
  if (list == kNone) {
    uint32_t i = alloc_pages(1);
    if (i == kNone) return nullptr;
    Page& p = pages_[i];
    p.kind = Page::Kind::Slots;
    p.shift = static_cast<uint8_t>(shift);
    p.used = 0;
    p.free_slot = 0;
    // The free slots form a list through their first two bytes.
    size_t slots = kPageSize >> shift;
    char* page = page_addr(i);
    for (size_t s = 0; s < slots; s++) {
      uint16_t next = s + 1 < slots ? static_cast<uint16_t>(s + 1) : kNoSlot;
      std::memcpy(page + (s << shift), &next, sizeof next);
    }
    push(list, i);
  }
  uint32_t i = list;
  Page& p = pages_[i];
  char* slot = page_addr(i) + (size_t{p.free_slot} << shift);
  std::memcpy(&p.free_slot, slot, sizeof p.free_slot);
  p.used++;
  if (p.free_slot == kNoSlot) unlink(list, i);  // full
  return slot;
}

void SlabPool::free_slot(uint32_t i, char* p) {
  Page& page = pages_[i];
  size_t offset = static_cast<size_t>(p - page_addr(i));
  if ((offset & ((size_t{1} << page.shift) - 1)) != 0) return;   // not a slot's start
  if (page.free_slot == kNoSlot) push(partial_[page.shift], i);  // was full
  std::memcpy(p, &page.free_slot, sizeof page.free_slot);
  page.free_slot = static_cast<uint16_t>(offset >> page.shift);
  if (--page.used == 0) {
    unlink(partial_[page.shift], i);
    free_pages(i, 1);
  }
}

void* SlabPool::alloc_locked(size_t size) {
  if (size > kMaxSlot) {
    size_t n = (size + kPageSize - 1) / kPageSize;
    if (n > npages_) return nullptr;
    uint32_t i = alloc_pages(static_cast<uint32_t>(n));
    return i == kNone ? nullptr : page_addr(i);
  }
  unsigned shift = kMinShift;
  while ((size_t{1} << shift) < size) shift++;
  return alloc_slot(shift);
}

void* SlabPool::calloc_locked(size_t size) {
  void* p = alloc_locked(size);
  if (p != nullptr) std::memset(p, 0, size);
  return p;
}

void* SlabPool::alloc(size_t size) {
  ShmLock lock(mutex_);
  return alloc_locked(size);
}

void SlabPool::free_locked(void* ptr) {
  auto* p = static_cast<char*>(ptr);
  if (p < base_ || p >= page_addr(npages_)) return;  // not from this pool
  auto i = static_cast<uint32_t>(static_cast<size_t>(p - base_) / kPageSize);
  Page& page = pages_[i];
  if (page.kind == Page::Kind::Slots) {
    free_slot(i, p);
  } else if (page.kind == Page::Kind::RunHead && p == page_addr(i)) {
    free_pages(i, page.run);
  }
}

void SlabPool::free(void* p) {
  ShmLock lock(mutex_);
  free_locked(p);
}

}  // namespace weir
