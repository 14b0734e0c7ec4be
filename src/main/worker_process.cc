// Worker processes and the single process (master_process off): limits, environment and user, the
// event loop, graceful and fast exit, reloading in place. nginx: src/os/unix/ngx_process_cycle.c
// (ngx_worker_process_cycle, ngx_single_process_cycle)
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <vector>

#include "core/regex.h"
#include "core/time_cache.h"
#include "event/connection.h"
#include "event/event_loop.h"
#include "event/listening.h"
#include "http/http_connection.h"
#include "main/core_module.h"
#include "main/process_internal.h"
#include "os/process.h"
#include "os/signals.h"

extern char** environ;

namespace weir {

namespace {

PendingSignals& g_sig = pending_signals();

struct WorkerState {
  EventLoop loop;
  ConnectionPool pool;
  bool exiting = false;
  Event shutdown_timer;
};

void shutdown_timer_handler(Event&) {
  // worker_shutdown_timeout: whatever is still running is closed now.
  ConnectionPool::current->for_each_in_use([](Connection& c) {
    if (c.is_listening) return;
    c.close = true;
    c.error = true;
    c.read.handler(c.read);
  });
}

// The environment workers get: TZ plus what `env` names (NAME passes the master's value, NAME=value
// sets one).
void apply_env(Cycle& cycle) {
  CoreConf& cc = core_conf(cycle);
  std::vector<std::string> keep{"TZ"};
  std::vector<std::string> set;
  for (const std::string& e : cc.env) {
    if (e.find('=') != std::string::npos) {
      set.push_back(e);
    } else {
      keep.push_back(e);
    }
  }
  std::vector<char*> out;
  for (char** e = environ; *e != nullptr; e++) {
    std::string_view v(*e);
    std::string_view name = v.substr(0, v.find('='));
    for (const std::string& k : keep) {
      if (name == k) out.push_back(*e);
    }
  }
  static std::vector<std::string> storage;
  storage = set;
  for (std::string& s : storage) out.push_back(s.data());
  static std::vector<char*> env;
  env = out;
  env.push_back(nullptr);
  environ = env.data();
}

AcceptOptions accept_options(const EventConf& ec) {
  AcceptOptions ao;
  ao.multi_accept = *ec.multi_accept;
  ao.exclusive = true;
  ao.debug_connection = ec.debug_connection;
  ao.debug_unix = ec.debug_unix;
  return ao;
}

Status init_worker(Cycle& cycle, WorkerState& w, int slot) {
  EventConf& ec = event_conf(cycle);
  if (Status s = w.loop.init(*ec.epoll_events); !s.ok()) return s;
  w.loop.set_aio_requests(*ec.aio_requests);
  w.loop.set_wait_sigmask(&no_signals());
  w.pool.init(*ec.connections);
  ConnectionPool::current = &w.pool;
  AcceptOptions ao = accept_options(ec);
  for (auto& ls : cycle.listening) {
    if (ls->fd < 0) continue;
    if (ls->worker != -1 && ls->worker != slot) {
      ::close(ls->fd);  // another worker's reuseport copy
      ls->fd = -1;
      continue;
    }
    if (Status s = enable_accept(*ls, w.pool, w.loop, ao); !s.ok()) return s;
  }
  for (Module* m : all_modules()) {
    if (m->init_process != nullptr) {
      if (Status s = m->init_process(cycle); !s.ok()) return s;
    }
  }
  return {};
}

[[noreturn]] void worker_exit(Cycle& cycle) {
  for (Module* m : all_modules()) {
    if (m->exit_process != nullptr) m->exit_process(cycle);
  }
  log_error(LogLevel::Notice, cycle.log, 0, "exit");
  check_leaks();
  ::_exit(0);
}

void begin_graceful_exit(Cycle& cycle, WorkerState& w, bool title) {
  if (w.exiting) return;
  w.exiting = true;
  set_worker_exiting(true);
  log_error(LogLevel::Notice, cycle.log, 0, "gracefully shutting down");
  if (title) set_proc_title("weir: worker process is shutting down");
  for (auto& ls : cycle.listening) disable_accept(*ls);
  w.pool.close_idle();
  uint64_t timeout = *core_conf(cycle).shutdown_timeout;
  if (timeout != 0) {
    w.shutdown_timer.handler = shutdown_timer_handler;
    w.shutdown_timer.cancelable = true;
    w.loop.add_timer(w.shutdown_timer, timeout);
  }
}

bool worker_idle(WorkerState& w) {
  return w.loop.no_timers_left() && w.pool.in_use() == w.pool.listening_count;
}

}  // namespace

void apply_worker_limits(Cycle& cycle, int slot) {
  CoreConf& cc = core_conf(cycle);
  if (*cc.priority != 0 && ::setpriority(PRIO_PROCESS, 0, *cc.priority) < 0) {
    log_error(LogLevel::Alert, cycle.log, errno, "setpriority(%d) failed", *cc.priority);
  }
  if (*cc.rlimit_nofile != -1) {
    if (Status s = set_nofile_limit(static_cast<long>(*cc.rlimit_nofile)); !s.ok()) {
      log_error(LogLevel::Alert, cycle.log, 0, "%s", s.message().c_str());
    }
  }
  if (*cc.rlimit_core != -1) {
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(*cc.rlimit_core);
    if (::setrlimit(RLIMIT_CORE, &rl) < 0) {
      log_error(LogLevel::Alert, cycle.log, errno, "setrlimit(RLIMIT_CORE, %lld) failed",
                static_cast<long long>(*cc.rlimit_core));
    }
  }
  if (::geteuid() == 0 && cc.user != static_cast<uid_t>(-1)) {
    if (Status s = switch_user(cc.user, cc.group, cc.username, cycle.transparent); !s.ok()) {
      log_error(LogLevel::Emerg, cycle.log, 0, "%s", s.message().c_str());
      ::_exit(2);
    }
  }
  if (slot >= 0 && (cc.cpu_affinity_auto || !cc.cpu_affinity.empty())) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cc.cpu_affinity_auto) {
      long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
      CPU_SET(slot % (ncpu > 0 ? ncpu : 1), &set);
    } else {
      const auto& cpus = cc.cpu_affinity[std::min<size_t>(slot, cc.cpu_affinity.size() - 1)];
      for (int cpu : cpus) CPU_SET(cpu, &set);
    }
    if (::sched_setaffinity(0, sizeof set, &set) < 0) {
      log_error(LogLevel::Alert, cycle.log, errno, "sched_setaffinity() failed");
    }
  }
  if (!cc.working_directory.empty() && ::chdir(cc.working_directory.c_str()) < 0) {
    log_error(LogLevel::Alert, cycle.log, errno, "chdir(\"%s\") failed",
              cc.working_directory.c_str());
    ::_exit(2);
  }
}

