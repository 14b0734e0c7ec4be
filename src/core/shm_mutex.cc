#include "core/shm_mutex.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

namespace weir {

namespace {

pid_t cached_pid = 0;

void forget_pid() {
  cached_pid = 0;
}

long futex(std::atomic<int32_t>* addr, int op, int32_t value) {
  // Not FUTEX_PRIVATE: the word is shared between processes.
  return ::syscall(SYS_futex, reinterpret_cast<int32_t*>(addr), op, value, nullptr, nullptr, 0);
}

bool many_cpus() {
  static const bool many = ::sysconf(_SC_NPROCESSORS_ONLN) > 1;
  return many;
}

void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

pid_t self_pid() {
  if (cached_pid == 0) {
    static const bool registered = ::pthread_atfork(nullptr, nullptr, forget_pid) == 0;
    (void)registered;
    cached_pid = ::getpid();
  }
  return cached_pid;
}

bool ShmMutex::try_lock() {
  int32_t expected = 0;
  return owner_.load(std::memory_order_relaxed) == 0 &&
         owner_.compare_exchange_strong(expected, self_pid(), std::memory_order_acquire);
}

void ShmMutex::lock() {
  if (try_lock()) return;
  if (many_cpus()) {
    // The holder is likely running on another CPU and about to let go.
    for (unsigned n = 1; n < 2048; n <<= 1) {
      for (unsigned i = 0; i < n; i++) cpu_pause();
      if (try_lock()) return;
    }
  }
  // seq_cst here and in unlock: the holder's store of 0 and its look at waiters_ must not pass
  // each other, or a sleeper could miss its wake-up.
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  for (;;) {
    if (try_lock()) break;
    int32_t seen = owner_.load(std::memory_order_seq_cst);
    if (seen != 0) futex(&owner_, FUTEX_WAIT, seen);
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

void ShmMutex::unlock() {
  owner_.store(0, std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_seq_cst) != 0) futex(&owner_, FUTEX_WAKE, 1);
}

bool ShmMutex::force_unlock(pid_t pid) {
  int32_t expected = pid;
  if (!owner_.compare_exchange_strong(expected, 0, std::memory_order_release)) return false;
  if (waiters_.load(std::memory_order_relaxed) != 0) futex(&owner_, FUTEX_WAKE, INT_MAX);
  return true;
}

}  // namespace weir
