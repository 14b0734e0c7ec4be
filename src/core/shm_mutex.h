// A mutex in shared memory for the processes that map it (the workers of one zone): an atomic word
// holding the owner's pid, taken by spinning a little when there are other CPUs, then by sleeping
// on a futex. The pid lets the master free a lock whose holder died (force_unlock), as nginx's
// ngx_shmtx does. nginx: src/core/ngx_shmtx.c
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace weir {

class ShmMutex {
 public:
  void lock();
  bool try_lock();
  void unlock();
  // The holder died with the lock: take it back. True when pid held it.
  bool force_unlock(pid_t pid);

 private:
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

// This process's pid, cached (and reset in a forked child).
pid_t self_pid();

}  // namespace weir
