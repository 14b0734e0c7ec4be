#include "event/event_loop.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "event/connection.h"

namespace weir {

EventLoop* EventLoop::current = nullptr;

namespace {
// Re-arming a timer to within this many ms of its old deadline is skipped (nginx's
// NGX_TIMER_LAZY_DELAY).
constexpr clock::msec_t kTimerLazyDelay = 300;

void* tag_pointer(Connection& c) {
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(&c) | (c.read.instance ? 1 : 0));
}
}  // namespace

EventLoop::~EventLoop() {
  if (epfd_ >= 0) ::close(epfd_);
  if (current == this) current = nullptr;
}

Status EventLoop::init(int max_events) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0)
    return Status::errorf("epoll_create1() failed (%d: %s)", errno, std::strerror(errno));
  events_.resize(max_events > 0 ? max_events : 512);
  heap_.reserve(1024);
  current = this;
  return {};
}

Rc EventLoop::add_connection(Connection& c) {
  epoll_event ee{};
  ee.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
  ee.data.ptr = tag_pointer(c);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ee) < 0) {
    log_error(LogLevel::Alert, *c.log, errno, "epoll_ctl(EPOLL_CTL_ADD, %d) failed", c.fd);
    return Rc::Error;
  }
  c.read.active = c.write.active = true;
  return Rc::Ok;
}

Rc EventLoop::add_listening(Connection& c, bool exclusive) {
  epoll_event ee{};
  ee.events = EPOLLIN | (exclusive ? static_cast<uint32_t>(EPOLLEXCLUSIVE) : 0u);
  ee.data.ptr = tag_pointer(c);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ee) < 0) {
    log_error(LogLevel::Alert, *c.log, errno, "epoll_ctl(EPOLL_CTL_ADD, %d) failed", c.fd);
    return Rc::Error;
  }
  c.read.active = true;
  return Rc::Ok;
}

Rc EventLoop::del_connection(Connection& c) {
  epoll_event ee{};
  c.read.active = c.write.active = false;
  if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, &ee) < 0) return Rc::Error;
  return Rc::Ok;
}

void EventLoop::heap_up(size_t i) {
  Event* ev = heap_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->timer_key <= ev->timer_key) break;
    heap_[i] = heap_[parent];
    heap_[i]->heap_index = static_cast<int>(i);
    i = parent;
  }
  heap_[i] = ev;
  ev->heap_index = static_cast<int>(i);
}

void EventLoop::heap_down(size_t i) {
  Event* ev = heap_[i];
  size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->timer_key < heap_[child]->timer_key) child++;
    if (ev->timer_key <= heap_[child]->timer_key) break;
    heap_[i] = heap_[child];
    heap_[i]->heap_index = static_cast<int>(i);
    i = child;
  }
  heap_[i] = ev;
  ev->heap_index = static_cast<int>(i);
}

void EventLoop::heap_remove(size_t i) {
  Event* last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {
    heap_[i] = last;
    last->heap_index = static_cast<int>(i);
    heap_down(i);
    heap_up(static_cast<size_t>(last->heap_index));
  }
}

void EventLoop::add_timer(Event& ev, clock::msec_t ms) {
  clock::msec_t key = clock::msec() + ms;
  if (ev.timer_set) {
    clock::msec_t diff = key > ev.timer_key ? key - ev.timer_key : ev.timer_key - key;
    if (diff < kTimerLazyDelay) return;
    del_timer(ev);
  }
  ev.timer_key = key;
  ev.timer_set = true;
  heap_.push_back(&ev);
  heap_up(heap_.size() - 1);
}

void EventLoop::del_timer(Event& ev) {
  if (!ev.timer_set) return;
  heap_remove(static_cast<size_t>(ev.heap_index));
  ev.heap_index = -1;
  ev.timer_set = false;
}

void EventLoop::Queue::push(Event& ev) {
  ev.posted_next = nullptr;
  ev.posted_prev = tail;
  if (tail != nullptr) {
    tail->posted_next = &ev;
  } else {
    head = &ev;
  }
  tail = &ev;
}

