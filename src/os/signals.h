// Signals as nginx's master and workers take them: HUP reload, QUIT graceful stop, TERM/INT fast
// stop, USR1 reopen logs, CHLD a worker exited, ALRM the shutdown timer. The handler only records
// (flags, and who sent what, for the loop to log, since logging is not async-signal-safe); they
// stay blocked except while the process waits. nginx: src/os/unix/ngx_process.c
// (ngx_signal_handler)
#pragma once

#include <csignal>

#include "core/log.h"

namespace weir {

// Set by the handler, cleared by whoever acts on them.
struct PendingSignals {
  volatile sig_atomic_t reconfigure = 0;
  volatile sig_atomic_t terminate = 0;
  volatile sig_atomic_t quit = 0;
  volatile sig_atomic_t reopen = 0;
  volatile sig_atomic_t reap = 0;
  volatile sig_atomic_t alarm = 0;
};
PendingSignals& pending_signals();

// Installs the handlers (SIGPIPE and SIGSYS ignored) and blocks the handled signals.
void install_signals();
// The handled signals (blocked outside waits), and the empty mask a wait runs with.
const sigset_t& blocked_signals();
const sigset_t& no_signals();
// Logs the signals received since the last call (the master: "signal 1 (SIGHUP) received from N,
// reconfiguring") and forgets them; forget_signals() only forgets.
void log_signals(const Log& log, bool master);
void forget_signals();

}  // namespace weir
