// A rig for the event pipe between two socketpairs: an "upstream" a test (or fuzzer) writes in
// pieces of its choosing, so reads come short, and a client whose socket buffer is small and who
// reads a budget at a time, so writes come short. The pipe runs as on read and write events. A
// harness step that fails aborts (the checks of what arrived are the caller's).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "test_http.h"
#include "upstream/event_pipe.h"

namespace weir::test {

inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "pipe rig: %s failed\n", what);
    std::abort();
  }
}

class PipeRig {
 public:
  TestConf conf{"server { listen 127.0.0.1:1; location / { } }"};
  std::unique_ptr<TestRequest> t;
  int up[2] = {-1, -1};  // up[0]: the pipe reads it; up[1]: the test writes as the upstream
  Connection* upstream = nullptr;
  TempPath temp;
  http::EventPipe p;
  std::string client;  // what the client has read, header included
  std::mt19937 rng;

  PipeRig(int nbufs, size_t size, off_t max_temp, unsigned seed) : rng(seed) {
    require(conf.ok(), "the configuration loads");
    t = std::make_unique<TestRequest>(conf);
    http::Request& r = t->r();
    t->set_request_line("GET", "/", 1000);  // HTTP/1.0: the body goes as it is, up to the close
    int small = 4096;
    ::setsockopt(r.connection->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(t->peer_fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    r.headers_out.status = 200;
    r.headers_out.content_length_n = -1;
    require(http::send_header(r) == Rc::Ok, "the header is sent");
    require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, up) == 0, "socketpair");
    Log log;
    upstream = ConnectionPool::current->get(up[0], log);
    temp.name = conf.prefix() + "pipe_temp";
    p.upstream = upstream;
    p.request = &r;
    p.pool = r.pool;
    p.tag = &temp;  // any tag of the test's own
    p.bufs = Bufs{nbufs, size};
    p.busy_size = size;
    p.max_temp_file_size = max_temp;
    p.temp_file_write_size = size;
    p.temp_path = &temp;
    p.input_filter = http::pipe_copy_filter;
    p.input_ctx = &r;
  }
  ~PipeRig() {
    upstream->fd = -1;  // closed below
    ConnectionPool::current->free(*upstream);
    ::close(up[0]);
    if (up[1] >= 0) ::close(up[1]);
  }

  // The upstream sends bytes; the pipe reads (as on a read event).
  void upstream_sends(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::write(up[1], bytes.data(), bytes.size());
      if (n < 0 && errno == EAGAIN) {
        pump(true);
        client_reads(1 << 16);
        continue;
      }
      require(n > 0, "the upstream writes");
      bytes.remove_prefix(static_cast<size_t>(n));
      upstream->read.ready = true;
      require(http::run_event_pipe(p, false) == Rc::Ok, "the pipe runs");
      check_bounds();
    }
  }
  void upstream_closes() {
    ::close(up[1]);
    up[1] = -1;
    upstream->read.ready = true;
    require(http::run_event_pipe(p, false) == Rc::Ok, "the pipe runs");
  }
  // The client reads up to budget bytes; the pipe writes (as on a write event).
  void client_reads(size_t budget) {
    char buf[1 << 16];
    while (budget > 0) {
      ssize_t n = ::read(t->peer_fd(), buf, std::min(budget, sizeof buf));
      if (n <= 0) break;
      client.append(buf, static_cast<size_t>(n));
      budget -= static_cast<size_t>(n);
    }
  }
  void pump(bool write) {
    t->r().connection->write.ready = true;
    upstream->read.ready = up[1] < 0 || upstream->read.ready;
    require(http::run_event_pipe(p, write) == Rc::Ok, "the pipe runs");
    check_bounds();
  }
  void check_bounds() const { require(p.allocated <= p.bufs.num, "raw buffers within bufs.num"); }
  // To the end: everything goes out, and the body is what the client got after the header.
  std::string finish() {
    for (int i = 0; i < 100000 && !p.downstream_done; i++) {
      client_reads(1 << 16);
      pump(true);
    }
    require(p.downstream_done, "everything went out");
    require(http::pipe_drained(p), "every list is empty");
    // As the lifecycle ends the response: the last buffer, and what the write filter held back
    // (the header alone, for an empty body).
    http::Request& r = t->r();
    r.connection->write.ready = true;
    require(http::send_special(r, true, false) != Rc::Error, "the last buffer is sent");
    for (int i = 0; i < 100000 && r.out != nullptr; i++) {
      client_reads(1 << 16);
      r.connection->write.ready = true;
      require(http::output_filter(r, nullptr) != Rc::Error, "the rest is written");
    }
    client_reads(1 << 20);
    size_t head = client.find("\r\n\r\n");
    require(head != std::string::npos, "the client got the header");
    return client.substr(head + 4);
  }
  std::string random_bytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  }
};

}  // namespace weir::test
