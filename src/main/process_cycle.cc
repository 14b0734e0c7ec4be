#include "main/process_cycle.h"

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
#include "os/process.h"
#include "os/signals.h"

extern char** environ;

namespace weir {

namespace {

PendingSignals& g_sig = pending_signals();

// A page of shared memory for counters every worker updates ($connection numbers).
uint64_t* g_counter_page = nullptr;

void make_shared_counter() {
  if (g_counter_page != nullptr) return;
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) g_counter_page = static_cast<uint64_t*>(p);
  set_connection_counter(g_counter_page);
}

Status write_pid_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::errorf("open() \"%s\" failed (%d: %s)", path.c_str(), errno,
                          std::strerror(errno));
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%d\n", static_cast<int>(::getpid()));
  bool ok = ::write(fd, buf, n) == n;
  ::close(fd);
  if (!ok) return Status::errorf("write() to \"%s\" failed", path.c_str());
  return {};
}

void reopen_files(Cycle& cycle, bool master) {
  CoreConf& cc = core_conf(cycle);
  for (OpenFile& f : cycle.open_files) {
    if (f.is_stderr() || f.fd < 0) continue;
    if (f.flush != nullptr) f.flush(f);
    if (int err = f.reopen(); err != 0) {
      log_error(LogLevel::Alert, cycle.log, err, "reopen() \"%s\" failed", f.name.c_str());
      continue;
    }
    // The master creates the new file; workers (another user) reopen it after.
    if (master && ::geteuid() == 0 && cc.user != static_cast<uid_t>(-1)) {
      if (::fchown(f.fd, cc.user, static_cast<gid_t>(-1)) < 0) {
        log_error(LogLevel::Emerg, cycle.log, errno, "chown(\"%s\", %d) failed", f.name.c_str(),
                  static_cast<int>(cc.user));
      }
    }
  }
}

