// The master process: forks the workers and respawns a crashed one, reloads on HUP (the old workers
// go once the new ones run), reopens logs on USR1, stops gracefully on QUIT and fast on TERM/INT.
// Binary upgrade as nginx's: USR2 runs the binary now at the path this one started from as a new
// master with the listening sockets (the pid file becomes <pid>.oldbin), WINCH lets this master's
// workers go while it stays, HUP starts them again while the new binary runs (a way back), QUIT
// ends it; when the new binary's master exits, the pid file is renamed back.
// nginx: src/os/unix/ngx_process_cycle.c (ngx_master_process_cycle), src/os/unix/ngx_process.c
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

namespace weir {

namespace {

PendingSignals& g_sig = pending_signals();

// A process the master started: a worker, or one of the cache's (slot -1).
struct WorkerProc {
  pid_t pid;
  int slot;
  int generation;
  bool exiting;
  ProcessKind kind = ProcessKind::Worker;
};

pid_t spawn_worker(Cycle& cycle, int slot, ProcessKind kind = ProcessKind::Worker) {
  pid_t pid = ::fork();
  if (pid < 0) {
    log_error(LogLevel::Alert, cycle.log, errno, "fork() failed while spawning \"%s\"",
              process_name(kind));
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
    if (kind != ProcessKind::Worker) cache_process_main(cycle, kind);
    worker_main(cycle, slot);
  }
  log_error(LogLevel::Notice, cycle.log, 0, "start %s %d", process_name(kind),
            static_cast<int>(pid));
  return pid;
}

// The environment a new binary gets: this one's, with the listening sockets in nginx's variable.
std::vector<std::string> new_binary_environment(const Cycle& cycle) {
  std::vector<std::string> env;
  std::string prefix = std::string(kInheritedVar) + "=";
  for (char** e = environ; *e != nullptr; e++) {
    if (!std::string_view(*e).starts_with(prefix)) env.emplace_back(*e);
  }
  std::string var = prefix;
  for (const auto& ls : cycle.listening) {
    if (ls->fd >= 0) var += std::to_string(ls->fd) + ";";
  }
  env.push_back(var);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// USR2: the new binary's master, started with the listening sockets; its pid, or 0 when it could
// not be started (logged, the pid file left as it was). nginx: ngx_exec_new_binary
pid_t exec_new_binary(Cycle& cycle, const Options& opt, const std::string& pid_path) {
  std::vector<std::string> args = opt.argv;
  std::vector<std::string> env = new_binary_environment(cycle);
  std::vector<char*> argv = c_strings(args);
  std::vector<char*> envp = c_strings(env);
  const char* path = args[0].c_str();
  std::string oldbin = pid_path + ".oldbin";
  if (::rename(pid_path.c_str(), oldbin.c_str()) < 0) {
    log_error(LogLevel::Alert, cycle.log, errno,
              "rename() %s to %s failed before executing new binary process \"%s\"",
              pid_path.c_str(), oldbin.c_str(), path);
    return 0;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& ls : cycle.listening) {
      if (ls->fd >= 0) ::fcntl(ls->fd, F_SETFD, 0);  // kept across execve
    }
    ::sigprocmask(SIG_SETMASK, &no_signals(), nullptr);
    ::execve(path, argv.data(), envp.data());
    log_error(LogLevel::Alert, cycle.log, errno,
              "execve() failed while executing new binary process \"%s\"", path);
    ::_exit(1);
  }
  if (pid < 0) {
    log_error(LogLevel::Alert, cycle.log, errno,
              "fork() failed while spawning \"new binary process\"");
    if (::rename(oldbin.c_str(), pid_path.c_str()) < 0) {
      log_error(LogLevel::Alert, cycle.log, errno,
                "rename() %s back to %s failed after an attempt to execute new binary process "
                "\"%s\"",
                oldbin.c_str(), pid_path.c_str(), path);
    }
    return 0;
  }
  log_error(LogLevel::Notice, cycle.log, 0, "start new binary process %d", static_cast<int>(pid));
  return pid;
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
  redirect_stderr(*cycle);
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
    for (ProcessKind kind : {ProcessKind::CacheManager, ProcessKind::CacheLoader}) {
      if (!wants_process(c, kind)) continue;
      pid_t pid = spawn_worker(c, -1, kind);
      if (pid > 0) workers.push_back(WorkerProc{pid, -1, generation, false, kind});
    }
  };
  start_workers(*cycle);
  // Each running worker finishes what it has and exits (QUIT); none is respawned.
  auto let_workers_go = [&] {
    for (WorkerProc& w : workers) {
      w.exiting = true;
      ::kill(w.pid, SIGQUIT);
    }
  };

