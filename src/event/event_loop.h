// EventLoop: epoll in edge-triggered mode (each connection is registered once for both directions),
// timers in a binary heap keyed by monotonic ms (lazily re-armed, as nginx's rbtree timers are),
// and a posted queue run after each batch so that nothing is destroyed inside its own callback. A
// second queue holds events for the next round: a writer that stopped at sendfile_max_chunk with
// the socket still writable lets the other connections' events in first, then continues without
// waiting for the kernel (edge-triggered epoll would not report the socket again). nginx:
// src/event/modules/ngx_epoll_module.c, src/event/ngx_event_timer.c, src/event/ngx_event_posted.c
#pragma once

#include <signal.h>
#include <sys/epoll.h>

#include <cstddef>
#include <vector>

#include "core/status.h"
#include "event/event.h"

namespace weir {

struct Connection;

class EventLoop {
 public:
  EventLoop() = default;
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Status init(int max_events);

  // Registers both directions of a connection, edge-triggered, once for its lifetime. Error is
  // logged at alert.
  Rc add_connection(Connection& c);
  // Listening sockets: level-triggered read, EPOLLEXCLUSIVE so one worker wakes per connection.
  Rc add_listening(Connection& c, bool exclusive);
  // Error (not logged) when the descriptor was not registered.
  Rc del_connection(Connection& c);

  void add_timer(Event& ev, clock::msec_t ms);
  void del_timer(Event& ev);
  void post(Event& ev);
  // Runs ev after the next wait, which then does not block.
  void post_next_round(Event& ev);
  void unpost(Event& ev);

  // Waits for events (no longer than the nearest timer, or timeout_ms when no timer is set; -1 =
  // forever), dispatches them, runs expired timers, then the posted queue.
  void process_events(int timeout_ms);

  // True when only cancelable timers are left (a shutting-down worker may exit).
  bool no_timers_left() const;
  size_t timer_count() const { return heap_.size(); }
  // Cancels every timer (the handlers run with timedout set) - used at fast shutdown.
  void expire_all_timers();
  // Signals stay blocked except during the wait (epoll_pwait with this mask), so none is lost.
  void set_wait_sigmask(const sigset_t* mask) { wait_mask_ = mask; }

  // Asynchronous file reads (`aio on`) in flight, at most worker_aio_requests, as nginx's AIO
  // context holds at most that many: a read past the limit is made in the loop, as nginx makes it
  // when io_submit() says EAGAIN.
  void set_aio_requests(int limit) { aio_limit_ = limit; }
  bool take_aio_request() {
    if (aio_in_flight_ >= aio_limit_) return false;
    aio_in_flight_++;
    return true;
  }
  void release_aio_request() { aio_in_flight_--; }

  static EventLoop* current;

 private:
  void heap_up(size_t i);
  void heap_down(size_t i);
  void heap_remove(size_t i);
  void run_timers();
  void run_posted();

  int epfd_ = -1;
  std::vector<epoll_event> events_;
  std::vector<Event*> heap_;
  struct Queue {
    Event* head = nullptr;
    Event* tail = nullptr;
    void push(Event& ev);
    void remove(Event& ev);
  };
  Queue posted_;
  Queue next_round_;
  const sigset_t* wait_mask_ = nullptr;
  int aio_limit_ = 32;
  int aio_in_flight_ = 0;
};

// The running loop's operations, for code that does not hold the loop.
inline void add_timer(Event& ev, clock::msec_t ms) {
  EventLoop::current->add_timer(ev, ms);
}
inline void del_timer(Event& ev) {
  if (ev.timer_set) EventLoop::current->del_timer(ev);
}
inline void post_event(Event& ev) {
  EventLoop::current->post(ev);
}
inline void post_event_next_round(Event& ev) {
  EventLoop::current->post_next_round(ev);
}
inline void delete_posted_event(Event& ev) {
  if (ev.posted) EventLoop::current->unpost(ev);
}

// A worker's own timer that comes back for the worker's life (health checks, names to resolve):
// its log writes where parent's does; cancelable, so that it never holds an exiting worker; the
// first run at once. The handler re-arms it.
inline void start_worker_timer(Event& ev, Log& log, const Log& parent, void (*handler)(Event&),
                               void* data) {
  log.sink = parent.sink;
  ev.data = data;
  ev.log = &log;
  ev.handler = handler;
  ev.cancelable = true;
  add_timer(ev, 1);
}

}  // namespace weir
