// Logging to syslog (error_log syslog:..., access_log syslog:...): nginx's parameters
// (server=, facility=, severity=, tag=, nohostname) and its datagrams, RFC 3164 as nginx writes
// them: "<PRI>Mmm dd hh:mm:ss hostname tag: message", over UDP (port 514 by default) or a unix
// datagram socket, opened by each process at its first message. nginx: src/core/ngx_syslog.c
#pragma once

#include <string>
#include <string_view>

#include "core/inet.h"
#include "core/status.h"

namespace weir {

struct SyslogPeer {
  SockAddr server;
  std::string server_text;  // for the error when sending fails
  int facility = 23;        // local7
  int severity = 6;         // info (the access log's; error lines carry their own level)
  std::string tag = "nginx";
  bool nohostname = false;
  int fd = -1;
  bool busy = false;  // a message is being sent: one about the sending itself is not

  // The text after "syslog:". The error is nginx's.
  static Result<SyslogPeer> parse(std::string_view args);
  // Sends one message (its trailing newline left out) with this severity (0-7).
  void send(std::string_view message, int severity);
};

}  // namespace weir
