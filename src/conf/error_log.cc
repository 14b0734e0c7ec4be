#include "conf/error_log.h"

#include "conf/cycle.h"
#include "core/str.h"
#include "core/syslog.h"

namespace weir {

Status parse_error_log(ConfContext& cf, const ConfNode& n, LogSink** head) {
  const std::string& name = n.args[1];
  SyslogPeer* syslog = nullptr;
  if (istarts_with(name, "syslog:")) {
    Result<SyslogPeer> peer = SyslogPeer::parse(std::string_view(name).substr(7));
    if (!peer.ok()) return cf.error(peer.status().message());
    syslog = cf.pool.make<SyslogPeer>(std::move(*peer));
  }
  if (istarts_with(name, "memory:")) {
    return cf.error("logging to memory is not supported, use a file or \"stderr\"");
  }
  OpenFile* file = syslog != nullptr
                       ? nullptr
                       : cf.cycle.open_file(name == "stderr" ? std::string() : cf.full_name(name));
  LogLevel level = LogLevel::Error;
  bool have_level = false;
  for (size_t i = 2; i < n.args.size(); i++) {
    std::string_view v = n.args[i];
    std::optional<LogLevel> l = parse_level(v);
    if (!l && istarts_with(v, "debug_")) l = LogLevel::Debug;  // nginx's debug sub-levels
    if (!l || *l == LogLevel::Stderr)
      return cf.errorf("invalid log level \"%s\"", n.args[i].c_str());
    if (have_level && *l != LogLevel::Debug) {
      return cf.errorf("duplicate log level \"%s\"", n.args[i].c_str());
    }
    if (!have_level || *l > level) level = *l;
    have_level = true;
  }
  if (level == LogLevel::Debug) cf.cycle.debug_log = true;
  auto* sink = cf.pool.make<LogSink>();
  sink->level = level;
  sink->file = file;
  sink->syslog = syslog;
  // Keep the list ordered by level, highest first: a message stops at the first sink too quiet for
  // it.
  LogSink** pp = head;
  while (*pp != nullptr && (*pp)->level >= level) pp = &(*pp)->next;
  sink->next = *pp;
  *pp = sink;
  return {};
}

}  // namespace weir
