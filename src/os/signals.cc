#include "os/signals.h"

#include <unistd.h>

#include <cerrno>

namespace weir {

namespace {

PendingSignals g_pending;
SignalPolicy g_policy;

// What the master says it does with a signal (nginx's words after "received from N").
enum class Action : uint8_t {
  None,
  Reconfigure,
  Shutdown,
  Exit,
  Reopen,
  ChangeBinary,
  Ignore,
  NoAccept
};

// Signals are recorded by the handler and logged by the loop (logging is not async-signal-safe).
struct SignalRecord {
  int signo;
  pid_t from;
  Action action;
};
SignalRecord g_records[64];
volatile sig_atomic_t g_nrecords = 0;

Action take(int signo) {
  switch (signo) {
    case SIGHUP:
      g_pending.reconfigure = 1;
      return Action::Reconfigure;
    case SIGQUIT:
      g_pending.quit = 1;
      return Action::Shutdown;
    case SIGTERM:
    case SIGINT:
      g_pending.terminate = 1;
      return Action::Exit;
    case SIGUSR1:
      g_pending.reopen = 1;
      return Action::Reopen;
    case SIGUSR2:
      if (::getppid() == g_policy.parent || g_policy.new_binary > 0) return Action::Ignore;
      g_pending.change_binary = 1;
      return Action::ChangeBinary;
    case SIGWINCH:
      if (g_policy.daemonized == 0) return Action::None;
      g_pending.noaccept = 1;
      return Action::NoAccept;
    case SIGCHLD:
      g_pending.reap = 1;
      return Action::None;
    case SIGALRM:
      g_pending.alarm = 1;
      return Action::None;
    default:
      return Action::None;
  }
}

void on_signal(int signo, siginfo_t* si, void*) {
  int saved = errno;
  Action action = take(signo);
  if (g_nrecords < 64) {
    g_records[g_nrecords] = {signo, si != nullptr ? si->si_pid : 0, action};
    g_nrecords = g_nrecords + 1;
  }
  errno = saved;
}

const char* action_words(Action a) {
  switch (a) {
    case Action::Reconfigure:
      return ", reconfiguring";
    case Action::Shutdown:
      return ", shutting down";
    case Action::Exit:
      return ", exiting";
    case Action::Reopen:
      return ", reopening logs";
    case Action::ChangeBinary:
      return ", changing binary";
    case Action::Ignore:
      return ", ignoring";
    case Action::NoAccept:
      return ", stop accepting connections";
    case Action::None:
      break;
  }
  return "";
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
SignalPolicy& signal_policy() {
  return g_policy;
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
    const char* action = action_words(s.action);
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
