// The command line: nginx's flags (-?hvVtTq -s -p -e -c -g, bundled, attached or separate
// arguments), the version and configure text tools parse, configuration tests, the signaller, and
// starting the processes. nginx: src/core/nginx.c (main, ngx_get_options, ngx_show_version_info,
// ngx_signal_process)
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "conf/cycle.h"
#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/ssl.h"
#include "main/core_module.h"
#include "main/module_list.h"
#include "main/process_cycle.h"
#include "os/process.h"
#include "os/signals.h"

namespace weir {
namespace {

constexpr std::string_view kUsage =
    "Usage: weir [-?hvVtTq] [-s signal] [-p prefix]\n"
    "            [-e filename] [-c filename] [-g directives]\n"
    "\n"
    "Options:\n"
    "  -?,-h         : this help\n"
    "  -v            : show version and exit\n"
    "  -V            : show version and configure options then exit\n"
    "  -t            : test configuration and exit\n"
    "  -T            : test configuration, dump it and exit\n"
    "  -q            : suppress non-error messages during configuration testing\n"
    "  -s signal     : send signal to a master process: stop, quit, reopen, reload\n"
    "  -p prefix     : set prefix path (default: " WEIR_PREFIX
    ")\n"
    "  -e filename   : set error log file (default: " WEIR_ERROR_LOG_PATH
    ")\n"
    "  -c filename   : set configuration file (default: " WEIR_CONF_PATH
    ")\n"
    "  -g directives : set global directives out of configuration file\n"
    "\n";

// nginx's default modules; each one weir lacks is announced as --without-..., as nginx's configure
// does.
constexpr std::string_view kDefaultModules[] = {
    "charset",
    "gzip",
    "ssi",
    "userid",
    "access",
    "auth_basic",
    "mirror",
    "autoindex",
    "geo",
    "map",
    "split_clients",
    "referer",
    "rewrite",
    "proxy",
    "fastcgi",
    "uwsgi",
    "scgi",
    "grpc",
    "memcached",
    "limit_conn",
    "limit_req",
    "empty_gif",
    "browser",
    "upstream_hash",
    "upstream_ip_hash",
    "upstream_least_conn",
    "upstream_random",
    "upstream_keepalive",
    "upstream_zone",
};

bool have_module(std::string_view name) {
  // The keepalive cache and the balancers are part of the upstream module here.
  if (name == "upstream_keepalive" || name == "upstream_hash" || name == "upstream_ip_hash" ||
      name == "upstream_least_conn" || name == "upstream_random" || name == "upstream_zone") {
    name = "upstream";
  }
  for (Module* m : all_modules()) {
    std::string_view n = m->name;
    // A filter module is named "<name>_filter" (http_gzip_filter: --without-http_gzip_module).
    if (!n.starts_with("http_")) continue;
    n.remove_prefix(5);
    if (n == name || (n.starts_with(name) && n.substr(name.size()) == "_filter")) return true;
  }
  return false;
}

// nginx's optional modules (--with-http_*_module) that weir has, in the order Debian's build names
// them.
constexpr std::string_view kOptionalModules[] = {
    "ssl",          "stub_status", "realip", "auth_request", "v2",           "dav",
    "slice",        "addition",    "flv",    "gunzip",       "gzip_static",  "mp4",
    "random_index", "secure_link", "sub",    "geoip",        "image_filter", "xslt"};

std::string configure_arguments() {
  std::string out = "--prefix=" WEIR_PREFIX;
  if (out.back() == '/' && out.size() > 10) out.pop_back();
  // The paths, as nginx's configure names them (tools read --conf-path from here).
  out +=
      " --conf-path=" WEIR_CONF_PATH " --pid-path=" WEIR_PID_PATH " --lock-path=" WEIR_LOCK_PATH
      " --error-log-path=" WEIR_ERROR_LOG_PATH " --http-log-path=" WEIR_HTTP_LOG_PATH
      " --http-client-body-temp-path=" WEIR_CLIENT_BODY_TEMP_PATH
      " --http-proxy-temp-path=" WEIR_PROXY_TEMP_PATH
      " --http-fastcgi-temp-path=" WEIR_FASTCGI_TEMP_PATH
      " --http-uwsgi-temp-path=" WEIR_UWSGI_TEMP_PATH " --http-scgi-temp-path=" WEIR_SCGI_TEMP_PATH;
  // The debug log (error_log ... debug, debug_connection), pcre_jit, thread pools, and aio on
  // (which weir serves from a thread pool, where nginx uses Linux's native AIO).
  out += " --with-debug --with-pcre-jit --with-threads --with-file-aio";
  for (std::string_view m : kOptionalModules) {
    if (have_module(m)) out += " --with-http_" + std::string(m) + "_module";
  }
  for (std::string_view m : kDefaultModules) {
    if (!have_module(m)) out += " --without-http_" + std::string(m) + "_module";
  }
  return out;
}

struct Cli {
  Options opt;
  bool show_version = false;
  bool show_help = false;
  bool show_configure = false;
};

int parse_options(int argc, char** argv, Cli& cli) {
  auto fail = [](const std::string& msg) {
    write_stderr("weir: " + msg + "\n");
    return 1;
  };
  for (int i = 1; i < argc; i++) {
    const char* p = argv[i];
    if (*p++ != '-') return fail(std::string("invalid option: \"") + argv[i] + "\"");
    while (*p) {
      char c = *p++;
      auto value = [&](const char* what, std::string& out) -> bool {
        if (*p) {
          out = p;
        } else if (i + 1 < argc) {
          out = argv[++i];
        } else {
          fail(std::string("option \"-") + c + "\" requires " + what);
          return false;
        }
        p = "";
        return true;
      };
      switch (c) {
        case '?':
        case 'h':
          cli.show_version = cli.show_help = true;
          break;
        case 'v':
          cli.show_version = true;
          break;
        case 'V':
          cli.show_version = cli.show_configure = true;
          break;
        case 't':
          cli.opt.test = true;
          break;
        case 'T':
          cli.opt.test = cli.opt.dump = true;
          break;
        case 'q':
          cli.opt.quiet = true;
          break;
        case 'p':
          if (!value("directory name", cli.opt.prefix)) return 1;
          break;
        case 'e':
          if (!value("file name", cli.opt.error_log)) return 1;
          break;
        case 'c':
          if (!value("file name", cli.opt.conf_file)) return 1;
          break;
        case 'g':
          if (!value("parameter", cli.opt.conf_param)) return 1;
          break;
        case 's':
          if (!value("parameter", cli.opt.signal)) return 1;
          if (cli.opt.signal != "stop" && cli.opt.signal != "quit" && cli.opt.signal != "reopen" &&
              cli.opt.signal != "reload") {
            return fail("invalid option: \"-s " + cli.opt.signal + "\"");
          }
          break;
        default:
          return fail(std::string("invalid option: \"") + c + "\"");
      }
    }
  }
  return 0;
}

// The master's last reload verdict (reload_verdict_path): how many it has made, and the failure's
// message when the last one failed ("" for a success); (0, "") before any, or for another process.
std::pair<uint64_t, std::string> reload_count(const std::string& path, int64_t pid) {
  std::ifstream in(path);
  long long owner = 0;
  unsigned long long count = 0;
  std::string word;
  if (!(in >> owner >> count >> word) || owner != pid) return {0, ""};
  if (word == "ok") return {count, ""};
  std::string message;
  in >> std::ws;
  std::getline(in, message);
  return {count, message.empty() ? "reload failed" : message};
}

// The path a binary upgrade runs again: argv[0] as given when it names a path (relative ones made
// absolute now: the server may change directory), else found in PATH as the shell found it.
std::string executable_path(const char* argv0) {
  std::string name = argv0;
  if (name.find('/') == std::string::npos) {
    const char* path = ::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!dirs.empty()) {
      size_t colon = dirs.find(':');
      std::string dir(dirs.substr(0, colon));
      dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
      std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) {
        name = candidate;
        break;
      }
    }
  }
  if (name[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) name = std::string(cwd) + "/" + name;
  }
  return name;
}

