// The shared-memory toolkit: the slab allocator (sizes, exhaustion, merging of freed runs, and
// several forked writers sharing one zone under its mutex), the mutex (an exact count from several
// processes; a dead holder's lock taken back) and the red-black tree against std::multimap.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "core/queue.h"
#include "core/rbtree.h"
#include "core/slab.h"

namespace weir {
namespace {

struct Zone {
  explicit Zone(size_t size) : size(size) {
    addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  }
  ~Zone() { ::munmap(addr, size); }
  size_t size;
  void* addr;
};

TEST(Slab, SizesFitAndEverythingComesBack) {
  Zone z(1 << 20);
  SlabPool* pool = SlabPool::create(z.addr, z.size);
  ASSERT_NE(pool, nullptr);
  size_t total = pool->free_pages();
  EXPECT_EQ(total, pool->total_pages());
  EXPECT_GT(total, 240u);  // 256 pages less the descriptors
  std::vector<std::pair<char*, size_t>> held;
  for (size_t size : {1, 7, 8, 9, 100, 2048, 2049, 4096, 4097, 20000}) {
    for (int i = 0; i < 5; i++) {
      auto* p = static_cast<char*>(pool->alloc(size));
      ASSERT_NE(p, nullptr) << size;
      std::memset(p, static_cast<int>(size & 0xff), size);
      held.emplace_back(p, size);
    }
  }
  // Nothing overlaps.
  std::sort(held.begin(), held.end());
  for (size_t i = 1; i < held.size(); i++) {
    EXPECT_GE(held[i].first, held[i - 1].first + held[i - 1].second);
  }
  for (auto& [p, size] : held) {
    for (size_t j = 0; j < size; j++) ASSERT_EQ(static_cast<unsigned char>(p[j]), size & 0xff);
    pool->free(p);
  }
  EXPECT_EQ(pool->free_pages(), total);
  // Freed runs merged: the whole zone can be taken in one allocation again.
  void* all = pool->alloc(total * SlabPool::kPageSize);
  EXPECT_NE(all, nullptr);
  pool->free(all);
  EXPECT_EQ(pool->free_pages(), total);
}

TEST(Slab, ExhaustionIsAnAnswer) {
  Zone z(64 * 1024);
  SlabPool* pool = SlabPool::create(z.addr, z.size);
  ASSERT_NE(pool, nullptr);
  std::vector<void*> held;
  while (void* p = pool->alloc(1000)) held.push_back(p);
  EXPECT_FALSE(held.empty());
  EXPECT_EQ(pool->alloc(5000), nullptr);
  pool->free(held.back());
  held.pop_back();
  EXPECT_NE(pool->alloc(1000), nullptr);              // the freed slot again
  EXPECT_EQ(SlabPool::create(z.addr, 100), nullptr);  // too small for one page
}

TEST(Slab, ForkedWritersShareOneZone) {
  Zone z(4 << 20);
  SlabPool* pool = SlabPool::create(z.addr, z.size);
  ASSERT_NE(pool, nullptr);
  size_t total = pool->free_pages();
  constexpr int kWriters = 4;
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; w++) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::mt19937 rng(static_cast<unsigned>(w) + 1);
      std::vector<std::pair<unsigned char*, size_t>> mine;
      bool ok = true;
      for (int op = 0; op < 20000 && ok; op++) {
        if (mine.empty() || rng() % 3 != 0) {
          size_t size = 1 + rng() % (rng() % 8 == 0 ? 12000 : 600);
          auto* p = static_cast<unsigned char*>(pool->alloc(size));
          if (p == nullptr) continue;  // full for now: fine
          std::memset(p, w + 1, size);
          mine.emplace_back(p, size);
        } else {
          size_t i = rng() % mine.size();
          auto [p, size] = mine[i];
          for (size_t j = 0; j < size; j++) ok = ok && p[j] == w + 1;  // nobody wrote over it
          pool->free(p);
          mine[i] = mine.back();
          mine.pop_back();
        }
      }
      for (auto [p, size] : mine) {
        for (size_t j = 0; j < size; j++) ok = ok && p[j] == w + 1;
        pool->free(p);
      }
      ::_exit(ok ? 0 : 1);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(pool->free_pages(), total);
}

TEST(ShmMutex, ExactCountAcrossProcessesAndDeadHolder) {
  Zone z(4096);
  struct Shared {
    ShmMutex m;
    long counter = 0;
  };
  auto* s = new (z.addr) Shared();
  std::vector<pid_t> pids;
  for (int w = 0; w < 3; w++) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0; i < 100000; i++) {
        ShmLock lock(s->m);
        s->counter++;
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(s->counter, 300000);
  // A child that dies holding the lock: the parent takes it back by the child's pid.
  pid_t pid = ::fork();
  if (pid == 0) {
    s->m.lock();
    ::_exit(0);
  }
  ::waitpid(pid, nullptr, 0);
  EXPECT_FALSE(s->m.try_lock());
  EXPECT_FALSE(s->m.force_unlock(pid + 1));
  EXPECT_TRUE(s->m.force_unlock(pid));
  EXPECT_TRUE(s->m.try_lock());
  s->m.unlock();
}

struct Item {
  RbNode node;
  QueueNode lru;
  int value = 0;
};

// Every path from a node to the leaves has as many black nodes; no red node has a red child.
int check(const RbTree& t, const RbNode* n) {
  if (t.is_nil(n)) return 1;
  if (n->red) {
    EXPECT_FALSE(n->left()->red);
    EXPECT_FALSE(n->right()->red);
  }
  if (!t.is_nil(n->left())) {
    EXPECT_LE(n->left()->key, n->key);
  }
  if (!t.is_nil(n->right())) {
    EXPECT_GE(n->right()->key, n->key);
  }
  int l = check(t, n->left());
  int r = check(t, n->right());
  EXPECT_EQ(l, r);
  return l + (n->red ? 0 : 1);
}

TEST(RbTree, MatchesMultimapThroughInsertsAndErases) {
  RbTree tree;
  std::multimap<uintptr_t, Item*> model;
  std::vector<Item> items(3000);
  std::mt19937 rng(7);
  std::vector<Item*> in;
  for (int op = 0; op < 20000; op++) {
    if (op % 1000 == 0) check(tree, tree.root());  // the invariants hold all along
    if (in.size() < items.size() && (in.empty() || rng() % 2 == 0)) {
      Item* it = nullptr;
      for (Item& cand : items) {
        if (cand.node.parent == nullptr && cand.node.left() == nullptr &&
            &cand.node != tree.root()) {
          it = &cand;
          break;
        }
      }
      if (it == nullptr) continue;
      it->node.key = rng() % 500;  // many equal keys
      tree.insert(&it->node);
      model.emplace(it->node.key, it);
      in.push_back(it);
    } else {
      size_t i = rng() % in.size();
      Item* it = in[i];
      tree.erase(&it->node);
      auto range = model.equal_range(it->node.key);
      for (auto m = range.first; m != range.second; ++m) {
        if (m->second == it) {
          model.erase(m);
          break;
        }
      }
      it->node = RbNode{};
      in[i] = in.back();
      in.pop_back();
    }
  }
  check(tree, tree.root());
  std::vector<uintptr_t> walked;
  for (RbNode* n = tree.min(); n != nullptr; n = tree.next(n)) walked.push_back(n->key);
  std::vector<uintptr_t> want;
  for (auto& [k, v] : model) want.push_back(k);
  EXPECT_EQ(walked, want);
  uintptr_t probe = want.empty() ? 0 : want[want.size() / 2];
  RbNode* found = tree.find([&](const RbNode& n) {
    return probe < n.key ? -1 : probe > n.key ? 1 : 0;
  });
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->key, probe);
}

TEST(Queue, LeastRecentlyUsedAtTheBack) {
  QueueNode head;
  Item a, b, c;
  head.push_front(&a.lru);
  head.push_front(&b.lru);
  head.push_front(&c.lru);
  EXPECT_EQ(head.back(), &a.lru);
  a.lru.unlink();
  head.push_front(&a.lru);  // used again
  EXPECT_EQ(head.back(), &b.lru);
  b.lru.unlink();
  c.lru.unlink();
  a.lru.unlink();
  EXPECT_TRUE(head.empty());
}

}  // namespace
}  // namespace weir
