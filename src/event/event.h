// Event: one direction of a connection (or a timer-only event): readiness flags set by the loop, a
// handler (a plain function pointer, no std::function on hot paths), a timer slot in the loop's
// heap and a place in the posted queue. nginx: src/event/ngx_event.h (ngx_event_t)
#pragma once

#include <cstdint>

#include "core/log.h"
#include "core/time_cache.h"

namespace weir {

struct Event;
using EventHandler = void (*)(Event& ev);

struct Event {
  EventHandler handler = nullptr;
  void* data = nullptr;  // usually the Connection
  const Log* log = nullptr;

  clock::msec_t timer_key = 0;
  int heap_index = -1;  // position in the timer heap while timer_set
  Event* posted_prev = nullptr;
  Event* posted_next = nullptr;

  bool write : 1 = false;
  bool accept : 1 = false;
  bool active : 1 = false;  // registered with epoll
  bool ready : 1 = false;   // data (read) or room (write) is available
  bool eof : 1 = false;
  bool pending_eof : 1 = false;  // EPOLLRDHUP seen: the peer closed its side
  bool error : 1 = false;
  bool timedout : 1 = false;
  bool timer_set : 1 = false;
  bool delayed : 1 = false;  // limit_rate / limit_req pause
  bool posted : 1 = false;
  bool posted_next_round : 1 = false;  // queued for after the next wait rather than this round
  bool closed : 1 = false;
  bool cancelable : 1 = false;  // a pending timer that must not keep a shutting-down worker alive
  bool instance : 1 = false;    // flips on reuse so stale epoll reports are recognised

  // The event is ready to be handled again without waiting for the kernel (e.g. data left in a
  // buffer).
  bool available : 1 = false;
};

}  // namespace weir
