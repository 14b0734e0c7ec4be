#include "core/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "core/str.h"
#include "core/syslog.h"
#include "core/time_cache.h"

namespace weir {

bool g_debug_log = false;

namespace {

constexpr std::string_view kLevels[] = {"stderr", "emerg",  "alert", "crit", "error",
                                        "warn",   "notice", "info",  "debug"};
constexpr size_t kMaxLine = 2048;
int g_pid = 0;
bool g_echo_stderr = false;

char* put_errno(char* p, char* end, int err) {
  if (err == 0 || end - p < 64) return p;
  char tmp[128];
  int n = std::snprintf(tmp, sizeof tmp, " (%d: %s)", err, std::strerror(err));
  if (n > end - p) n = end - p;
  std::memcpy(p, tmp, n);
  return p + n;
}

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= w;
  }
}

}  // namespace

std::string_view level_name(LogLevel level) {
  return kLevels[static_cast<int>(level)];
}

std::optional<LogLevel> parse_level(std::string_view name) {
  for (size_t i = 0; i < std::size(kLevels); i++) {
    if (kLevels[i] == name) return static_cast<LogLevel>(i);
  }
  return std::nullopt;
}

Status OpenFile::open() {
  if (is_stderr()) {
    fd = STDERR_FILENO;
    return {};
  }
  int f = ::open(name.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (f < 0) return Status::sys_error(errno, "open", name);
  fd = f;
  return {};
}

Status OpenFile::reopen() {
  if (is_stderr() || fd < 0) return {};
  int f = ::open(name.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (f < 0) return Status::sys_error(errno, "open", name);
  // Keep the descriptor number: every holder of this OpenFile writes to the new file at once.
  if (::dup3(f, fd, O_CLOEXEC) < 0) {
    Status s = Status::sys_error(errno, "dup3", name);
    ::close(f);
    return s;
  }
  ::close(f);
  return {};
}

void OpenFile::close() {
  if (fd >= 0 && !is_stderr()) ::close(fd);
  fd = -1;
}

void log_set_pid(int pid) {
  g_pid = pid;
}
void log_echo_to_stderr(bool on) {
  g_echo_stderr = on;
}
int log_pid() {
  return g_pid != 0 ? g_pid : static_cast<int>(::getpid());
}

void log_error(LogLevel level, const Log& log, int err, const char* fmt, ...) {
  if (!log.enabled(level)) return;
  char line[kMaxLine];
  char* end = line + kMaxLine - 1;  // room for '\n'
  char* p = line;
  p = put(p, clock::err_log_time());
  p = put(p, " [");
  p = put(p, level_name(level));
  p = put(p, "] ");
  p = put_uint(p, log_pid());
  *p++ = '#';
  p = put_uint(p, log_pid());
  p = put(p, ": ");
  if (log.connection != 0) {
    *p++ = '*';
    p = put_uint(p, log.connection);
    *p++ = ' ';
  }
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(p, end - p, fmt, ap);
  va_end(ap);
  if (n > 0) p += (n < end - p) ? n : (end - p - 1);
  p = put_errno(p, end, err);
  // A debug line is the message alone, as nginx's (no context, no "while").
  if (level != LogLevel::Debug && end - p > 16) {
    if (log.handler != nullptr) {
      p = log.handler(log, p, end);
    } else if (log.action != nullptr) {
      int m = std::snprintf(p, end - p, " while %s", log.action);
      if (m > 0) p += (m < end - p) ? m : (end - p - 1);
    }
  }
  *p++ = '\n';
  size_t len = p - line;
  if (log.sink == nullptr) {
    write_all(STDERR_FILENO, line, len);
    return;
  }
  bool wrote_stderr = false;
  for (const LogSink* s = log.sink; s != nullptr; s = s->next) {
    if (s->level < level && !log.debug) break;
    if (s->syslog != nullptr) {
      // nginx's syslog line is the error line without its newline, at the level's severity.
      s->syslog->send({line, len - 1}, static_cast<int>(level) - 1);
      continue;
    }
    int fd = s->file != nullptr ? s->file->fd : STDERR_FILENO;
    if (fd == STDERR_FILENO) wrote_stderr = true;
    if (fd >= 0) write_all(fd, line, len);
  }
  if (g_echo_stderr && !wrote_stderr && level <= LogLevel::Warn) {
    // The message without the time and pid, prefixed as before the log was open.
    char* msg = line + clock::err_log_time().size() + 1;
    msg = std::strchr(msg, ']');
    char* body = msg != nullptr ? std::strchr(msg, ':') : nullptr;
    if (body != nullptr) {
      body += 2;
      char head[128];  // "weir: [" + a level name + "] ", sized so that GCC sees put() fit
      char* h = put(head, "weir: [");
      h = put(h, level_name(level));
      h = put(h, "] ");
      write_all(STDERR_FILENO, head, h - head);
      write_all(STDERR_FILENO, body, line + len - body);
    }
  }
}

void log_stderr(LogLevel level, int err, const char* fmt, ...) {
  char line[kMaxLine];
  char* end = line + kMaxLine - 1;
  char* p = put(line, "weir: [");
  p = put(p, level_name(level));
  p = put(p, "] ");
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(p, end - p, fmt, ap);
  va_end(ap);
  if (n > 0) p += (n < end - p) ? n : (end - p - 1);
  p = put_errno(p, end, err);
  *p++ = '\n';
  write_all(STDERR_FILENO, line, p - line);
}

void write_stderr(std::string_view s) {
  write_all(STDERR_FILENO, s.data(), s.size());
}

char* log_escape(char* p, char* end, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      if (end - p < 4) break;
      *p++ = '\\';
      *p++ = 'x';
      *p++ = kHex[c >> 4];
      *p++ = kHex[c & 0xf];
    } else {
      if (p >= end) break;
      *p++ = static_cast<char>(c);
    }
  }
  return p;
}

}  // namespace weir
