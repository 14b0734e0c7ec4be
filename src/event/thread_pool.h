// ThreadPool: a worker's threads for work that would block the event loop (a file read from a slow
// disk). A task's work runs in a pool thread and must touch only what the task owns; its done
// handler runs afterwards in the event loop, woken through an eventfd. Threads start in the worker
// (never in the master, which forks) and are joined when the pool goes. nginx:
// src/core/ngx_thread_pool.c
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/status.h"
#include "event/connection.h"

namespace weir {

struct ThreadTask {
  void (*work)(ThreadTask& task) = nullptr;  // in a pool thread
  void (*done)(ThreadTask& task) = nullptr;  // in the event loop, after work
  ThreadTask* next = nullptr;
};

// A worker's tasks of one kind, kept for reuse once done: no allocation per task in the long run.
template <class Task>
class TaskCache {
 public:
  Task* get(void (*work)(ThreadTask&), void (*done)(ThreadTask&)) {
    if (free_.empty()) {
      Task* t = all_.emplace_back(std::make_unique<Task>()).get();
      t->work = work;
      t->done = done;
      return t;
    }
    Task* t = free_.back();
    free_.pop_back();
    return t;
  }
  void put(Task* t) { free_.push_back(t); }

 private:
  std::vector<std::unique_ptr<Task>> all_;
  std::vector<Task*> free_;
};

class ThreadPool {
 public:
  // nginx's defaults for the pool named "default": 32 threads, 65536 waiting tasks.
  static constexpr int kDefaultThreads = 32;
  static constexpr int kDefaultMaxQueue = 65536;

  explicit ThreadPool(std::string name) : name_(std::move(name)) {}
  ~ThreadPool() { stop(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  const std::string& name() const { return name_; }
  // Until configured (thread_pool, or the default pool's defaults) a pool has no threads.
  void configure(int threads, int max_queue) {
    threads_ = threads;
    max_queue_ = max_queue;
  }
  int threads() const { return threads_; }
  int max_queue() const { return max_queue_; }
  bool running() const { return !workers_.empty(); }

  // In the worker: the threads, and the eventfd that brings finished tasks back to the loop.
  Status start(const Log& log);
  // Joins the threads (a task in a blocking read is waited for); tasks not begun are dropped.
  void stop();
  // Queues a task; false when max_queue tasks already wait (logged at error, as nginx's
  // "queue overflow").
  bool post(ThreadTask& task, const Log& log);

 private:
  void run();
  static void notified(Event& ev);

  std::string name_;
  int threads_ = 0;
  int max_queue_ = 0;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  ThreadTask* queue_head_ = nullptr;  // waiting, oldest first
  ThreadTask** queue_tail_ = &queue_head_;
  int waiting_ = 0;
  ThreadTask* done_head_ = nullptr;  // finished, for the loop
  ThreadTask** done_tail_ = &done_head_;
  bool stopping_ = false;
  Connection notify_;  // the eventfd in the loop; not one of worker_connections
};

}  // namespace weir
