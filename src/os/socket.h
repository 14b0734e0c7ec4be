// Socket system calls with nginx's error reporting: listening sockets (bind/listen with the listen
// directive's options), non-blocking mode, TCP options, and receiving into a buffer.
// nginx: src/os/unix/ngx_socket.c, src/os/unix/ngx_recv.c, src/core/ngx_connection.c
#pragma once

#include <sys/types.h>

#include <string>

#include "core/inet.h"
#include "core/log.h"

namespace weir {

struct ListenOptions {
  int backlog = 511;
  bool reuseport = false;
  int ipv6only = 1;
  int rcvbuf = -1;
  int sndbuf = -1;
  bool deferred = false;
  bool so_keepalive = false;
  // so_keepalive=idle:interval:count (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): 0 leaves the
  // system's.
  int keepidle = 0;
  int keepintvl = 0;
  int keepcnt = 0;
  bool fastopen = false;
  // SO_TIMESTAMPNS: reads on its connections learn when their bytes arrived (recv_stamped), so
  // that the never-stale file cache reads its change events only for requests newer than the last
  // read of them. Inherited by every accepted socket, so no call per connection.
  bool rx_timestamps = false;
};

// Creates, binds and listens; returns the fd or -1 with a message such as
// "bind() to 127.0.0.1:80 failed (98: Address already in use)".
Result<int> open_listening_socket(const SockAddr& addr, const ListenOptions& opt);

bool set_nonblocking(int fd);
int set_tcp_nodelay(int fd, bool on);
int set_tcp_cork(int fd, bool on);

// recv() once (see IoResult).
IoResult recv_once(int fd, char* buf, size_t size);
// recv_once, and when the newest byte it returned arrived (CLOCK_REALTIME ns, the kernel's
// receive timestamp on a socket with SO_TIMESTAMPNS): arrived_ns is set when bytes were read, to 0
// when the kernel gave no time for them.
IoResult recv_stamped(int fd, char* buf, size_t size, int64_t& arrived_ns);
// Turns SO_TIMESTAMPNS on or off on a listening socket (one kept across a reload too).
void set_rx_timestamps(int fd, bool on);

// The address the socket is bound to (for $server_addr when listening on a wildcard).
bool local_address(int fd, SockAddr& out);

}  // namespace weir
