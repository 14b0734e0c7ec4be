// The asynchronous DNS client (`resolver`): names that are only known at request time (proxy_pass
// with variables) are resolved through c-ares, whose sockets and timers run in the worker's event
// loop, and kept for their TTL (or `valid=`). A query waits at most resolver_timeout; a request
// that goes away first cancels its query (the answer is then dropped). Errors carry nginx's codes
// and words ("Host not found", "Operation timed out"). nginx: src/core/ngx_resolver.c
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/inet.h"
#include "core/status.h"
#include "event/event.h"

struct ares_channeldata;

namespace weir {

struct Connection;
class Resolver;

// A service's record (SRV): where it is and how much of it to use.
struct SrvRecord {
  std::string target;
  uint16_t port = 0;
  uint16_t priority = 0;
  uint16_t weight = 0;
};

// One question. The handler runs once (unless cancelled), from the event loop: status 0 and addrs,
// or nginx's resolver error code with its text. The query is the resolver's: the asker keeps the
// pointer only to cancel it, and not after its handler ran.
struct ResolveQuery {
  std::string name;
  std::vector<SockAddr> addrs;
  std::vector<SrvRecord> srvs;  // resolve_srv's answer
  uint64_t valid_ms = 0;  // how long the answer holds: its TTL, or the resolver's valid= (0: not
                          // known, for SRV records: the caller's choice)
  int status = 0;
  void (*handler)(ResolveQuery& q) = nullptr;
  void* data = nullptr;
  const Log* log = nullptr;
  Resolver* resolver = nullptr;
  Event timer;  // resolver_timeout
  Event done;   // an answer c-ares gave inside resolve() (a literal, an error), passed on from the
                // loop
  bool answered = false;
  bool cancelled = false;
  bool ares_done = false;
  bool in_call = false;  // inside resolve(): the asker does not hold the pointer yet

  const char* error_text() const;
};

class Resolver {
 public:
  struct Conf {
    std::vector<SockAddr> servers;
    uint64_t valid_ms = 0;  // 0: the answer's TTL
    bool ipv4 = true;
    bool ipv6 = true;
  };

  explicit Resolver(Conf conf) : conf_(std::move(conf)) {}
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // The cached addresses of name, when they are fresh.
  const std::vector<SockAddr>* cached(std::string_view name);
  // Starts a query; nullptr (logged) when the resolver cannot work at all.
  ResolveQuery* resolve(std::string_view name, uint64_t timeout_ms,
                        void (*handler)(ResolveQuery& q), void* data, const Log& log);
  // The same for a service's SRV records (name: "_http._tcp.example.com").
  ResolveQuery* resolve_srv(std::string_view name, uint64_t timeout_ms,
                            void (*handler)(ResolveQuery& q), void* data, const Log& log);
  // The asker is gone: its handler will not run.
  static void cancel(ResolveQuery* q);

  // For c-ares' callbacks.
  void on_socket(int fd, bool readable, bool writable);
  void on_answer(ResolveQuery& q, int ares_status, const void* result);
  void on_srv_answer(ResolveQuery& q, int ares_status, const void* reply);

 private:
  bool ensure_channel(const Log& log);
  // A question begun (its timer set, counted); nullptr when the resolver cannot work (logged).
  ResolveQuery* begin(std::string_view name, uint64_t timeout_ms, void (*handler)(ResolveQuery& q),
                      void* data, const Log& log);
  // c-ares is done with q: whether its asker still waits (then q.status is set).
  bool take_answer(ResolveQuery& q, int ares_status);
  // Then: the asker learns the answer (when wanted) and q goes; an answer given inside resolve()
  // waits for the loop, so that resolve() returns before any handler runs.
  static void complete(ResolveQuery& q, bool wanted);
  void process(int read_fd, int write_fd);
  void rearm_tick();
  static void socket_event(Event& ev);
  static void tick(Event& ev);
  static void query_timeout(Event& ev);
  static void finish(ResolveQuery& q);
  // An asker was answered or went away; when none is left in an exiting worker, c-ares' own
  // retries are cancelled (soon, outside its callbacks) so that they do not hold the worker.
  void asker_gone();
  void let_go_soon();

  struct Entry {
    std::vector<SockAddr> addrs;
    uint64_t expires_ms = 0;
  };

  Conf conf_;
  ares_channeldata* channel_ = nullptr;
  std::unordered_map<std::string, Entry> cache_;
  std::vector<Connection*> sockets_;  // c-ares' sockets, wrapped for the event loop
  Event tick_;                        // c-ares' own retransmission timer
  Event let_go_;                      // let_go_soon's
  size_t pending_ = 0;                // questions c-ares is working on
  size_t askers_ = 0;                 // ... of which someone still waits for
  const Log* log_ = nullptr;          // the latest asker's: where socket errors are reported
};

// "a.b.c.d[:port]", "[v6][:port]" or a name with every address it has (port 53 by default), as the
// resolver directive takes them; the error in nginx's words ("host not found in resolver ...").
Result<std::vector<SockAddr>> parse_resolver_addresses(std::string_view text);

}  // namespace weir