void EventLoop::Queue::remove(Event& ev) {
  if (ev.posted_prev != nullptr) {
    ev.posted_prev->posted_next = ev.posted_next;
  } else {
    head = ev.posted_next;
  }
  if (ev.posted_next != nullptr) {
    ev.posted_next->posted_prev = ev.posted_prev;
  } else {
    tail = ev.posted_prev;
  }
  ev.posted_prev = ev.posted_next = nullptr;
}

void EventLoop::post(Event& ev) {
  if (ev.posted) return;
  ev.posted = true;
  posted_.push(ev);
}

void EventLoop::post_next_round(Event& ev) {
  if (ev.posted) return;
  ev.posted = true;
  ev.posted_next_round = true;
  next_round_.push(ev);
}

void EventLoop::unpost(Event& ev) {
  if (!ev.posted) return;
  (ev.posted_next_round ? next_round_ : posted_).remove(ev);
  ev.posted = false;
  ev.posted_next_round = false;
}

void EventLoop::run_timers() {
  clock::msec_t now = clock::msec();
  while (!heap_.empty() && heap_[0]->timer_key <= now) {
    Event* ev = heap_[0];
    heap_remove(0);
    ev->heap_index = -1;
    ev->timer_set = false;
    ev->timedout = true;
    ev->handler(*ev);
  }
}

void EventLoop::run_posted() {
  while (posted_.head != nullptr) {
    Event* ev = posted_.head;
    unpost(*ev);
    ev->handler(*ev);
  }
}

bool EventLoop::no_timers_left() const {
  for (Event* ev : heap_) {
    if (!ev->cancelable) return false;
  }
  return true;
}

void EventLoop::expire_all_timers() {
  while (!heap_.empty()) {
    Event* ev = heap_[0];
    heap_remove(0);
    ev->heap_index = -1;
    ev->timer_set = false;
    ev->timedout = true;
    ev->handler(*ev);
  }
}

void EventLoop::process_events(int timeout_ms) {
  int timeout = timeout_ms;
  // Last round's next-round events run in this round, after the wait.
  while (next_round_.head != nullptr) {
    Event* ev = next_round_.head;
    unpost(*ev);
    post(*ev);
  }
  if (posted_.head != nullptr) {
    timeout = 0;
  } else if (!heap_.empty()) {
    clock::msec_t now = clock::msec();
    clock::msec_t key = heap_[0]->timer_key;
    int until = key > now ? static_cast<int>(key - now) : 0;
    if (timeout < 0 || until < timeout) timeout = until;
  }

  int n =
      ::epoll_pwait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout, wait_mask_);
  int err = n < 0 ? errno : 0;
  clock::update();
  if (n < 0) {
    if (err != EINTR) {
      Log log;
      log_error(LogLevel::Alert, log, err, "epoll_wait() failed");
    }
    n = 0;
  }

  for (int i = 0; i < n; i++) {
    auto tagged = reinterpret_cast<uintptr_t>(events_[i].data.ptr);
    bool instance = tagged & 1;
    auto* c = reinterpret_cast<Connection*>(tagged & ~uintptr_t{1});
    // A connection closed (and perhaps reused) earlier in this batch: the report is stale.
    if (c->fd == -1 || c->read.instance != instance) continue;
    uint32_t revents = events_[i].events;
    WEIR_DEBUG(*c->log, "epoll: fd:%d ev:%04X", c->fd, revents);
    if (revents & EPOLLERR) c->pending_error = true;
    if (revents & (EPOLLERR | EPOLLHUP)) revents |= EPOLLIN | EPOLLOUT;
    if ((revents & EPOLLIN) && c->read.active) {
      if (revents & EPOLLRDHUP) c->read.pending_eof = true;
      c->read.ready = true;
      c->read.available = true;
      if (c->write_waits_for_read) {
        c->write_waits_for_read = false;
        c->write.ready = true;
        post_event(c->write);
      }
      c->read.handler(c->read);
    }
    if ((revents & EPOLLOUT) && c->write.active) {
      if (c->fd == -1 || c->write.instance != instance) continue;
      c->write.ready = true;
      c->write.handler(c->write);
    }
  }

  run_timers();
  run_posted();
}

}  // namespace weir
