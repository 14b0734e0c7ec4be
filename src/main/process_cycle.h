// Processes: the master (opens sockets, forks workers, respawns them, reloads on HUP, reopens logs
// on USR1, stops gracefully on QUIT and fast on TERM/INT), the workers (the event loop), and the
// single process (master_process off). Signals are blocked except while waiting, so none is lost
// between a check and a wait. nginx: src/os/unix/ngx_process_cycle.c, src/os/unix/ngx_process.c
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conf/cycle.h"

namespace weir {

struct Options {
  std::string prefix;
  std::string conf_file;
  std::string error_log;
  std::string conf_param;
  std::string signal;
  bool test = false;
  bool dump = false;
  bool quiet = false;
  std::string argv_line;  // the command line, for the master's process title
  // The command line as started, argv[0] made a path: what USR2 executes (the binary now there).
  std::vector<std::string> argv;
};

// Loads a configuration into a new cycle (parse + module hooks). Errors are returned, not logged.
std::unique_ptr<Cycle> load_cycle(const Options& opt, const Log* log);
// Opens what the cycle names (log files, temp paths, zones, sockets), taking over the old cycle's
// sockets.
Status open_cycle(Cycle& cycle, Cycle* old, bool test);

// Where the running server leaves each reload's verdict for `-s reload`: beside the pid file.
std::string reload_verdict_path(const std::string& pid_path);

// The listening sockets a replaced binary's master handed over in nginx's variable
// (NGINX="fd;fd;..."), read at start: whether there are any. A new binary does not daemonize; its
// first cycle takes each socket for the listen of its address (open_cycle), and closes the rest.
bool take_inherited_sockets();
// The variable a new binary started by USR2 finds its sockets in (nginx's, so that either binary
// can replace the other).
inline constexpr const char* kInheritedVar = "NGINX";

int run_master(std::unique_ptr<Cycle> cycle, const Options& opt);
int run_single(std::unique_ptr<Cycle> cycle, const Options& opt);

}  // namespace weir
