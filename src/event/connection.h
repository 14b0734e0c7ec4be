// Connection: a socket with its two events, pool, log and counters. Worker connections are
// preallocated (worker_connections) and recycled through a free list. When the pool runs dry,
// connections that hold no request in progress are reclaimed: idle keep-alive ones first, then
// those still waiting for or sending their request header, oldest first (nginx reclaims only the
// first kind, so a slowloris fills its slots). nginx: src/core/ngx_connection.h,
// src/core/ngx_connection.c
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "core/inet.h"
#include "core/log.h"
#include "core/pool.h"
#include "event/event.h"
#include "os/kernel_pipe.h"
#include "os/send_chain.h"

namespace weir {

struct Listening;
struct SslConnection;
struct Connection;

// What carries a connection's bytes when it is not a plain socket: TLS's record layer (event/ssl),
// an HTTP/2 stream's frames (http/http2). nullptr: the socket itself.
struct ConnectionOps {
  IoResult (*recv)(Connection& c, char* buf, size_t size);
  IoResult (*recv_chain)(Connection& c, ChainLink* chain, off_t limit);
  SendResult (*send_chain)(Connection& c, ChainLink* in, off_t limit);
  int (*peek)(Connection& c);
};

// A protocol's state kept with an upstream connection (Connection::kept).
struct KeptState {
  void* data = nullptr;
  // An idle connection in the keepalive cache has bytes to read: true when the state took them
  // (an HTTP/2 PING, SETTINGS, WINDOW_UPDATE, answered) and the connection may stay cached.
  bool (*idle_read)(Connection& c, void* data) = nullptr;
};

// Bits of Connection::buffered: who holds unsent output.
enum : uint8_t {
  kLowlevelBuffered = 0x0f,
  kWriteBuffered = 0x10,  // the write filter holds data (postpone_output, limit_rate, EAGAIN)
  kCopyBuffered = 0x20,
};

// Which reclaim list a connection is on (at most one).
enum class Reclaim : uint8_t {
  No,
  Idle,     // idle keep-alive or lingering close: closed first, a batch at a time
  Waiting,  // accepted, or a keep-alive request begun, and no complete request header yet: one at a
            // time
};

struct Connection {
  void* data = nullptr;  // the owner: the HTTP connection state or the current request
  Event read;
  Event write;
  int fd = -1;
  SendState io;  // io.fd == fd; io.sent counts bytes sent

  Pool pool;
  // Where its messages go and what context they carry: its own log for a client connection; for
  // an outbound (upstream) connection, the client's, so its messages name the request.
  Log* log = &own_log;
  Log own_log;
  Listening* listening = nullptr;

  // The peer's address, compact (IPv4/IPv6; a unix-socket peer keeps only its family).
  union {
    sockaddr sa;
    sockaddr_in in;
    sockaddr_in6 in6;
  } peer{};
  socklen_t peer_len = 0;
  std::string_view addr_text;  // the peer's address as text, in pool

  Buffer* buffer = nullptr;      // bytes read but not yet parsed (the request header buffer)
  SslConnection* ssl = nullptr;  // TLS (event/ssl): the record layer behind recv and send
  // A protocol's state that lives as long as this upstream connection, kept with it in the
  // keepalive cache (gRPC's HTTP/2 session); freed by a cleanup of the connection's pool.
  KeptState* kept = nullptr;
  const ConnectionOps* ops = nullptr;  // TLS's or an HTTP/2 stream's; nullptr: the socket
  uint64_t number = 0;                 // $connection
  uint64_t requests = 0;               // $connection_requests
  clock::msec_t start_msec = 0;
  // When the newest byte of the last read arrived (CLOCK_REALTIME ns, the kernel's receive
  // timestamp), on a connection whose listener asks for them (rx_stamped); 0: not known.
  int64_t rx_ns = 0;

  Connection* next_free = nullptr;
  Connection* reclaim_prev = nullptr;
  Connection* reclaim_next = nullptr;
  clock::msec_t waiting_since = 0;  // when it joined its reclaim list

  uint8_t buffered = 0;
  bool error : 1 = false;
  bool timedout : 1 = false;
  bool destroyed : 1 = false;
  bool idle : 1 = false;          // waiting for the next keep-alive request
  Reclaim reclaim = Reclaim::No;  // may be closed to make room for a new connection
  bool close : 1 = false;         // asked to close (graceful shutdown, drain)
  bool tcp_nodelay_set : 1 = false;
  bool is_listening : 1 = false;
  bool shared_counter : 1 = false;
  bool outbound : 1 = false;  // opened by weir (an upstream): a peer's reset is an error, as nginx
  // The record layer's last write waits for the peer's bytes, not for room (TLS early data, a key
  // update): the next read readiness runs the write handler too.
  bool write_waits_for_read : 1 = false;
  // epoll reported EPOLLERR: the socket holds an error (a connect that failed). Without it a
  // finished connect succeeded, and connect_error() needs no getsockopt().
  bool pending_error : 1 = false;
  bool need_last_buf : 1 = false;  // send_chain must see the last buffer even when it is empty
                                   // (an HTTP/2 stream ends with it)
  bool rx_stamped : 1 = false;     // its reads keep rx_ns (ListenOptions::rx_timestamps)

