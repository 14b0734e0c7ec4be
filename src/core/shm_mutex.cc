#include "core/shm_mutex.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

namespace weir {

namespace {

void forget_pid() {
  g_self_pid = 0;
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

pid_t g_self_pid = 0;

pid_t cache_self_pid() {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, forget_pid) == 0;
  (void)registered;
  g_self_pid = ::getpid();
  return g_self_pid;
}

void ShmMutex::lock_contended() {
  if (many_cpus()) {
    // The holder is likely running on another CPU and about to let go.
    for (unsigned n = 1; n < 2048; n <<= 1) {
      for (unsigned i = 0; i < n; i++) cpu_pause();
      if (try_lock()) return;
    }
  }
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  for (;;) {
    if (try_lock()) break;
    int32_t seen = owner_.load(std::memory_order_seq_cst);
    if (seen != 0) futex(&owner_, FUTEX_WAIT, seen);
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

void ShmMutex::wake_one() {
  futex(&owner_, FUTEX_WAKE, 1);
}

bool ShmMutex::force_unlock(pid_t pid) {
  int32_t expected = pid;
  if (!owner_.compare_exchange_strong(expected, 0, std::memory_order_release)) return false;
  if (waiters_.load(std::memory_order_relaxed) != 0) futex(&owner_, FUTEX_WAKE, INT_MAX);
  return true;
}

}  // namespace weir