[[noreturn]] void worker_main(Cycle& cycle, int slot) {
  log_set_pid(static_cast<int>(::getpid()));
  apply_env(cycle);
  apply_worker_limits(cycle, slot);
  set_worker_number(slot);
  static WorkerState w;
  if (Status s = init_worker(cycle, w, slot); !s.ok()) {
    log_error(LogLevel::Emerg, cycle.log, 0, "%s", s.message().c_str());
    ::_exit(2);
  }
  set_proc_title("weir: worker process");
  for (;;) {
    if (w.exiting && worker_idle(w)) {
      log_error(LogLevel::Notice, cycle.log, 0, "exiting");
      worker_exit(cycle);
    }
    w.loop.process_events(-1);
    forget_signals();
    if (g_sig.terminate) {
      log_error(LogLevel::Notice, cycle.log, 0, "exiting");
      worker_exit(cycle);
    }
    if (g_sig.quit) {
      g_sig.quit = 0;
      begin_graceful_exit(cycle, w, true);
    }
    if (g_sig.reopen) {
      g_sig.reopen = 0;
      log_error(LogLevel::Notice, cycle.log, 0, "reopening logs");
      reopen_files(cycle, false);
    }
  }
}

int run_single(std::unique_ptr<Cycle> cycle, const Options& opt) {
  install_signals();
  make_shared_counter();
  CoreConf& cc = core_conf(*cycle);
  std::string pid_path = cc.pid;
  if (Status s = write_pid_file(pid_path); !s.ok()) {
    log_error(LogLevel::Emerg, cycle->log, 0, "%s", s.message().c_str());
    return 1;
  }
  daemon_started();
  log_echo_to_stderr(false);
  redirect_stderr(*cycle);
  log_startup(*cycle);
  apply_env(*cycle);
  static WorkerState w;
  if (Status s = init_worker(*cycle, w, 0); !s.ok()) {
    log_error(LogLevel::Emerg, cycle->log, 0, "%s", s.message().c_str());
    return 1;
  }
  // Configurations replaced by a reload stay alive: requests in flight still point into them.
  std::vector<std::unique_ptr<Cycle>> retired;
  for (;;) {
    if (w.exiting && worker_idle(w)) break;
    w.loop.process_events(-1);
    log_signals(cycle->log, true);
    if (g_sig.terminate) break;
    if (g_sig.quit) {
      g_sig.quit = 0;
      begin_graceful_exit(*cycle, w, false);
    }
    if (g_sig.reconfigure && !w.exiting) {
      g_sig.reconfigure = 0;
      std::unique_ptr<Cycle> next = reload(opt, *cycle);
      if (next != nullptr) {
        for (auto& ls : cycle->listening) disable_accept(*ls, false);
        AcceptOptions ao = accept_options(event_conf(*next));
        for (auto& ls : next->listening) {
          if (ls->fd < 0) continue;
          if (Status s = enable_accept(*ls, w.pool, w.loop, ao); !s.ok()) {
            log_error(LogLevel::Alert, next->log, 0, "%s", s.message().c_str());
          }
        }
        release_old_listening(*cycle, *next);
        retired.push_back(std::move(cycle));
        cycle = std::move(next);
        for (Module* m : all_modules()) {
          if (m->init_process != nullptr) (void)m->init_process(*cycle);
        }
      }
    }
    if (g_sig.reopen) {
      g_sig.reopen = 0;
      log_error(LogLevel::Notice, cycle->log, 0, "reopening logs");
      reopen_files(*cycle, false);
    }
  }
  for (Module* m : all_modules()) {
    if (m->exit_process != nullptr) m->exit_process(*cycle);
  }
  ::unlink(core_conf(*cycle).pid.c_str());
  log_error(LogLevel::Notice, cycle->log, 0, "exit");
  return 0;
}

}  // namespace weir
