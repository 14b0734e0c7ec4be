// update_chains: fully sent buffers with our tag go to free (reset), foreign ones are dropped, a
// buffer still holding data stops the scan.
#include "core/buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/config.h"
#include "core/file.h"

namespace weir {
namespace {

int kTag;
int kOtherTag;

ChainLink* link(Pool& p, Buffer* b, ChainLink* next = nullptr) {
  ChainLink* cl = p.alloc_link();
  cl->buf = b;
  cl->next = next;
  return cl;
}

Buffer* temp(Pool& p, size_t size, size_t filled, const void* tag) {
  Buffer* b = Buffer::create_temp(p, size);
  b->last += filled;
  b->tag = tag;
  return b;
}

TEST(UpdateChains, MovesOutToBusyAndSentBuffersToFree) {
  Pool pool;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
  Buffer* a = temp(pool, 16, 8, &kTag);
  Buffer* b = temp(pool, 16, 8, &kTag);
  ChainLink* out = link(pool, a, link(pool, b));
  // Nothing sent yet: both stay busy, in order.
  update_chains(pool, &free, &busy, &out, &kTag);
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(free, nullptr);
  ASSERT_NE(busy, nullptr);
  EXPECT_EQ(busy->buf, a);
  EXPECT_EQ(busy->next->buf, b);
  // The first one is sent: it goes to free with pos/last reset; the second stays busy.
  a->pos = a->last;
  update_chains(pool, &free, &busy, &out, &kTag);
  ASSERT_NE(free, nullptr);
  EXPECT_EQ(free->buf, a);
  EXPECT_EQ(a->pos, a->start);
  EXPECT_EQ(a->last, a->start);
  EXPECT_EQ(busy->buf, b);
  EXPECT_EQ(busy->next, nullptr);
}

TEST(UpdateChains, ForeignBuffersAreDroppedWhateverTheirState) {
  Pool pool;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
  Buffer* foreign = temp(pool, 16, 8, &kOtherTag);  // still has data
  Buffer* ours = temp(pool, 16, 0, &kTag);          // sent
  ChainLink* out = link(pool, foreign, link(pool, ours));
  update_chains(pool, &free, &busy, &out, &kTag);
  EXPECT_EQ(busy, nullptr);
  ASSERT_NE(free, nullptr);
  EXPECT_EQ(free->buf, ours);
  EXPECT_EQ(free->next, nullptr);
}

TEST(UpdateChains, ABusyBufferKeepsTheOnesBehindItBusy) {
  Pool pool;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
  Buffer* a = temp(pool, 16, 4, &kTag);
  Buffer* b = temp(pool, 16, 0, &kTag);
  ChainLink* out = link(pool, a, link(pool, b));
  update_chains(pool, &free, &busy, &out, &kTag);
  EXPECT_EQ(free, nullptr);
  EXPECT_EQ(busy->buf, a);
  EXPECT_EQ(busy->next->buf, b);
  // Appending more output keeps order behind what is busy.
  Buffer* c = temp(pool, 16, 2, &kTag);
  out = link(pool, c);
  update_chains(pool, &free, &busy, &out, &kTag);
  EXPECT_EQ(busy->next->next->buf, c);
}

TEST(ChainHelpers, UpdateSentAndCoalesceFile) {
  Pool pool;
  Buffer* m1 = temp(pool, 10, 10, nullptr);
  Buffer* m2 = temp(pool, 10, 10, nullptr);
  Buffer* special = Buffer::create_special(pool, true, false);
  ChainLink* in = link(pool, m1, link(pool, m2, link(pool, special)));
  EXPECT_EQ(chain_size(in), 20);
  ChainLink* rest = chain_update_sent(in, 13);
  EXPECT_EQ(rest->buf, m2);
  EXPECT_EQ(m1->size(), 0);
  EXPECT_EQ(m2->size(), 7);
  EXPECT_EQ(chain_update_sent(rest, 7), nullptr);  // only the special buffer is left: done

  File f;
  f.fd = 5;
  auto fbuf = [&](off_t pos, off_t last) {
    auto* b = pool.make<Buffer>();
    b->in_file = true;
    b->file = &f;
    b->file_pos = pos;
    b->file_last = last;
    return b;
  };
  // Contiguous ranges of one file coalesce; a gap ends the run.
  ChainLink* files =
      link(pool, fbuf(0, 100), link(pool, fbuf(100, 250), link(pool, fbuf(300, 400))));
  ChainLink* cur = files;
  EXPECT_EQ(chain_coalesce_file(&cur, 1 << 20), 250);
  EXPECT_EQ(cur->buf->file_pos, 300);
}

TEST(Pool, CleanupsRunInReverseAndLargeAllocations) {
  std::vector<int> order;
  {
    Pool pool;
    pool.add_cleanup([](void* v) { static_cast<std::vector<int>*>(v)->push_back(1); }, &order);
    pool.add_cleanup([](void* v) { static_cast<std::vector<int>*>(v)->push_back(2); }, &order);
    void* big = pool.alloc(100000);
    std::memset(big, 1, 100000);
    EXPECT_TRUE(pool.free_large(big));
    EXPECT_FALSE(pool.free_large(big));
    for (int i = 0; i < 10000; i++) ASSERT_NE(pool.alloc(24), nullptr);
  }
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
}

// A large allocation freed at reset is the next request's of the same class: no malloc per
// request for a proxied response's header buffer. Only where memory is recycled (not under ASan).
TEST(Pool, LargeAllocationsAreReusedByClass) {
  if (!kRecycleMemory) GTEST_SKIP() << "memory is not recycled in sanitizer builds";
  Pool::trim_block_cache();
  Pool pool;
  void* a = pool.alloc(4096);
  void* b = pool.alloc(70000);
  std::memset(a, 1, 4096);
  std::memset(b, 1, 70000);
  pool.reset();
  EXPECT_EQ(pool.alloc(3000), a);    // the 4 KiB class
  EXPECT_EQ(pool.alloc(100000), b);  // the 128 KiB class
  EXPECT_NE(pool.alloc(4096), a);
  void* huge = pool.alloc(1 << 20);  // beyond the classes: its own, never cached
  EXPECT_TRUE(pool.free_large(huge));
}

}  // namespace
}  // namespace weir
