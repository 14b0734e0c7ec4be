#include "core/rbtree.h"

namespace weir {

// The fix-ups below are written once for a direction d and its mirror 1 - d.

void RbTree::replace(RbNode* old, RbNode* n) {
  if (old == root_) {
    root_ = n;
  } else {
    old->parent->child[old == old->parent->child[0] ? 0 : 1] = n;
  }
}

void RbTree::rotate(RbNode* x, int d) {
  RbNode* y = x->child[1 - d];
  x->child[1 - d] = y->child[d];
  if (y->child[d] != &sentinel_) y->child[d]->parent = x;
  y->parent = x->parent;
  replace(x, y);
  y->child[d] = x;
  x->parent = y;
}

void RbTree::insert(RbNode* n, Less less) {
  n->child[0] = n->child[1] = &sentinel_;
  if (root_ == &sentinel_) {
    n->parent = nullptr;
    n->red = false;
    root_ = n;
    return;
  }
  RbNode* p = root_;
  for (;;) {
    bool go_left = n->key != p->key ? n->key < p->key : (less != nullptr && less(*n, *p));
    RbNode*& child = p->child[go_left ? 0 : 1];
    if (child == &sentinel_) {
      child = n;
      break;
    }
    p = child;
  }
  n->parent = p;
  n->red = true;
  // Restore the colours: no red node has a red child.
  while (n != root_ && n->parent->red) {
    RbNode* g = n->parent->parent;
    int d = n->parent == g->child[0] ? 0 : 1;  // the parent's side
    RbNode* uncle = g->child[1 - d];
    if (uncle->red) {
      n->parent->red = false;
      uncle->red = false;
      g->red = true;
      n = g;
      continue;
    }
    if (n == n->parent->child[1 - d]) {
      n = n->parent;
      rotate(n, d);
    }
    n->parent->red = false;
    g->red = true;
    rotate(g, 1 - d);
  }
  root_->red = false;
}

RbNode* RbTree::subtree_min(RbNode* n) const {
  while (n->child[0] != &sentinel_) n = n->child[0];
  return n;
}

RbNode* RbTree::min() const {
  return empty() ? nullptr : subtree_min(root_);
}

RbNode* RbTree::next(const RbNode* n) const {
  if (n->child[1] != &sentinel_) return subtree_min(n->child[1]);
  const RbNode* p = n->parent;
  while (p != nullptr && n == p->child[1]) {
    n = p;
    p = p->parent;
  }
  return const_cast<RbNode*>(p);
}

void RbTree::erase(RbNode* z) {
  // y: the node that leaves its place (z, or z's successor when z has two children); x: y's
  // child that moves up (maybe the sentinel, whose parent is set for the fix-up).
  RbNode* y = z;
  RbNode* x;
  if (z->child[0] == &sentinel_) {
    x = z->child[1];
  } else if (z->child[1] == &sentinel_) {
    x = z->child[0];
  } else {
    y = subtree_min(z->child[1]);
    x = y->child[1];
  }
  bool removed_red = y->red;
  if (y == z) {
    x->parent = z->parent;
    replace(z, x);
  } else {
    // y takes z's place and colour.
    if (y->parent == z) {
      x->parent = y;
    } else {
      x->parent = y->parent;
      y->parent->child[0] = x;
      y->child[1] = z->child[1];
      y->child[1]->parent = y;
    }
    y->child[0] = z->child[0];
    y->child[0]->parent = y;
    y->parent = z->parent;
    y->red = z->red;
    replace(z, y);
  }
  z->child[0] = z->child[1] = z->parent = nullptr;
  if (root_ == &sentinel_) root_->parent = nullptr;
  if (removed_red) return;
  // A black node left: x carries an extra black until it can be dropped.
  while (x != root_ && !x->red) {
    int d = x == x->parent->child[0] ? 0 : 1;  // x's side
    RbNode* w = x->parent->child[1 - d];
    if (w->red) {
      w->red = false;
      x->parent->red = true;
      rotate(x->parent, d);
      w = x->parent->child[1 - d];
    }
    if (!w->child[0]->red && !w->child[1]->red) {
      w->red = true;
      x = x->parent;
      continue;
    }
    if (!w->child[1 - d]->red) {
      w->child[d]->red = false;
      w->red = true;
      rotate(w, 1 - d);
      w = x->parent->child[1 - d];
    }
    w->red = x->parent->red;
    x->parent->red = false;
    w->child[1 - d]->red = false;
    rotate(x->parent, d);
    x = root_;
  }
  x->red = false;
}

}  // namespace weir
