// Cycle: everything one loaded configuration made - module configurations, the files logs write to,
// listening sockets, temp paths, shared zones - and the loading itself: -g directives, then the
// file, then each module's init hooks; the process layer then opens what the configuration names.
// nginx: src/core/ngx_cycle.c (ngx_init_cycle)
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/conf_file.h"
#include "core/file.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/slab.h"
#include "core/status.h"
#include "event/listening.h"
#include "event/thread_pool.h"

namespace weir {

// A shared-memory zone made by the master before fork (limit_req, limit_conn, upstream zones):
// its memory starts with the slab pool that allocates the rest. A reload whose zone has the same
// name, owner and size keeps the memory and what is in it (unless noreuse); the mapping lives as
// long as a cycle uses it.
struct SharedZone {
  std::string name;
  size_t size = 0;
  const void* tag = nullptr;  // the module that owns it
  void* addr = nullptr;
  SlabPool* slab = nullptr;
  std::shared_ptr<void> mapping;  // unmaps when the last cycle using it goes
  bool noreuse = false;  // new memory with each configuration (init still gets the old data)
  Status (*init)(SharedZone& zone, void* old_data) = nullptr;
  void* data = nullptr;  // the module's view of the zone
};

// A "zone=name:size" parameter (limit_req_zone, limit_conn_zone): the name and the size, at least
// eight pages; the error is nginx's.
Status parse_zone_param(std::string_view arg, std::string& name, size_t& size);

// A directory a module keeps in order from processes of their own, as nginx's path manager and
// loader (the HTTP cache's): the master runs one manager process while any path has a manager, and
// after a start or a reload one loader process. stop() says the process is asked to exit.
struct ManagedPath {
  // One pass of the manager: the milliseconds until the next is due.
  uint64_t (*manage)(void* data, bool (*stop)()) = nullptr;
  // The loader's work, done once.
  void (*load)(void* data, bool (*stop)()) = nullptr;
  void* data = nullptr;
};

struct Cycle {
  Pool pool{16384};

  std::string prefix;       // -p, with a trailing slash
  std::string conf_file;    // -c, absolute
  std::string conf_prefix;  // the directory of conf_file, with a trailing slash
  std::string conf_param;   // -g
  std::string error_log;    // -e ("stderr" or a path); empty: the built-in default
  bool test_config = false;
  bool quiet = false;
  bool debug_log = false;  // an error_log at debug, or debug_connection (g_debug_log)
  // A *_bind is transparent: workers that give up root keep CAP_NET_RAW for IP_TRANSPARENT.
  bool transparent = false;

  std::vector<void*> confs;        // core modules, by module index
  std::vector<bool> configured;    // by module index: a directive of the module appears
  std::vector<void*> event_confs;  // event modules, by ctx_index
  std::deque<OpenFile> open_files;
  LogSink* log_sink = nullptr;  // the main context's error_log
  Log log;                      // writes to log_sink
  std::vector<std::unique_ptr<Listening>> listening;
  std::vector<const TempPath*> paths;
  std::vector<ManagedPath> managed_paths;
  std::deque<SharedZone> zones;
  // thread_pool's, and those `aio threads` names (conf/thread_pools).
  struct NamedThreadPool {
    explicit NamedThreadPool(std::string name) : pool(std::move(name)) {}
    ThreadPool pool;
    const ConfFile* file = nullptr;  // where it was first named
    int line = 0;
  };
  std::deque<NamedThreadPool> thread_pools;
  std::unique_ptr<ConfReader> reader;  // the files read, for -T

  // The OpenFile for a full path (shared by every directive naming it); "" is stderr.
  OpenFile* open_file(const std::string& name);
  // Records a temp path to be created at start; two paths with the same name must have the same
  // levels.
  Status add_path(const TempPath* path);
  Result<SharedZone*> add_zone(const std::string& name, size_t size, const void* tag);

  // Reads and processes the configuration (no side effects outside the cycle).
  Status load();
  // Opens log files and creates temp paths (after load, in the process that will run it).
  Status open_files_and_paths();
  // Opens listening sockets, taking over those of old (same address) instead of binding again; with
  // test
  // (-t), an address in use (by the running server) is no error.
  Status open_listening(Cycle* old, bool test);
  Status create_zones(Cycle* old);
  // A worker died: locks it held in the zones are taken back.
  void unlock_zones(pid_t pid);
};

}  // namespace weir
