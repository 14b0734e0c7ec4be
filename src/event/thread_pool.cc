#include "event/thread_pool.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "event/event_loop.h"

namespace weir {

Status ThreadPool::start(const Log& log) {
  if (running()) return {};
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Status::error(std::string("eventfd() failed: ") + std::strerror(errno));
  notify_.fd = fd;
  notify_.own_log.sink = log.sink;
  notify_.read.data = notify_.write.data = &notify_;
  notify_.read.log = notify_.write.log = notify_.log;
  notify_.write.write = true;
  notify_.data = this;
  notify_.read.handler = notified;
  notify_.write.handler = [](Event&) {};  // an eventfd is always writable
  if (EventLoop::current->add_connection(notify_) != Rc::Ok) {
    ::close(fd);
    notify_.fd = -1;
    return Status::error("epoll_ctl() failed for a thread pool");
  }
  // The threads take no signal: they are blocked while the threads are made (and inherited).
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  stopping_ = false;
  workers_.reserve(static_cast<size_t>(threads_));
  // Named after the pool, as top and /proc show threads (at most 15 bytes), before it serves.
  std::string title = name_.substr(0, 15);
  for (int i = 0; i < threads_; i++) {
    workers_.emplace_back([this] { run(); });
    pthread_setname_np(workers_.back().native_handle(), title.c_str());
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return {};
}

void ThreadPool::stop() {
  if (!running()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  queue_head_ = done_head_ = nullptr;
  queue_tail_ = &queue_head_;
  done_tail_ = &done_head_;
  waiting_ = 0;
  // Closing the descriptor takes it out of epoll too: the loop may be gone already.
  ::close(notify_.fd);
  notify_.fd = -1;
}

bool ThreadPool::post(ThreadTask& task, const Log& log) {
  {
    std::lock_guard lock(mutex_);
    if (waiting_ >= max_queue_) {
      log_error(LogLevel::Error, log, 0, "thread pool \"%s\" queue overflow: %d tasks waiting",
                name_.c_str(), waiting_);
      return false;
    }
    task.next = nullptr;
    *queue_tail_ = &task;
    queue_tail_ = &task.next;
    waiting_++;
  }
  wake_.notify_one();
  return true;
}

void ThreadPool::run() {
  for (;;) {
    ThreadTask* task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || queue_head_ != nullptr; });
      if (stopping_) return;
      task = queue_head_;
      queue_head_ = task->next;
      if (queue_head_ == nullptr) queue_tail_ = &queue_head_;
      waiting_--;
    }
    task->work(*task);
    {
      std::lock_guard lock(mutex_);
      task->next = nullptr;
      *done_tail_ = task;
      done_tail_ = &task->next;
    }
    uint64_t one = 1;
    ssize_t n = ::write(notify_.fd, &one, sizeof one);
    (void)n;  // the counter cannot overflow in practice; the loop reads every report at once
  }
}

void ThreadPool::notified(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* self = static_cast<ThreadPool*>(c->data);
  // One read takes the whole count (and clears it): the done list holds every task it counted.
  uint64_t count;
  ssize_t n = ::read(c->fd, &count, sizeof count);
  (void)n;
  ev.ready = false;
  ThreadTask* done;
  {
    std::lock_guard lock(self->mutex_);
    done = self->done_head_;
    self->done_head_ = nullptr;
    self->done_tail_ = &self->done_head_;
  }
  while (done != nullptr) {
    ThreadTask* next = done->next;
    done->done(*done);
    done = next;
  }
}

}  // namespace weir
