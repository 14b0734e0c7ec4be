#include "core/syslog.h"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <span>

#include "core/log.h"
#include "core/str.h"
#include "core/time_cache.h"

namespace weir {

namespace {

constexpr std::array<std::string_view, 24> kFacilities = {
    "kern",   "user",   "mail",     "daemon", "auth",   "intern", "lpr",    "news",
    "uucp",   "clock",  "authpriv", "ftp",    "ntp",    "audit",  "alert",  "cron",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};
constexpr std::array<std::string_view, 8> kSeverities = {"emerg", "alert",  "crit", "error",
                                                         "warn",  "notice", "info", "debug"};

constexpr size_t kMaxMessage = 2048;  // nginx's NGX_SYSLOG_MAX_STR, and its header

// The host's name as nginx sends it (lower case).
const std::string& hostname() {
  static const std::string name = lowercased(host_name());
  return name;
}

// "Dec  5 17:36:07": the local time as syslog writes it.
size_t syslog_time(char* out) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = clock::now();
  struct tm tm;
  localtime_r(&now, &tm);
  int n = std::snprintf(out, 32, "%s %2d %02d:%02d:%02d", kMonths[tm.tm_mon], tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

}  // namespace

Result<SyslogPeer> SyslogPeer::parse(std::string_view args) {
  SyslogPeer peer;
  bool have_server = false;
  while (!args.empty()) {
    size_t comma = args.find(',');
    std::string_view p = args.substr(0, comma);
    args = comma == std::string_view::npos ? std::string_view() : args.substr(comma + 1);
    if (p.starts_with("server=")) {
      std::string_view where = p.substr(7);
      Result<std::vector<SockAddr>> addrs = parse_addresses(where, 514, false);
      if (!addrs.ok()) {
        return Status::errorf("%s in syslog server \"%.*s\"", addrs.status().message().c_str(),
                              static_cast<int>(where.size()), where.data());
      }
      peer.server = addrs->front();
      peer.server_text = std::string(where);
      have_server = true;
    } else if (p.starts_with("facility=") || p.starts_with("severity=")) {
      bool facility = p.starts_with("facility=");
      std::string_view v = p.substr(9);
      std::span<const std::string_view> names = kSeverities;
      if (facility) names = kFacilities;
      size_t i = 0;
      while (i < names.size() && names[i] != v) i++;
      if (i == names.size()) {
        return Status::errorf("unknown syslog %s \"%.*s\"", facility ? "facility" : "severity",
                              static_cast<int>(v.size()), v.data());
      }
      (facility ? peer.facility : peer.severity) = static_cast<int>(i);
    } else if (p.starts_with("tag=")) {
      std::string_view v = p.substr(4);
      if (v.size() > 32) return Status::error("syslog tag length exceeds 32");
      for (char c : v) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
          return Status::error("syslog \"tag\" only allows alphanumeric characters and underscore");
        }
      }
      peer.tag = std::string(v);
    } else if (p == "nohostname") {
      peer.nohostname = true;
    } else {
      return Status::errorf("unknown syslog parameter \"%.*s\"", static_cast<int>(p.size()),
                            p.data());
    }
  }
  if (!have_server) return Status::error("no syslog server specified");
  return peer;
}

void SyslogPeer::send(std::string_view message, int sev) {
  if (busy) return;
  busy = true;
  char buf[kMaxMessage + 128];
  char* p = buf;
  char* end = buf + sizeof buf;
  *p++ = '<';
  p = put_uint(p, static_cast<uint64_t>(facility) * 8 + static_cast<uint64_t>(sev));
  *p++ = '>';
  p += syslog_time(p);
  *p++ = ' ';
  if (!nohostname) {
    p = put(p, std::string_view(hostname()).substr(0, 64));
    *p++ = ' ';
  }
  p = put(p, tag);
  *p++ = ':';
  *p++ = ' ';
  size_t room = std::min(static_cast<size_t>(end - p), kMaxMessage);
  p = put(p, message.substr(0, room));
  if (fd < 0) {
    fd = ::socket(server.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, server.sa(), server.len) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  // As nginx, a message that cannot go is lost (logged on stderr at most): a log must not block.
  if (fd >= 0 && ::send(fd, buf, static_cast<size_t>(p - buf), MSG_NOSIGNAL) < 0 &&
      errno != EAGAIN) {
    ::close(fd);  // opened again for the next message
    fd = -1;
  }
  busy = false;
}

}  // namespace weir
