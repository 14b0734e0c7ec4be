// An intrusive red-black tree for state in shared memory (limit_req's and limit_conn's nodes, the
// cache's keys): a node embeds RbNode; the tree and its sentinel live wherever the tree object is
// put (in the zone), so every process mapping the zone walks the same tree. Ordered by key, then by
// an optional less() for equal keys (a hash and then the bytes it hashed). No allocation here.
// nginx: src/core/ngx_rbtree.c
#pragma once

#include <cstdint>

namespace weir {

struct RbNode {
  uintptr_t key = 0;
  RbNode* child[2] = {nullptr, nullptr};  // left, right
  RbNode* parent = nullptr;
  bool red = false;

  RbNode* left() const { return child[0]; }
  RbNode* right() const { return child[1]; }
};

class RbTree {
 public:
  using Less = bool (*)(const RbNode& a, const RbNode& b);

  RbTree() { root_ = &sentinel_; }
  RbTree(const RbTree&) = delete;
  RbTree& operator=(const RbTree&) = delete;

  // Inserts n: by key, then (equal keys) by less, or after the equal ones when less is null.
  void insert(RbNode* n, Less less = nullptr);
  void erase(RbNode* n);

  bool empty() const { return root_ == &sentinel_; }
  bool is_nil(const RbNode* n) const { return n == &sentinel_; }
  RbNode* root() const { return root_; }
  RbNode* min() const;  // nullptr when empty
  // The node after n in order (nullptr at the end).
  RbNode* next(const RbNode* n) const;

  // A node for which cmp(node) is 0; cmp answers < 0 to go left, > 0 to go right.
  template <class Cmp>
  RbNode* find(Cmp cmp) const {
    RbNode* n = root_;
    while (n != &sentinel_) {
      int c = cmp(*n);
      if (c == 0) return n;
      n = n->child[c < 0 ? 0 : 1];
    }
    return nullptr;
  }

 private:
  // Turns x's child on side 1 - d up into x's place, x going down on side d (d = 0: left).
  void rotate(RbNode* x, int d);
  void replace(RbNode* old, RbNode* n);  // n takes old's place under old's parent
  RbNode* subtree_min(RbNode* n) const;

  RbNode* root_;
  RbNode sentinel_;
};

}  // namespace weir
