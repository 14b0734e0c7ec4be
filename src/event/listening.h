// Listening sockets: what a `listen` directive opened (made by the master before fork, kept across
// reloads when the address stays), and the accept handler that turns a ready socket into a
// Connection. nginx: src/core/ngx_connection.c (ngx_listening_t), src/event/ngx_event_accept.c
#pragma once

#include <span>
#include <string>

#include "core/cidr.h"
#include "core/inet.h"
#include "event/connection.h"
#include "event/event_loop.h"
#include "os/socket.h"

namespace weir {

struct Listening {
  SockAddr addr;
  std::string addr_text;
  ListenOptions opt;
  int fd = -1;
  bool inherited = false;  // opened by an earlier configuration and kept
  int worker = -1;         // reuseport: the worker that owns this copy; -1 = every worker shares it

  // Called with each accepted connection (e.g. the HTTP connection initialiser).
  void (*handler)(Connection& c) = nullptr;
  void* servers = nullptr;  // protocol data: the virtual servers behind this address
  const LogSink* log_sink = nullptr;

  Connection* connection = nullptr;  // the worker's connection for this socket
};

struct AcceptOptions {
  bool multi_accept = false;
  bool exclusive = true;  // EPOLLEXCLUSIVE
  // debug_connection: clients whose connections log every level (unix: for every unix socket).
  std::span<const Cidr> debug_connection;
  bool debug_unix = false;
};

// Registers the listening socket with the loop (in a worker).
Status enable_accept(Listening& ls, ConnectionPool& pool, EventLoop& loop,
                     const AcceptOptions& opt);
// Stops accepting (graceful shutdown, reload): deregisters the socket and, unless it is handed over
// to a new configuration in this same process, closes this process's copy.
void disable_accept(Listening& ls, bool close_fd = true);

}  // namespace weir
