// Loading and opening a configuration (a cycle), reloading it, and what the master and the workers
// share: the pid file, log reopening, the connection counter page, start-up notices. The master is
// in master_process.cc, the workers in worker_process.cc. nginx: src/core/ngx_cycle.c
#include "main/process_cycle.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "core/regex.h"
#include "core/str.h"
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

// What take_inherited_sockets() read, for the first cycle to take.
struct Inherited {
  std::string text;  // the variable's value, for the log
  std::vector<int> fds;
  std::string error;  // nginx's complaint about a bad number, logged with the rest
};
Inherited g_inherited;

// Each listen of the first cycle takes the inherited socket bound to its address (reuseport copies
// one each, in order); inherited sockets no listen takes are closed.
void adopt_inherited(Cycle& cycle) {
  log_error(LogLevel::Notice, cycle.log, 0, "using inherited sockets from \"%s\"",
            g_inherited.text.c_str());
  if (!g_inherited.error.empty()) {
    log_error(LogLevel::Emerg, cycle.log, 0, "%s", g_inherited.error.c_str());
  }
  for (int fd : g_inherited.fds) {
    SockAddr addr;
    addr.len = sizeof addr.ss;
    bool taken = false;
    if (::getsockname(fd, addr.sa(), &addr.len) == 0) {
      for (auto& ls : cycle.listening) {
        if (ls->fd < 0 && ls->addr == addr) {
          ls->fd = fd;
          ls->inherited = true;
          taken = true;
          break;
        }
      }
    }
    if (!taken) ::close(fd);
  }
  g_inherited.fds.clear();
}

}  // namespace

bool take_inherited_sockets() {
  const char* v = ::getenv(kInheritedVar);
  if (v == nullptr) return false;
  g_inherited.text = v;
  std::string_view rest = v;
  // nginx's format: numbers each ended by ';' (or ':'); a bad number ends the list.
  while (!rest.empty()) {
    size_t end = rest.find_first_of(";:");
    if (end == std::string_view::npos) {
      g_inherited.error =
          strprintf("invalid socket number \"%.*s\" in %s environment variable, ignoring",
                    static_cast<int>(rest.size()), rest.data(), kInheritedVar);
      break;
    }
    std::optional<int64_t> fd = parse_int(rest.substr(0, end));
    if (!fd || *fd > INT32_MAX) {
      g_inherited.error = strprintf(
          "invalid socket number \"%.*s\" in %s environment variable, ignoring the rest of the "
          "variable",
          static_cast<int>(rest.size()), rest.data(), kInheritedVar);
      break;
    }
    g_inherited.fds.push_back(static_cast<int>(*fd));
    rest.remove_prefix(end + 1);
  }
  return true;
}

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

void redirect_stderr(Cycle& cycle) {
  if (!*core_conf(cycle).daemon || cycle.log_sink == nullptr) return;
  const OpenFile* f = cycle.log_sink->file;
  if (cycle.log_sink->syslog != nullptr || f == nullptr || f->is_stderr() || f->fd < 0) return;
  (void)::dup2(f->fd, STDERR_FILENO);
}

void reopen_files(Cycle& cycle, bool master) {
  CoreConf& cc = core_conf(cycle);
  for (OpenFile& f : cycle.open_files) {
    if (f.is_stderr() || f.fd < 0) continue;
    if (f.flush != nullptr) f.flush(f);
    if (Status s = f.reopen(); !s.ok()) {
      log_error(LogLevel::Alert, cycle.log, 0, "reopen: %s", s.message().c_str());
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
    if (path.empty()) path = WEIR_ERROR_LOG_PATH;
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
    if (old == nullptr && !g_inherited.text.empty()) adopt_inherited(cycle);
  }
  Status s = cycle.open_listening(old, test);
  if (s.ok() && !test) {
    g_debug_log = cycle.debug_log;
    g_debug_points = *core_conf(cycle).debug_points;
  }
  return s;
}

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

namespace {

// The reload's verdict beside the pid file, for `weir -s reload` (which waits for it): "<pid> <n>
// ok", or "<pid> <n> failed" and the message; written whole (a rename), n counting this process's
// reloads.
void write_reload_verdict(Cycle& old, const Status& verdict) {
  static uint64_t reloads = 0;
  reloads++;
  std::string path = reload_verdict_path(core_conf(old).pid);
  std::string text =
      strprintf("%d %llu %s\n", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(reloads), verdict.ok() ? "ok" : "failed");
  if (!verdict.ok()) text += verdict.message() + "\n";
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) < 0) ::unlink(tmp.c_str());
}

}  // namespace

std::string reload_verdict_path(const std::string& pid_path) {
  return pid_path + ".reload";
}

std::unique_ptr<Cycle> reload(const Options& opt, Cycle& old) {
  log_error(LogLevel::Notice, old.log, 0, "reconfiguring");
  auto cycle = load_cycle(opt, &old.log);
  Status s = cycle->load();
  if (s.ok()) {
    s = open_cycle(*cycle, &old, false);
    if (!s.ok()) close_new_listening(*cycle);
  }
  if (!s.ok()) log_error(level_of(s), old.log, 0, "%s", s.message().c_str());
  write_reload_verdict(old, s);
  return s.ok() ? std::move(cycle) : nullptr;
}

}  // namespace weir
