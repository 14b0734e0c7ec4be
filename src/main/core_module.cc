#include "main/core_module.h"

#include <grp.h>
#include <pwd.h>
// ENGINE is deprecated in OpenSSL 3 but still what ssl_engine names (nginx suppresses the same).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/engine.h>
#include <unistd.h>

#include "conf/conf_context.h"
#include "conf/cycle.h"
#include "conf/error_log.h"
#include "conf/nginx_modules.h"
#include "core/config.h"
#include "core/str.h"
#include "event/ssl.h"

namespace weir {

namespace {

Status set_worker_processes(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  if (cc.worker_processes.set) return Status::error("is duplicate");
  if (n.args[1] == "auto") {
    long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
    cc.worker_processes = static_cast<int>(ncpu > 0 ? ncpu : 1);
    return {};
  }
  auto v = parse_int(n.args[1]);
  if (!v || *v == 0 || *v > 1024) return Status::error("invalid value");
  cc.worker_processes = static_cast<int>(*v);
  return {};
}

Status set_user(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  if (!cc.username.empty()) return Status::error("is duplicate");
  if (::geteuid() != 0) {
    cf.warn(LogLevel::Warn,
            "the \"user\" directive makes sense only if the master process runs with super-user "
            "privileges, ignored");
    cc.username = n.args[1];
    return {};
  }
  cc.username = n.args[1];
  errno = 0;
  struct passwd* pw = ::getpwnam(n.args[1].c_str());
  if (pw == nullptr) return cf.errorf("getpwnam(\"%s\") failed", n.args[1].c_str());
  cc.user = pw->pw_uid;
  std::string group = n.nargs() == 2 ? n.args[2] : n.args[1];
  struct group* gr = ::getgrnam(group.c_str());
  if (gr == nullptr) return cf.errorf("getgrnam(\"%s\") failed", group.c_str());
  cc.group = gr->gr_gid;
  return {};
}

Status set_path_str(ConfContext& cf, const ConfNode& n, std::string& out, bool& set) {
  if (set) return Status::error("is duplicate");
  out = cf.full_name(n.args[1]);
  set = true;
  return {};
}

Status set_pid(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  return set_path_str(cf, n, cc.pid, cc.pid_set);
}

Status set_lock_file(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  // weir balances accepts with EPOLLEXCLUSIVE and needs no accept lock; the path is checked and
  // kept.
  bool set = !cc.lock_file.empty();
  return set_path_str(cf, n, cc.lock_file, set);
}

Status set_working_directory(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  if (!cc.working_directory.empty()) return Status::error("is duplicate");
  cc.working_directory = cf.full_name(n.args[1]);
  return {};
}

Status set_env(ConfContext&, const ConfNode& n, CoreConf& cc) {
  cc.env.push_back(n.args[1]);
  return {};
}

Status set_rlimit(ConfContext&, const ConfNode& n, CoreConf& cc) {
  auto& f = n.name() == "worker_rlimit_nofile" ? cc.rlimit_nofile : cc.rlimit_core;
  if (f.set) return Status::error("is duplicate");
  auto v = n.name() == "worker_rlimit_nofile" ? parse_int(n.args[1]) : parse_offset(n.args[1]);
  if (!v && n.name() == "worker_rlimit_nofile") return Status::error("invalid number");
  if (!v) return Status::error("invalid value");
  f = *v;
  return {};
}

Status set_priority(ConfContext&, const ConfNode& n, CoreConf& cc) {
  if (cc.priority.set) return Status::error("is duplicate");
  std::string_view v = n.args[1];
  bool minus = !v.empty() && v[0] == '-';
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) v.remove_prefix(1);
  auto p = parse_int(v);
  if (!p || *p > 20) return Status::error("invalid number");
  cc.priority = static_cast<int>(minus ? -*p : *p);
  return {};
}

Status set_cpu_affinity(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  if (!cc.cpu_affinity.empty() || cc.cpu_affinity_auto) return Status::error("is duplicate");
  size_t i = 1;
  if (n.args[1] == "auto") {
    cc.cpu_affinity_auto = true;
    i = 2;
    if (n.nargs() > 2)
      return cf.error("invalid number of arguments in \"worker_cpu_affinity\" directive");
  }
  for (; i < n.args.size(); i++) {
    const std::string& mask = n.args[i];
    std::vector<int> cpus;
    for (size_t k = 0; k < mask.size(); k++) {
      char ch = mask[mask.size() - 1 - k];
      if (ch == '1') {
        cpus.push_back(static_cast<int>(k));
      } else if (ch != '0') {
        return cf.errorf("invalid character \"%c\" in \"worker_cpu_affinity\"", ch);
      }
    }
    cc.cpu_affinity.push_back(cpus);
  }
  return {};
}

// nginx's dynamic modules cannot be loaded into weir: each load_module is one warning naming the
// module, and that module's directives are then unknown, with a line that names it. Modules weir
// builds in (brotli, zstd) load as a no-op.
Status set_load_module(ConfContext& cf, const ConfNode& n) {
  std::string_view path = n.args[1];
  std::string_view name = path.substr(path.rfind('/') + 1);
  if (name.ends_with(".so")) name.remove_suffix(3);
  if (built_in_nginx_module(name)) return {};
  cf.warn(LogLevel::Warn,
          "weir cannot load nginx's dynamic module \"%s\": its directives are unknown",
          n.args[1].c_str());
  return {};
}

constexpr EnumName<DebugPoints> kDebugPoints[] = {
    {"stop", DebugPoints::Stop},
    {"abort", DebugPoints::Abort},
};

// ssl_engine name: OpenSSL's engine made the default for everything it implements, at load, as
// nginx's openssl module does. nginx: ngx_openssl_engine
Status set_ssl_engine(ConfContext& cf, const ConfNode& n, CoreConf& cc) {
  if (cc.ssl_engine) return Status::error("is duplicate");
  cc.ssl_engine = true;
  const std::string& name = n.args[1];
  ENGINE* engine = ENGINE_by_id(name.c_str());
  if (engine == nullptr) return cf.error("ENGINE_by_id(\"" + name + "\") failed" + ssl_errors());
  bool ok = ENGINE_set_default(engine, ENGINE_METHOD_ALL) != 0;
  ENGINE_free(engine);
  if (!ok) {
    return cf.error("ENGINE_set_default(\"" + name + "\", ENGINE_METHOD_ALL) failed" +
                    ssl_errors());
  }
  return {};
}

Status set_error_log_main(ConfContext& cf, const ConfNode& n) {
  return parse_error_log(cf, n, &cf.cycle.log_sink);
}

CoreConf* create_core_conf(ConfContext& cf) {
  return cf.pool.make<CoreConf>();
}

Status init_core_conf(ConfContext& cf, CoreConf& cc) {
  cc.daemon.merge({}, true);
  cc.master.merge({}, true);
  cc.timer_resolution.merge({}, 0);
  cc.shutdown_timeout.merge({}, 0);
  cc.worker_processes.merge({}, 1);
  cc.rlimit_nofile.merge({}, -1);
  cc.rlimit_core.merge({}, -1);
  cc.priority.merge({}, 0);
  cc.pcre_jit.merge({}, true);
  cc.debug_points.merge({}, DebugPoints::None);
  if (cc.pid.empty()) cc.pid = cf.full_name(WEIR_PID_PATH);
  if (cc.lock_file.empty()) cc.lock_file = cf.full_name(WEIR_LOCK_PATH);
  if (cc.user == static_cast<uid_t>(-1) && ::geteuid() == 0) {
    // nginx's defaults: nobody / nogroup.
    if (struct passwd* pw = ::getpwnam("nobody")) {
      cc.user = pw->pw_uid;
      cc.username = "nobody";
    }
    struct group* gr = ::getgrnam("nogroup");
    if (gr == nullptr) gr = ::getgrnam("nobody");
    if (gr != nullptr) cc.group = gr->gr_gid;
  }
  if (!cc.cpu_affinity.empty() && !cc.cpu_affinity_auto && cc.cpu_affinity.size() != 1 &&
      static_cast<int>(cc.cpu_affinity.size()) != cc.worker_processes.value) {
    cf.warn(LogLevel::Warn,
            "the number of \"worker_processes\" is not equal to the number of "
            "\"worker_cpu_affinity\" masks, using last mask for remaining worker processes");
  }
  return {};
}

constexpr uint32_t kDirect = kMainConf;

constexpr Directive kCoreDirectives[] = {
    directive<slot::flag<&CoreConf::daemon>>("daemon", kDirect | kFlag),
    directive<slot::flag<&CoreConf::master>>("master_process", kDirect | kFlag),
    directive<slot::msec<&CoreConf::timer_resolution>>("timer_resolution", kDirect | kTake1),
    directive<slot::msec<&CoreConf::shutdown_timeout>>("worker_shutdown_timeout", kDirect | kTake1),
    directive<set_pid>("pid", kDirect | kTake1),
    directive<set_lock_file>("lock_file", kDirect | kTake1),
    directive<set_worker_processes>("worker_processes", kDirect | kTake1),
    directive<set_user>("user", kDirect | kTake12),
    directive<set_priority>("worker_priority", kDirect | kTake1),
    directive<set_cpu_affinity>("worker_cpu_affinity", kDirect | kOneMore),
    directive<set_rlimit>("worker_rlimit_nofile", kDirect | kTake1),
    directive<set_rlimit>("worker_rlimit_core", kDirect | kTake1),
    directive<set_working_directory>("working_directory", kDirect | kTake1),
    directive<set_env>("env", kDirect | kTake1),
    directive<set_load_module>("load_module", kDirect | kTake1),
    directive<slot::flag<&CoreConf::pcre_jit>>("pcre_jit", kDirect | kFlag),
    directive<slot::enum_<&CoreConf::debug_points, kDebugPoints>>("debug_points", kDirect | kTake1),
    directive<set_ssl_engine>("ssl_engine", kDirect | kTake1),
};
static_assert(directives_of(kCoreDirectives, &core_module));

constexpr Directive kErrlogDirectives[] = {
    directive<set_error_log_main>("error_log", kMainConf | kOneMore),
};
static_assert(directives_of(kErrlogDirectives, &errlog_module));

}  // namespace

Module core_module{
    .name = "core",
    .type = ModuleType::Core,
    .directives = kCoreDirectives,
    .create_conf = create_conf<create_core_conf>,
    .init_conf = init_conf<init_core_conf>,
};

Module errlog_module{
    .name = "errlog",
    .type = ModuleType::Core,
    .directives = kErrlogDirectives,
};

CoreConf& core_conf(Cycle& cycle) {
  return *static_cast<CoreConf*>(cycle.confs[core_module.index]);
}

}  // namespace weir