int send_signal(Cycle& cycle, const std::string& name) {
  const std::string& path = core_conf(cycle).pid;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    log_stderr(LogLevel::Error, errno, "open() \"%s\" failed", path.c_str());
    return 1;
  }
  char buf[32];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n < 0) n = 0;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  auto pid = parse_int(std::string_view(buf, static_cast<size_t>(n)));
  if (!pid || *pid == 0) {
    log_stderr(LogLevel::Error, 0, "invalid PID number \"%.*s\" in \"%s\"", static_cast<int>(n),
               buf, path.c_str());
    return 1;
  }
  int sig = name == "stop"     ? SIGTERM
            : name == "quit"   ? SIGQUIT
            : name == "reopen" ? SIGUSR1
                               : SIGHUP;
  std::string verdict_path = reload_verdict_path(path);
  uint64_t before = sig == SIGHUP ? reload_count(verdict_path, *pid).first : 0;
  if (::kill(static_cast<pid_t>(*pid), sig) < 0) {
    log_stderr(LogLevel::Alert, errno, "kill(%lld, %d) failed", static_cast<long long>(*pid), sig);
    return 1;
  }
  if (sig != SIGHUP) return 0;
  // Unlike nginx, a reload that was not applied is no success: wait for the master's verdict.
  for (int waited = 0; waited < 30000; waited += 50) {
    auto [count, failure] = reload_count(verdict_path, *pid);
    if (count > before) {
      if (failure.empty()) return 0;
      log_stderr(LogLevel::Emerg, 0, "%s", failure.c_str());
      write_stderr("weir: the new configuration was not applied; the running one goes on\n");
      return 1;
    }
    ::usleep(50 * 1000);
  }
  log_stderr(LogLevel::Warn, 0, "no word from the master process %lld on the reload within 30 s",
             static_cast<long long>(*pid));
  return 1;
}

