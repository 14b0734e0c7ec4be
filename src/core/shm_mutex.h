// A mutex in shared memory for the processes that map it (the workers of one zone): an atomic word
// holding the owner's pid, taken by spinning a little when there are other CPUs, then by sleeping
// on a futex. The pid lets the master free a lock whose holder died (force_unlock), as nginx's
// ngx_shmtx does. nginx: src/core/ngx_shmtx.c
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace weir {

// This process's pid, cached (and reset in a forked child).
extern pid_t g_self_pid;
pid_t cache_self_pid();
inline pid_t self_pid() {
  return g_self_pid != 0 ? g_self_pid : cache_self_pid();
}

class ShmMutex {
 public:
  // The uncontended path is inline: a load and a compare-and-swap.
  void lock() {
    if (!try_lock()) lock_contended();
  }
  bool try_lock() {
    int32_t expected = 0;
    return owner_.load(std::memory_order_relaxed) == 0 &&
           owner_.compare_exchange_strong(expected, self_pid(), std::memory_order_acquire);
  }
  void unlock() {
    // seq_cst here and in lock_contended: the store of 0 and the look at waiters_ must not pass
    // each other, or a sleeper could miss its wake-up.
    owner_.store(0, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) != 0) wake_one();
  }
  // The holder died with the lock: take it back. True when pid held it.
  bool force_unlock(pid_t pid);

 private:
  void lock_contended();
  void wake_one();

  std::atomic<int32_t> owner_{0};  // 0: free; else the holder's pid
  std::atomic<uint32_t> waiters_{0};
};

static_assert(std::atomic<int32_t>::is_always_lock_free);

// Holds a ShmMutex for a scope.
class ShmLock {
 public:
  explicit ShmLock(ShmMutex& m) : m_(m) { m_.lock(); }
  ~ShmLock() { m_.unlock(); }
  ShmLock(const ShmLock&) = delete;
  ShmLock& operator=(const ShmLock&) = delete;

 private:
  ShmMutex& m_;
};

}  // namespace weir
