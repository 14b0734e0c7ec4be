// Signals as nginx's master and workers take them: HUP reload, QUIT graceful stop, TERM/INT fast
// stop, USR1 reopen logs, USR2 start a new binary, WINCH let the workers go (a daemon's master,
// for a binary upgrade), CHLD a worker exited, ALRM the shutdown timer. The handler only records
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
  volatile sig_atomic_t change_binary = 0;
  volatile sig_atomic_t noaccept = 0;
};
PendingSignals& pending_signals();

// What decides whether USR2 and WINCH are taken, as nginx decides: WINCH only by a daemon (or a
// new binary's master), USR2 not while this process's new binary runs nor by a new binary whose
// old master still runs (its parent is the one it started with).
struct SignalPolicy {
  volatile sig_atomic_t daemonized = 0;
  volatile pid_t parent = 0;      // the parent at start (the pre-daemon process for a daemon)
  volatile pid_t new_binary = 0;  // the new binary's master this process started
};
SignalPolicy& signal_policy();

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
