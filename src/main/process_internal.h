// What the master, the workers and the single process share: the pid file, log reopening, the
// connection counter page, start-up notices, reloading a configuration, and a worker's main loop.
// Internal to src/main/. nginx: src/os/unix/ngx_process_cycle.c
#pragma once

#include <memory>
#include <string>

#include "conf/cycle.h"
#include "main/process_cycle.h"

namespace weir {

// The page of shared memory $connection numbers are counted in (made once, before forking).
void make_shared_counter();
Status write_pid_file(const std::string& path);
// A daemon's stderr becomes its error log file, as nginx's (so what writes to stderr neither
// vanishes nor holds the starter's terminal or pipe); nothing when the log is stderr itself.
void redirect_stderr(Cycle& cycle);
// Reopens every log file (USR1); the master chowns the new files to `user`.
void reopen_files(Cycle& cycle, bool master);
// "using the epoll event method", the version, the OS and the file limit, as nginx logs them.
void log_startup(Cycle& cycle);
// Loads and opens the configuration again (HUP): the new cycle, or nullptr (logged). Either way the
// verdict is written beside the pid file for the signaller.
std::unique_ptr<Cycle> reload(const Options& opt, Cycle& old);
// A failed new cycle's sockets are closed; after a reload, the old cycle closes what was not taken.
void close_new_listening(Cycle& cycle);
void release_old_listening(Cycle& old, Cycle& cycle);
// A worker process: limits, user, the event loop until it exits.
[[noreturn]] void worker_main(Cycle& cycle, int slot);
// A worker's priority, limits, user and working directory (slot: its CPU affinity; -1: none).
void apply_worker_limits(Cycle& cycle, int slot);

// The cache's helper processes (main/cache_process.cc).
enum class ProcessKind : uint8_t { Worker, CacheManager, CacheLoader };
const char* process_name(ProcessKind kind);
// The manager runs while the configuration has a managed path; the loader once per start.
bool wants_process(const Cycle& cycle, ProcessKind kind);
[[noreturn]] void cache_process_main(Cycle& cycle, ProcessKind kind);

}  // namespace weir