  bool terminating = false;
  bool quitting = false;
  pid_t new_binary = 0;      // the new binary's master while it runs
  bool noaccepting = false;  // WINCH let the workers go
  SignalPolicy& policy = signal_policy();
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
        const char* name = pid == new_binary     ? "new binary process"
                           : it != workers.end() ? process_name(it->kind)
                                                 : "worker process";
        if (WIFSIGNALED(status)) {
          log_error(LogLevel::Alert, cycle->log, 0, "%s %d exited on signal %d%s", name,
                    static_cast<int>(pid), WTERMSIG(status),
                    WCOREDUMP(status) ? " (core dumped)" : "");
          cycle->unlock_zones(pid);
        } else {
          log_error(LogLevel::Notice, cycle->log, 0, "%s %d exited with code %d", name,
                    static_cast<int>(pid), WEXITSTATUS(status));
        }
        if (pid == new_binary) {
          std::string oldbin = pid_path + ".oldbin";
          if (::rename(oldbin.c_str(), pid_path.c_str()) < 0) {
            log_error(LogLevel::Alert, cycle->log, errno,
                      "rename() %s back to %s failed after the new binary process \"%s\" exited",
                      oldbin.c_str(), pid_path.c_str(), opt.argv[0].c_str());
          }
          new_binary = 0;
          policy.new_binary = 0;
          if (noaccepting && !terminating && !quitting) {
            noaccepting = false;
            start_workers(*cycle);
          }
          continue;
        }
        if (it == workers.end()) continue;
        WorkerProc w = *it;
        workers.erase(it);
        bool fatal = WIFEXITED(status) && WEXITSTATUS(status) == 2;
        // The loader's work is done once; it is not started again.
        bool respawn = w.kind != ProcessKind::CacheLoader;
        if (respawn && !w.exiting && w.generation == generation && !terminating && !quitting) {
          if (fatal) {
            log_error(LogLevel::Alert, cycle->log, 0,
                      "%s %d exited with fatal code 2 and cannot be respawned",
                      process_name(w.kind), static_cast<int>(pid));
            continue;
          }
          pid_t np = spawn_worker(*cycle, w.slot, w.kind);
          if (np > 0) workers.push_back(WorkerProc{np, w.slot, generation, false, w.kind});
        }
      }
    }

    if (workers.empty() && (terminating || quitting || g_sig.terminate || g_sig.quit)) {
      // With a new binary running, this master's pid file is the .oldbin one.
      ::unlink((new_binary != 0 ? pid_path + ".oldbin" : pid_path).c_str());
      ::unlink(reload_verdict_path(pid_path).c_str());
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
      let_workers_go();
      for (auto& ls : cycle->listening) {
        if (ls->fd >= 0) ::close(ls->fd);
        ls->fd = -1;
      }
      continue;
    }
    if (g_sig.reconfigure && !quitting && !terminating && new_binary != 0) {
      // While a new binary runs, HUP brings this master's workers back (nothing is read again).
      g_sig.reconfigure = 0;
      noaccepting = false;
      start_workers(*cycle);
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
    if (g_sig.change_binary) {
      g_sig.change_binary = 0;
      if (!quitting && !terminating) {
        log_error(LogLevel::Notice, cycle->log, 0, "changing binary");
        new_binary = exec_new_binary(*cycle, opt, pid_path);
        policy.new_binary = new_binary;
      }
    }
    if (g_sig.noaccept) {
      g_sig.noaccept = 0;
      noaccepting = true;
      let_workers_go();
    }
    if (g_sig.reopen) {
      g_sig.reopen = 0;
      log_error(LogLevel::Notice, cycle->log, 0, "reopening logs");
      reopen_files(*cycle, true);
      redirect_stderr(*cycle);
      for (WorkerProc& w : workers) ::kill(w.pid, SIGUSR1);
    }
  }
}

}  // namespace weir
