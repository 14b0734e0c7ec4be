// The main context's directives (daemon, master_process, worker_processes, pid, user, error_log,
// worker_rlimit_nofile, working_directory, env ...) and the events block's (worker_connections,
// use, multi_accept, accept_mutex). nginx: src/core/nginx.c (ngx_core_module),
// src/event/ngx_event.c (ngx_events_module, ngx_event_core_module)
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "conf/module.h"
#include "conf/setting.h"
#include "core/assert.h"
#include "core/cidr.h"

namespace weir {

struct Cycle;

extern Module core_module;
extern Module errlog_module;
extern Module events_module;
extern Module event_core_module;

struct CoreConf {
  static constexpr Module* kModule = &core_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  Setting<bool> daemon;
  Setting<bool> master;
  Setting<uint64_t> timer_resolution;
  Setting<uint64_t> shutdown_timeout;
  Setting<int> worker_processes;
  Setting<int64_t> rlimit_nofile;
  Setting<int64_t> rlimit_core;
  Setting<int> priority;
  Setting<bool> pcre_jit;
  Setting<DebugPoints> debug_points;
  bool ssl_engine = false;
  std::string pid;
  std::string lock_file;
  std::string working_directory;
  std::string username;
  uid_t user = static_cast<uid_t>(-1);
  gid_t group = static_cast<gid_t>(-1);
  std::vector<std::string> env;
  std::vector<std::vector<int>> cpu_affinity;  // per worker: the CPUs it may run on
  bool cpu_affinity_auto = false;
  bool pid_set = false;
};

struct EventConf {
  static constexpr Module* kModule = &event_core_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  Setting<uint64_t> connections;
  Setting<bool> multi_accept;
  Setting<bool> accept_mutex;
  Setting<uint64_t> accept_mutex_delay;
  Setting<int> epoll_events;  // the events one epoll_wait() may return
  Setting<int> aio_requests;  // worker_aio_requests
  // debug_connection: the clients whose connections log every level.
  std::vector<Cidr> debug_connection;
  bool debug_unix = false;  // debug_connection unix:
};

// The configuration of the cycle's core module.
CoreConf& core_conf(Cycle& cycle);
EventConf& event_conf(Cycle& cycle);

}  // namespace weir
