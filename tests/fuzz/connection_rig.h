// For fuzz targets that play a client: a connection over a socketpair accepted as the server
// accepts one (its listener's handler, a real configuration), the client's bytes - a fixed opening,
// then the input in pieces of a size the input's first byte chooses - with the event loop run
// between them and the server's answer read and dropped; then the client goes away, timers run out,
// and every connection (and what hangs on it: requests, streams, TLS) must be gone.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "test_http.h"

namespace weir::test {

// Reads and drops what the server sent; returns how much.
inline size_t drain(int fd) {
  char buf[65536];
  size_t total = 0;
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;) {
    total += static_cast<size_t>(n);
  }
  return total;
}

inline void run_client(TestConf& tc, std::string_view opening, const uint8_t* data, size_t size) {
  if (!tc.ok()) std::abort();
  EventLoop loop;
  if (!loop.init(16).ok()) std::abort();
  ConnectionPool pool;
  pool.init(4);
  ConnectionPool::current = &pool;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) std::abort();
  Log log;
  Connection* c = pool.get(fds[0], log);
  Listening& l = *tc.cycle().listening.front();
  c->listening = &l;
  if (loop.add_connection(*c) != Rc::Ok) std::abort();
  l.handler(*c);

  if (!opening.empty()) (void)::send(fds[1], opening.data(), opening.size(), MSG_NOSIGNAL);
  size_t piece = size > 0 ? 1 + data[0] % 64 * 16 : 1;
  size_t answered = 0;
  for (size_t i = 1; i < size; i += piece) {
    size_t n = std::min(piece, size - i);
    (void)::send(fds[1], data + i, n, MSG_NOSIGNAL);
    for (int k = 0; k < 3; k++) loop.process_events(0);
    answered += drain(fds[1]);
  }
  for (int k = 0; k < 20 && pool.in_use() > 0; k++) {
    loop.process_events(0);
    answered += drain(fds[1]);
  }
  if (std::getenv("WEIR_FUZZ_DEBUG") != nullptr) {
    std::fprintf(stderr, "answered %zu bytes\n", answered);
  }
  ::close(fds[1]);
  for (int k = 0; k < 50 && pool.in_use() > 0; k++) {
    loop.process_events(0);
    loop.expire_all_timers();
  }
  // The client is gone: so must be the connection and everything on it.
  if (pool.in_use() != 0) std::abort();
  ConnectionPool::current = nullptr;
}

}  // namespace weir::test
