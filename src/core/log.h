// The error log: nginx's levels and line format ("YYYY/MM/DD HH:MM:SS [level] pid#tid: *conn
// message, context"), several destinations per context (sorted by level), and the shared OpenFile
// that USR1 reopens. nginx: src/core/ngx_log.c
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace weir {

enum class LogLevel : uint8_t { Stderr, Emerg, Alert, Crit, Error, Warn, Notice, Info, Debug };

std::string_view level_name(LogLevel level);
// The level a failed configuration's Status is reported at: [emerg], or [crit] / [error] where
// nginx reports the failure so.
inline LogLevel level_of(const Status& s) {
  return s.is_critical() ? LogLevel::Crit : s.is_error_level() ? LogLevel::Error : LogLevel::Emerg;
}
std::optional<LogLevel> parse_level(std::string_view name);

// A file that logs write to. Shared by every directive naming the same path; "" means stderr.
struct OpenFile {
  std::string name;
  int fd = -1;
  // Whoever buffers writes to this file (the access log) flushes through this before a reopen or
  // exit.
  void (*flush)(OpenFile& file) = nullptr;
  void* data = nullptr;
  bool is_stderr() const { return name.empty(); }
  // Opens (append, create 0644).
  Status open();
  // Reopens in place (USR1): a new fd for the same name, swapped in with dup2 so holders keep
  // theirs.
  Status reopen();
  void close();
};

// One destination of an error_log directive; destinations of one context form a list, highest level
// first.
struct SyslogPeer;
struct LogSink {
  LogLevel level = LogLevel::Error;
  OpenFile* file = nullptr;      // nullptr: stderr (unless syslog)
  SyslogPeer* syslog = nullptr;  // error_log syslog:...
  LogSink* next = nullptr;
};

// The log a piece of code writes through: destinations plus the context of the message.
struct Log {
  const LogSink* sink = nullptr;
  uint64_t connection = 0;       // printed as "*N" when non-zero
  const char* action = nullptr;  // "while reading client request line"
  // Appends ", client: ..., server: ..." to a line; returns the new end.
  char* (*handler)(const Log& log, char* p, char* end) = nullptr;
  void* data = nullptr;
  // debug_connection named the client: every level goes to every destination.
  bool debug = false;

  bool enabled(LogLevel level) const {
    return debug || (sink != nullptr ? sink->level >= level : level <= LogLevel::Error);
  }
};

// Whether the running configuration logs at debug anywhere (an error_log at debug, or
// debug_connection). WEIR_DEBUG tests it first, so a debug point costs one load and branch when
// nothing logs at debug. Set when a cycle is opened to run.
extern bool g_debug_log;

// The process id printed in log lines ("pid#tid"); set after fork.
void log_set_pid(int pid);
int log_pid();

[[gnu::format(printf, 4, 5)]] void log_error(LogLevel level, const Log& log, int err,
                                             const char* fmt, ...);
// While starting up, messages that go to a log file are echoed to stderr as well ("weir: [emerg]
// ..."), so that whoever started weir sees why it failed.
void log_echo_to_stderr(bool on);

// Before any log is open (and for -t): "weir: [level] message" on stderr.
[[gnu::format(printf, 3, 4)]] void log_stderr(LogLevel level, int err, const char* fmt, ...);
// Writes text to stderr as is.
void write_stderr(std::string_view s);

// Escapes bytes for an error-log line the way nginx does ("\xHH" for control and non-ASCII bytes).
char* log_escape(char* p, char* end, std::string_view s);

}  // namespace weir

// A debug line in nginx's words ("[debug]", as nginx built --with-debug writes them). Its arguments
// are evaluated only when the line is written, in a cold function of its own, so that the code
// around a debug point keeps no registers or stack for it.
#define WEIR_DEBUG(log, ...)                                                 \
  do {                                                                       \
    if (::weir::g_debug_log) [[unlikely]] {                                  \
      [&]() __attribute__((cold, noinline)) {                                \
        if ((log).enabled(::weir::LogLevel::Debug))                          \
          ::weir::log_error(::weir::LogLevel::Debug, (log), 0, __VA_ARGS__); \
      }                                                                      \
      ();                                                                    \
    }                                                                        \
  } while (0)
