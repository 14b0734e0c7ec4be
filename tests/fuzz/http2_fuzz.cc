// libFuzzer target: HTTP/2 input through weir's glue around nghttp2. A real configuration (a
// `listen ... http2` server with answers, a mirror that reads request bodies, a subrequest) and a
// connection over a socketpair, accepted as the server accepts one; the input follows the client
// preface as the client's bytes, in pieces the input chooses, with the event loop run between them
// and the server's answer read and dropped. Then the client goes away, timers run out, and every
// connection and stream must be gone (nothing leaked, nothing left waiting). Built by `make fuzz`.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "test_http.h"

using namespace weir;

namespace {

test::TestConf& conf() {
  static auto* c = new test::TestConf(
      "server { listen 127.0.0.1:1 http2; large_client_header_buffers 2 1k;"
      "  location / { return 200 'hello'; }"
      "  location /m { client_max_body_size 64k; mirror /r; return 200 'mirrored'; }"
      "  location /r { internal; return 204; }"
      "  location /x { return 302 /; }"
      "}",
      "");
  return *c;
}

// Reads and drops what the server sent; how much, for a run on one input (WEIR_FUZZ_DEBUG).
size_t drain(int fd) {
  char buf[65536];
  size_t total = 0;
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
    total += static_cast<size_t>(n);
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  test::TestConf& tc = conf();
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

  static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  (void)::send(fds[1], kPreface, sizeof kPreface - 1, MSG_NOSIGNAL);
  // The first byte sets the piece size, so frames split across reads are tried too.
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
  if (std::getenv("WEIR_FUZZ_DEBUG") != nullptr)
    std::fprintf(stderr, "answered %zu bytes\n", answered);
  ::close(fds[1]);
  for (int k = 0; k < 50 && pool.in_use() > 0; k++) {
    loop.process_events(0);
    loop.expire_all_timers();
  }
  // The client is gone: the connection and every stream's request must be too.
  if (pool.in_use() != 0) std::abort();
  ConnectionPool::current = nullptr;
  return 0;
}