void dump_config(Cycle& cycle) {
  std::vector<std::string> seen;
  for (const ConfFile& f : cycle.reader->files()) {
    if (f.command_line()) continue;
    if (std::find(seen.begin(), seen.end(), f.path) != seen.end()) continue;
    seen.push_back(f.path);
    std::string out = "# configuration file " + f.path + ":\n" + f.text + "\n";
    (void)::write(STDOUT_FILENO, out.data(), out.size());
  }
}

}  // namespace
}  // namespace weir

int main(int argc, char** argv) {
  using namespace weir;
  std::string argv_line;
  for (int i = 0; i < argc; i++) {
    if (i > 0) argv_line += ' ';
    argv_line += argv[i];
  }
  Cli cli;
  if (parse_options(argc, argv, cli) != 0) return 1;
  cli.opt.argv.assign(argv, argv + argc);
  cli.opt.argv[0] = executable_path(argv[0]);
  init_proc_title(argc, argv);  // may write over argv's strings
  cli.opt.argv_line = argv_line;
  use_builtin_modules();

  if (cli.show_version) {
    std::string out = "weir version: weir/" WEIR_VERSION "\n";
    if (cli.show_help) out += std::string(kUsage);
    if (cli.show_configure) {
      out += ssl_build_text();
      out += "configure arguments: " + configure_arguments() + "\n";
    }
    write_stderr(out);
    if (!cli.opt.test) return 0;
  }

  ::tzset();
  clock::update();
  log_set_pid(static_cast<int>(::getpid()));

  Options& opt = cli.opt;
  if (opt.prefix.empty()) opt.prefix = WEIR_PREFIX;
  if (opt.prefix.back() != '/') opt.prefix += '/';
  if (opt.prefix[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) opt.prefix = std::string(cwd) + "/" + opt.prefix;
  }
  if (opt.conf_file.empty()) opt.conf_file = WEIR_CONF_PATH;
  if (opt.conf_file[0] != '/') opt.conf_file = opt.prefix + opt.conf_file;
  if (opt.error_log == "stderr") opt.error_log = "stderr";

  if (!opt.error_log.empty() && opt.error_log != "stderr") {
    // As nginx: -e names a file it must be able to open; if not, stderr it is, with an alert.
    std::string path = opt.error_log[0] == '/' ? opt.error_log : opt.prefix + opt.error_log;
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      log_stderr(LogLevel::Alert, errno, "could not open error log file: open() \"%s\" failed",
                 path.c_str());
      opt.error_log = "stderr";
    } else {
      ::close(fd);
    }
  }
  log_echo_to_stderr(true);
  std::unique_ptr<Cycle> cycle = load_cycle(opt, nullptr);
  if (Status s = cycle->load(); !s.ok()) {
    log_stderr(level_of(s), 0, "%s", s.message().c_str());
    if (opt.test) write_stderr("weir: configuration file " + opt.conf_file + " test failed\n");
    return 1;
  }
  if (!opt.signal.empty()) return send_signal(*cycle, opt.signal);

  if (opt.test) {
    if (!opt.quiet)
      write_stderr("weir: the configuration file " + opt.conf_file + " syntax is ok\n");
    Status s = open_cycle(*cycle, nullptr, true);
    for (auto& ls : cycle->listening) {
      if (ls->fd >= 0) ::close(ls->fd);
      ls->fd = -1;
    }
    if (s.ok()) {
      // As nginx's -t: the pid file must be one the server can create (opened, never truncated).
      const std::string& pid = core_conf(*cycle).pid;
      int fd = ::open(pid.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) {
        s = Status::sys_error(errno, "open", pid);
      } else {
        ::close(fd);
      }
    }
    if (!s.ok()) {
      log_stderr(LogLevel::Emerg, 0, "%s", s.message().c_str());
      write_stderr("weir: configuration file " + opt.conf_file + " test failed\n");
      return 1;
    }
    if (!opt.quiet)
      write_stderr("weir: configuration file " + opt.conf_file + " test is successful\n");
    if (opt.dump) dump_config(*cycle);
    return 0;
  }

  bool inherited = take_inherited_sockets();
  if (Status s = open_cycle(*cycle, nullptr, false); !s.ok()) {
    if (cycle->log.sink != nullptr) {
      log_error(LogLevel::Emerg, cycle->log, 0, "%s", s.message().c_str());
    } else {
      log_stderr(LogLevel::Emerg, 0, "%s", s.message().c_str());
    }
    return 1;
  }
  CoreConf& cc = core_conf(*cycle);
  SignalPolicy& policy = signal_policy();
  policy.parent = ::getppid();
  if (inherited) {
    policy.daemonized = 1;  // started by the old master, which stays its parent for a while
  } else if (*cc.daemon) {
    pid_t before = ::getpid();
    if (Status s = daemonize(); !s.ok()) {
      log_error(LogLevel::Emerg, cycle->log, 0, "%s", s.message().c_str());
      return 1;
    }
    log_set_pid(static_cast<int>(::getpid()));
    policy.parent = before;
    policy.daemonized = 1;
  }
  if (*cc.master) return run_master(std::move(cycle), opt);
  return run_single(std::move(cycle), opt);
}
