#include "os/signals.h"

#include <cerrno>

namespace weir {

namespace {

PendingSignals g_pending;

// Signals are recorded by the handler and logged by the loop (logging is not async-signal-safe).
struct SignalRecord {
  int signo;
  pid_t from;
};
SignalRecord g_records[64];
volatile sig_atomic_t g_nrecords = 0;

void on_signal(int signo, siginfo_t* si, void*) {
  int saved = errno;
  if (g_nrecords < 64) {
    g_records[g_nrecords] = {signo, si != nullptr ? si->si_pid : 0};
    g_nrecords = g_nrecords + 1;
  }
  switch (signo) {
    case SIGHUP:
      g_pending.reconfigure = 1;
      break;
    case SIGQUIT:
      g_pending.quit = 1;
      break;
    case SIGTERM:
    case SIGINT:
      g_pending.terminate = 1;
      break;
    case SIGUSR1:
      g_pending.reopen = 1;
      break;
    case SIGCHLD:
      g_pending.reap = 1;
      break;
    case SIGALRM:
      g_pending.alarm = 1;
      break;
    default:
      break;
  }
  errno = saved;
}

const char* signal_name(int signo) {
  switch (signo) {
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGWINCH:
      return "SIGWINCH";
    case SIGCHLD:
      return "SIGCHLD";
    case SIGALRM:
      return "SIGALRM";
    default:
      return "?";
  }
}

sigset_t g_blocked;
sigset_t g_empty;

}  // namespace

PendingSignals& pending_signals() {
  return g_pending;
}
const sigset_t& blocked_signals() {
  return g_blocked;
}
const sigset_t& no_signals() {
  return g_empty;
}
void forget_signals() {
  g_nrecords = 0;
}

void install_signals() {
  struct sigaction sa {};
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD, SIGALRM}) {
    ::sigaction(s, &sa, nullptr);
  }
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, nullptr);
  ::sigaction(SIGSYS, &ign, nullptr);
  sigemptyset(&g_blocked);
  for (int s : {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD, SIGALRM}) {
    sigaddset(&g_blocked, s);
  }
  sigemptyset(&g_empty);
  ::sigprocmask(SIG_BLOCK, &g_blocked, nullptr);
}

void log_signals(const Log& log, bool master) {
  int n = g_nrecords;
  for (int i = 0; i < n; i++) {
    const SignalRecord& s = g_records[i];
    if (!master) continue;
    const char* action = "";
    switch (s.signo) {
      case SIGHUP:
        action = ", reconfiguring";
        break;
      case SIGQUIT:
        action = ", shutting down";
        break;
      case SIGTERM:
      case SIGINT:
        action = ", exiting";
        break;
      case SIGUSR1:
        action = ", reopening logs";
        break;
      default:
        break;
    }
    if (s.from != 0) {
      log_error(LogLevel::Notice, log, 0, "signal %d (%s) received from %d%s", s.signo,
                signal_name(s.signo), static_cast<int>(s.from), action);
    } else {
      log_error(LogLevel::Notice, log, 0, "signal %d (%s) received%s", s.signo,
                signal_name(s.signo), action);
    }
  }
  g_nrecords = 0;
}

}  // namespace weir