// --- the worker
// ------------------------------------------------------------------------------------

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
    if (Status s = switch_user(cc.user, cc.group, cc.username); !s.ok()) {
      log_error(LogLevel::Emerg, cycle.log, 0, "%s", s.message().c_str());
      ::_exit(2);
    }
  }
  if (cc.cpu_affinity_auto || !cc.cpu_affinity.empty()) {
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

Status init_worker(Cycle& cycle, WorkerState& w, int slot) {
  EventConf& ec = event_conf(cycle);
  if (Status s = w.loop.init(512); !s.ok()) return s;
  w.loop.set_wait_sigmask(&no_signals());
  w.pool.init(*ec.connections);
  ConnectionPool::current = &w.pool;
  AcceptOptions ao;
  ao.multi_accept = *ec.multi_accept;
  ao.exclusive = true;
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

[[noreturn]] void worker_main(Cycle& cycle, int slot) {
  log_set_pid(static_cast<int>(::getpid()));
  apply_env(cycle);
  apply_worker_limits(cycle, slot);
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

// --- the master
// ------------------------------------------------------------------------------------

struct WorkerProc {
  pid_t pid;
  int slot;
  int generation;
  bool exiting;
};

pid_t spawn_worker(Cycle& cycle, int slot) {
  pid_t pid = ::fork();
  if (pid < 0) {
    log_error(LogLevel::Alert, cycle.log, errno, "fork() failed while spawning \"worker process\"");
    return -1;
  }
  if (pid == 0) {
    ::sigprocmask(SIG_BLOCK, &blocked_signals(), nullptr);
    g_sig.reconfigure = 0;
    g_sig.terminate = 0;
    g_sig.quit = 0;
    g_sig.reopen = 0;
    g_sig.reap = 0;
    g_sig.alarm = 0;
    worker_main(cycle, slot);
  }
  log_error(LogLevel::Notice, cycle.log, 0, "start worker process %d", static_cast<int>(pid));
  return pid;
}

void log_startup(Cycle& cycle) {
  log_error(LogLevel::Notice, cycle.log, 0, "using the \"epoll\" event method");
  log_error(LogLevel::Notice, cycle.log, 0, "weir/%s", WEIR_VERSION);
  struct utsname u;
  if (::uname(&u) == 0)
    log_error(LogLevel::Notice, cycle.log, 0, "OS: %s %s", u.sysname, u.release);
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    log_error(LogLevel::Notice, cycle.log, 0, "getrlimit(RLIMIT_NOFILE): %llu:%llu",
              static_cast<unsigned long long>(rl.rlim_cur),
              static_cast<unsigned long long>(rl.rlim_max));
  }
}

// Reuseport sockets: one per worker, each bound separately so the kernel spreads connections.
Status clone_reuseport(Cycle& cycle) {
  int n = *core_conf(cycle).worker_processes;
  std::vector<std::unique_ptr<Listening>> extra;
  for (auto& ls : cycle.listening) {
    if (!ls->opt.reuseport || ls->worker != -1) continue;
    ls->worker = 0;
    for (int i = 1; i < n; i++) {
      auto copy = std::make_unique<Listening>(*ls);
      copy->fd = -1;
      copy->worker = i;
      copy->connection = nullptr;
      extra.push_back(std::move(copy));
    }
  }
  for (auto& e : extra) cycle.listening.push_back(std::move(e));
  return {};
}

}  // namespace

std::unique_ptr<Cycle> load_cycle(const Options& opt, const Log* log) {
  auto cycle = std::make_unique<Cycle>();
  cycle->prefix = opt.prefix;
  cycle->conf_file = opt.conf_file;
  size_t slash = opt.conf_file.rfind('/');
  cycle->conf_prefix = slash == std::string::npos ? opt.prefix : opt.conf_file.substr(0, slash + 1);
  cycle->conf_param = opt.conf_param;
  cycle->error_log = opt.error_log;
  cycle->test_config = opt.test;
  cycle->quiet = opt.quiet;
  (void)log;
  return cycle;
}

Status open_cycle(Cycle& cycle, Cycle* old, bool test) {
  // The default error log, when the main context names none.
  if (cycle.log_sink == nullptr) {
    std::string path = cycle.error_log;
    if (path.empty()) path = cycle.prefix + "logs/error.log";
    auto* sink = cycle.pool.make<LogSink>();
    sink->level = LogLevel::Error;
    sink->file = cycle.open_file(path == "stderr" ? std::string()
                                                  : (path[0] == '/' ? path : cycle.prefix + path));
    cycle.log_sink = sink;
  }
  CoreConf& cc = core_conf(cycle);
  Regex::set_jit(*cc.pcre_jit);
  if (Status s = cycle.open_files_and_paths(); !s.ok()) return s;
  if (::geteuid() == 0 && cc.user != static_cast<uid_t>(-1)) {
    // Workers run as `user`: the temp paths must be theirs.
    for (const TempPath* p : cycle.paths) {
      if (::chown(p->name.c_str(), cc.user, ::getgid()) < 0) {
        return Status::errorf("chown(\"%s\", %d) failed (%d: %s)", p->name.c_str(),
                              static_cast<int>(cc.user), errno, std::strerror(errno));
      }
    }
  }
  cycle.log.sink = cycle.log_sink;
  if (Status s = cycle.create_zones(old); !s.ok()) return s;
  if (!test) {
    if (Status s = clone_reuseport(cycle); !s.ok()) return s;
  }
  return cycle.open_listening(old, test);
}

namespace {

void close_new_listening(Cycle& cycle) {
  for (auto& ls : cycle.listening) {
    if (ls->fd >= 0 && !ls->inherited) ::close(ls->fd);
    ls->fd = -1;
  }
}

// After a reload: the old cycle closes what the new one did not take over.
void release_old_listening(Cycle& old, Cycle& cycle) {
  for (auto& ols : old.listening) {
    if (ols->fd < 0) continue;
    bool taken = false;
    for (auto& ls : cycle.listening) taken = taken || ls->fd == ols->fd;
    if (!taken) ::close(ols->fd);
    ols->fd = -1;
  }
  for (OpenFile& f : old.open_files) {
    if (f.fd >= 0 && !f.is_stderr()) f.close();
  }
}

std::unique_ptr<Cycle> reload(const Options& opt, Cycle& old) {
  log_error(LogLevel::Notice, old.log, 0, "reconfiguring");
  auto cycle = load_cycle(opt, &old.log);
  if (Status s = cycle->load(); !s.ok()) {
    log_error(LogLevel::Emerg, old.log, 0, "%s", s.message().c_str());
    return nullptr;
  }
  if (Status s = open_cycle(*cycle, &old, false); !s.ok()) {
    log_error(LogLevel::Emerg, old.log, 0, "%s", s.message().c_str());
    close_new_listening(*cycle);
    return nullptr;
  }
  return cycle;
}

}  // namespace

int run_master(std::unique_ptr<Cycle> cycle, const Options& opt) {
  install_signals();
  make_shared_counter();
  CoreConf* cc = &core_conf(*cycle);
  std::string pid_path = cc->pid;
  if (Status s = write_pid_file(pid_path); !s.ok()) {
    log_error(LogLevel::Emerg, cycle->log, 0, "%s", s.message().c_str());
    return 1;
  }
  daemon_started();
  log_echo_to_stderr(false);
  set_proc_title("weir: master process " + opt.argv_line);
  log_startup(*cycle);

  std::vector<WorkerProc> workers;
  int generation = 0;
  auto start_workers = [&](Cycle& c) {
    log_error(LogLevel::Notice, c.log, 0, "start worker processes");
    int n = *core_conf(c).worker_processes;
    for (int i = 0; i < n; i++) {
      pid_t pid = spawn_worker(c, i);
      if (pid > 0) workers.push_back(WorkerProc{pid, i, generation, false});
    }
  };
  start_workers(*cycle);

  bool terminating = false;
  bool quitting = false;
  int kill_delay = 0;
  for (;;) {
    if (terminating && kill_delay > 0) {
      struct itimerval it {};
      it.it_value.tv_sec = kill_delay / 1000;
      it.it_value.tv_usec = (kill_delay % 1000) * 1000;
      ::setitimer(ITIMER_REAL, &it, nullptr);
    }
    ::sigsuspend(&no_signals());
    clock::update();
    log_signals(cycle->log, true);

    if (g_sig.reap) {
      g_sig.reap = 0;
      for (;;) {
        int status;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        auto it = std::find_if(workers.begin(), workers.end(),
                               [&](const WorkerProc& w) { return w.pid == pid; });
        if (WIFSIGNALED(status)) {
          log_error(LogLevel::Alert, cycle->log, 0, "worker process %d exited on signal %d%s",
                    static_cast<int>(pid), WTERMSIG(status),
                    WCOREDUMP(status) ? " (core dumped)" : "");
        } else {
          log_error(LogLevel::Notice, cycle->log, 0, "worker process %d exited with code %d",
                    static_cast<int>(pid), WEXITSTATUS(status));
        }
        if (it == workers.end()) continue;
        WorkerProc w = *it;
        workers.erase(it);
        bool fatal = WIFEXITED(status) && WEXITSTATUS(status) == 2;
        if (!w.exiting && w.generation == generation && !terminating && !quitting) {
          if (fatal) {
            log_error(LogLevel::Alert, cycle->log, 0,
                      "worker process %d exited with fatal code 2 and cannot be respawned",
                      static_cast<int>(pid));
            continue;
          }
          pid_t np = spawn_worker(*cycle, w.slot);
          if (np > 0) workers.push_back(WorkerProc{np, w.slot, generation, false});
        }
      }
    }

    if (workers.empty() && (terminating || quitting)) {
      ::unlink(pid_path.c_str());
      log_error(LogLevel::Notice, cycle->log, 0, "exit");
      for (Module* m : all_modules()) {
        if (m->exit_process != nullptr) m->exit_process(*cycle);
      }
      return 0;
    }

    if (g_sig.terminate || (terminating && g_sig.alarm)) {
      g_sig.terminate = 0;
      g_sig.alarm = 0;
      terminating = true;
      kill_delay = kill_delay == 0 ? 50 : kill_delay * 2;
      int sig = kill_delay > 1000 ? SIGKILL : SIGTERM;
      for (WorkerProc& w : workers) ::kill(w.pid, sig);
      continue;
    }
    if (g_sig.quit) {
      g_sig.quit = 0;
      quitting = true;
      for (WorkerProc& w : workers) {
        w.exiting = true;
        ::kill(w.pid, SIGQUIT);
      }
      for (auto& ls : cycle->listening) {
        if (ls->fd >= 0) ::close(ls->fd);
        ls->fd = -1;
      }
      continue;
    }
    if (g_sig.reconfigure && !quitting && !terminating) {
      g_sig.reconfigure = 0;
      std::unique_ptr<Cycle> next = reload(opt, *cycle);
      if (next != nullptr) {
        generation++;
        std::unique_ptr<Cycle> old = std::move(cycle);
        cycle = std::move(next);
        cc = &core_conf(*cycle);
        if (cc->pid != pid_path) {
          ::unlink(pid_path.c_str());
          pid_path = cc->pid;
          (void)write_pid_file(pid_path);
        }
        start_workers(*cycle);
        ::usleep(100 * 1000);  // let the new workers start before the old ones stop accepting
        for (WorkerProc& w : workers) {
          if (w.generation != generation) {
            w.exiting = true;
            ::kill(w.pid, SIGQUIT);
          }
        }
        release_old_listening(*old, *cycle);
      }
    }
    if (g_sig.reopen) {
      g_sig.reopen = 0;
      log_error(LogLevel::Notice, cycle->log, 0, "reopening logs");
      reopen_files(*cycle, true);
      for (WorkerProc& w : workers) ::kill(w.pid, SIGUSR1);
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
        AcceptOptions ao;
        ao.multi_accept = *event_conf(*next).multi_accept;
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
