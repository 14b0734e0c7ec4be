// The cache manager and cache loader processes, as nginx's: forked by the master beside the
// workers, with a worker's user and limits and no listening socket. The manager runs each managed
// path's pass (expired and over-size entries leave the index and the disk) and sleeps until the
// next is due, respawned when it dies; the loader walks each path once after a start and exits.
// nginx: src/os/unix/ngx_process_cycle.c (ngx_cache_manager_process_cycle)
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "core/log.h"
#include "core/time_cache.h"
#include "event/listening.h"
#include "main/process_internal.h"
#include "os/process.h"
#include "os/signals.h"

namespace weir {

namespace {

PendingSignals& g_sig = pending_signals();

constexpr uint64_t kLongestSleep = 10000;  // ms: the manager looks again at least this often

bool asked_to_stop() {
  return g_sig.quit != 0 || g_sig.terminate != 0;
}

[[noreturn]] void cache_process_exit(Cycle& cycle) {
  clock::update();
  log_error(LogLevel::Notice, cycle.log, 0, "exit");
  ::_exit(0);
}

void sleep_ms(uint64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
  ::nanosleep(&ts, nullptr);  // a signal ends it early
}

}  // namespace

const char* process_name(ProcessKind kind) {
  switch (kind) {
    case ProcessKind::Worker:
      return "worker process";
    case ProcessKind::CacheManager:
      return "cache manager process";
    case ProcessKind::CacheLoader:
      return "cache loader process";
  }
  return "process";
}

bool wants_process(const Cycle& cycle, ProcessKind kind) {
  return std::any_of(
      cycle.managed_paths.begin(), cycle.managed_paths.end(), [&](const ManagedPath& p) {
        return kind == ProcessKind::CacheManager ? p.manage != nullptr : p.load != nullptr;
      });
}

[[noreturn]] void cache_process_main(Cycle& cycle, ProcessKind kind) {
  log_set_pid(static_cast<int>(::getpid()));
  for (auto& ls : cycle.listening) {
    if (ls->fd >= 0) ::close(ls->fd);
    ls->fd = -1;
  }
  apply_worker_limits(cycle, -1);
  set_proc_title(std::string("weir: ") + process_name(kind));
  ::sigprocmask(SIG_SETMASK, &no_signals(), nullptr);
  if (kind == ProcessKind::CacheLoader) {
    for (const ManagedPath& p : cycle.managed_paths) {
      if (p.load != nullptr && !asked_to_stop()) p.load(p.data, asked_to_stop);
    }
    cache_process_exit(cycle);
  }
  for (;;) {
    clock::update();
    uint64_t next = kLongestSleep;
    for (const ManagedPath& p : cycle.managed_paths) {
      if (p.manage != nullptr) next = std::min(next, p.manage(p.data, asked_to_stop));
    }
    if (asked_to_stop()) cache_process_exit(cycle);
    if (g_sig.reopen) {
      g_sig.reopen = 0;
      log_error(LogLevel::Notice, cycle.log, 0, "reopening logs");
      reopen_files(cycle, false);
    }
    sleep_ms(next);
    if (asked_to_stop()) cache_process_exit(cycle);
  }
}

}  // namespace weir
