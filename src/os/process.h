// Process-level system calls: daemonizing, the process title seen in ps ("weir: worker process"),
// file descriptor limits and dropping privileges. nginx: src/os/unix/ngx_daemon.c,
// src/os/unix/ngx_setproctitle.c, src/os/unix/ngx_process_cycle.c
#pragma once

#include <sys/types.h>

#include <string>

#include "core/status.h"

namespace weir {

// Forks, starts a new session and points stdin/stdout at /dev/null. The parent waits until the
// child calls daemon_started() and exits 0, or exits 1 if the child dies first.
Status daemonize();
// Tells a waiting daemonize() parent that start-up is complete (the pid file exists); no-op
// otherwise.
void daemon_started();

// Keeps argv's memory so the title can be rewritten later; call first thing in main().
void init_proc_title(int argc, char** argv);
void set_proc_title(const std::string& title);

// worker_rlimit_nofile.
Status set_nofile_limit(long n);

// Sanitizer builds: a worker ends with _exit, which skips LeakSanitizer's check at exit; this runs
// it.
void check_leaks();
// A root worker becomes the `user`; keep_net_raw: it keeps CAP_NET_RAW, which IP_TRANSPARENT needs
// (a transparent *_bind), as nginx's workers keep it.
Status switch_user(uid_t uid, gid_t gid, const std::string& user, bool keep_net_raw);

}  // namespace weir