  // Receives into [buf, buf+size) (see IoResult): read.ready is cleared when the socket is drained,
  // read.eof set at the end of the stream, an error logged.
  IoResult recv(char* buf, size_t size);
  // Reads into the free space of a chain (os/recv_chain): the same answers and event flags.
  IoResult recv_chain(ChainLink* chain, off_t limit);
  // Sends a chain through io (os/send_chain): clears write.ready when the socket blocks, sets
  // error when the send failed.
  SendResult send_chain(ChainLink* in, off_t limit);
  // Sends what a kernel pipe holds (os/kernel_pipe; a plain socket only): counts it in io.sent,
  // clears write.ready when the socket blocks, logs and sets error when the send failed.
  IoResult send_from_pipe(KernelPipe& p);

  // Whether bytes wait to be read, without taking them: 1 yes, 0 the peer closed, -1 none yet
  // (errno EAGAIN) or an error (errno).
  int peek();
  void set_tcp_nodelay();
  uint16_t peer_port() const;
};

// The worker's preallocated connections.
class ConnectionPool {
 public:
  // Preallocates n connections; returns false if memory is short.
  void init(size_t n);
  // A free connection for fd, or nullptr (logged) when every one is in use and none could be
  // reclaimed.
  Connection* get(int fd, const Log& log);
  void free(Connection& c);
  size_t size() const { return all_.size(); }
  size_t in_use() const { return in_use_; }
  size_t listening_count = 0;

  // Moves c to the end of a reclaim list (or off them): get() closes the oldest when it runs out,
  // setting close and calling the read handler, which must close the connection.
  void set_reclaim(Connection& c, Reclaim list);
  // Fewer than an eighth of the connections are free: the accept handler then lets other workers go
  // first.
  bool nearly_full() const { return all_.size() - in_use_ < all_.size() / 8 + 1; }
  // Closes idle connections (graceful shutdown): sets close and calls their read handler.
  void close_idle();
  // Visits every connection in use.
  template <class F>
  void for_each_in_use(F&& f) {
    for (Connection& c : all_) {
      if (c.fd != -1) f(c);
    }
  }

  static ConnectionPool* current;

 private:
  // An intrusive list through Connection::reclaim_prev/next, oldest first.
  struct List {
    Connection* head = nullptr;
    Connection* tail = nullptr;
    size_t count = 0;
  };
  List& list(Reclaim r) { return r == Reclaim::Idle ? idle_ : waiting_; }
  void drain(const Log& log);

  std::vector<Connection> all_;
  Connection* free_ = nullptr;
  size_t in_use_ = 0;
  List idle_;
  List waiting_;
  uint64_t idle_logged_sec_ = 0;  // when drain() last logged each kind (seconds)
  uint64_t waiting_logged_sec_ = 0;
  uint64_t waiting_reclaimed_ = 0;  // waiting connections closed since that message
};

// Whether this worker is shutting down gracefully: no keep-alive then, idle connections are closed,
// and outbound connections kept for reuse are closed too.
bool worker_exiting();
void set_worker_exiting(bool exiting);
// This worker's number (0 .. worker_processes - 1, the same in each generation); 0 in a single
// process.
int worker_number();
void set_worker_number(int n);

// Closes the socket, removes events from timers and the posted queue, frees the pool and returns
// the connection to the pool. nginx: ngx_close_connection.
void close_connection(Connection& c);

// A per-process counter that numbers connections across all workers (shared memory made by the
// master).
void set_connection_counter(uint64_t* shared);
uint64_t next_connection_number();

// nginx's stub_status counters, shared by the workers (they follow the connection counter in its
// shared page; a process without one counts for itself). Inline: they are on every request's path.
// (ResolverQueries and ResolverErrors are weir's own, for its metrics: the names the resolver was
// asked to look up, and the lookups that failed or timed out.)
enum class StubStat : uint8_t {
  Accepted,
  Handled,
  Active,
  Requests,
  Reading,
  Writing,
  ResolverQueries,
  ResolverErrors,
  Count
};
extern uint64_t* g_stub_stats;
inline void stub_stat_add(StubStat s, int64_t delta) {
  std::atomic_ref<uint64_t>(g_stub_stats[static_cast<int>(s)])
      .fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}
inline uint64_t stub_stat(StubStat s) {
  return std::atomic_ref<uint64_t>(g_stub_stats[static_cast<int>(s)])
      .load(std::memory_order_relaxed);
}

// The connection counters as stub_status, the metrics and the API show them. waiting (idle
// keep-alive) is what is active and neither reading nor writing; the counters are read one by one
// while workers change them, so it never goes below 0.
struct ConnectionCounts {
  uint64_t accepted, handled, active, requests, reading, writing, waiting;
};
inline ConnectionCounts connection_counts() {
  ConnectionCounts c{};
  c.accepted = stub_stat(StubStat::Accepted);
  c.handled = stub_stat(StubStat::Handled);
  c.active = stub_stat(StubStat::Active);
  c.requests = stub_stat(StubStat::Requests);
  c.reading = stub_stat(StubStat::Reading);
  c.writing = stub_stat(StubStat::Writing);
  c.waiting = c.active > c.reading + c.writing ? c.active - c.reading - c.writing : 0;
  return c;
}

}  // namespace weir
