// An intrusive doubly linked list with a head node, for LRU order in shared zones (limit_req,
// limit_conn, the cache): the most recently used at the front, expiry from the back. Like the
// tree, it holds only pointers into the memory its nodes live in. nginx: src/core/ngx_queue.h
#pragma once

namespace weir {

struct QueueNode {
  QueueNode* prev = this;
  QueueNode* next = this;

  bool empty() const { return next == this; }
  // As the first node of the list whose head this is.
  void push_front(QueueNode* n) {
    n->next = next;
    n->prev = this;
    next->prev = n;
    next = n;
  }
  QueueNode* back() const { return empty() ? nullptr : prev; }
  void unlink() {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
};

}  // namespace weir
