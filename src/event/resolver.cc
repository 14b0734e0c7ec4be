#include "event/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>

#include <algorithm>
#include <cstring>

#include "event/connection.h"
#include "event/event_loop.h"

namespace weir {

namespace {

// nginx's resolver codes: the DNS rcodes, and 110 for a timeout.
int nginx_code(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS:
      return 0;
    case ARES_EFORMERR:
      return 1;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
      return 3;
    case ARES_ENOTIMP:
      return 4;
    case ARES_EREFUSED:
      return 5;
    case ARES_ETIMEOUT:
      return 110;
    default:
      return 2;
  }
}

void socket_state_cb(void* data, ares_socket_t fd, int readable, int writable) {
  static_cast<Resolver*>(data)->on_socket(fd, readable != 0, writable != 0);
}

void answer_cb(void* arg, int status, int, ares_addrinfo* result) {
  auto* q = static_cast<ResolveQuery*>(arg);
  q->resolver->on_answer(*q, status, result);
  if (result != nullptr) ares_freeaddrinfo(result);
}

void srv_cb(void* arg, int status, int, unsigned char* abuf, int alen) {
  auto* q = static_cast<ResolveQuery*>(arg);
  ares_srv_reply* reply = nullptr;
  if (status == ARES_SUCCESS) status = ares_parse_srv_reply(abuf, alen, &reply);
  q->resolver->on_srv_answer(*q, status, reply);
  if (reply != nullptr) ares_free_data(reply);
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

const char* ResolveQuery::error_text() const {
  switch (status) {
    case 0:
      return "";
    case 1:
      return "Format error";
    case 3:
      return "Host not found";
    case 4:
      return "Unimplemented";
    case 5:
      return "Operation refused";
    case 110:
      return "Operation timed out";
    default:
      return "Server failure";
  }
}

Result<std::vector<SockAddr>> parse_resolver_addresses(std::string_view text) {
  Result<std::vector<SockAddr>> a = parse_addresses(text, 53, false);
  if (!a.ok()) {
    return Status::errorf("%s in resolver \"%.*s\"", a.status().message().c_str(),
                          static_cast<int>(text.size()), text.data());
  }
  if (a->empty() || (*a)[0].family() == AF_UNIX) {
    return Status::errorf("invalid address \"%.*s\"", static_cast<int>(text.size()), text.data());
  }
  return a;
}

Resolver::~Resolver() {
  if (channel_ != nullptr) ares_destroy(channel_);  // answers nobody waits for any more
  del_timer(tick_);
  del_timer(let_go_);
}

bool Resolver::ensure_channel(const Log& log) {
  if (channel_ != nullptr) return true;
  static const bool library = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS;
  if (!library) {
    log_error(LogLevel::Alert, log, 0, "ares_library_init() failed");
    return false;
  }
  ares_options opts{};
  // DNS only (no /etc/hosts, no search list), as nginx's resolver; retransmit every 2 s.
  char lookups[] = "b";
  opts.lookups = lookups;
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  opts.timeout = 2000;
  opts.tries = 4;
  opts.sock_state_cb = socket_state_cb;
  opts.sock_state_cb_data = this;
  int mask = ARES_OPT_LOOKUPS | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
             ARES_OPT_SOCK_STATE_CB;
  if (int rc = ares_init_options(&channel_, &opts, mask); rc != ARES_SUCCESS) {
    log_error(LogLevel::Alert, log, 0, "ares_init_options() failed: %s", ares_strerror(rc));
    channel_ = nullptr;
    return false;
  }
  std::string csv;
  for (const SockAddr& s : conf_.servers) {
    if (!csv.empty()) csv += ',';
    csv += s.to_string(true);
  }
  if (int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS) {
    log_error(LogLevel::Alert, log, 0, "ares_set_servers_ports_csv(\"%s\") failed: %s", csv.c_str(),
              ares_strerror(rc));
    ares_destroy(channel_);
    channel_ = nullptr;
    return false;
  }
  tick_.handler = tick;
  tick_.data = this;
  tick_.cancelable = true;
  return true;
}

const std::vector<SockAddr>* Resolver::cached(std::string_view name) {
  auto it = cache_.find(std::string(name));
  if (it == cache_.end()) return nullptr;
  if (it->second.expires_ms <= clock::msec()) {
    cache_.erase(it);
    return nullptr;
  }
  return &it->second.addrs;
}

ResolveQuery* Resolver::begin(std::string_view name, uint64_t timeout_ms,
                              void (*handler)(ResolveQuery& q), void* data, const Log& log) {
  if (!ensure_channel(log)) return nullptr;
  log_ = &log;
  // Owned by the resolver until c-ares is done with it, whatever the asker does meanwhile.
  auto* q = new ResolveQuery();
  q->name = std::string(name);
  q->handler = handler;
  q->data = data;
  q->log = &log;
  q->resolver = this;
  q->timer.handler = query_timeout;
  q->timer.data = q;
  q->timer.log = &log;
  q->timer.cancelable = true;  // an exiting worker waits for its askers, not for their timers
  add_timer(q->timer, timeout_ms);
  askers_++;
  pending_++;
  stub_stat_add(StubStat::ResolverQueries, 1);
  return q;
}

ResolveQuery* Resolver::resolve(std::string_view name, uint64_t timeout_ms,
                                void (*handler)(ResolveQuery& q), void* data, const Log& log) {
  ResolveQuery* q = begin(name, timeout_ms, handler, data, log);
  if (q == nullptr) return nullptr;
  ares_addrinfo_hints hints{};
  hints.ai_family = conf_.ipv4 && conf_.ipv6 ? AF_UNSPEC : conf_.ipv6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  q->in_call = true;
  ares_getaddrinfo(channel_, q->name.c_str(), nullptr, &hints, answer_cb, q);
  q->in_call = false;
  rearm_tick();
  return q;
}

ResolveQuery* Resolver::resolve_srv(std::string_view name, uint64_t timeout_ms,
                                    void (*handler)(ResolveQuery& q), void* data, const Log& log) {
  ResolveQuery* q = begin(name, timeout_ms, handler, data, log);
  if (q == nullptr) return nullptr;
  constexpr int kClassIn = 1, kTypeSrv = 33;
  q->in_call = true;
  ares_query(channel_, q->name.c_str(), kClassIn, kTypeSrv, srv_cb, q);
  q->in_call = false;
  rearm_tick();
  return q;
}

void Resolver::cancel(ResolveQuery* q) {
  if (q == nullptr) return;
  if (!q->answered && !q->cancelled) q->resolver->asker_gone();
  q->cancelled = true;  // c-ares' answer will free it
  del_timer(q->timer);
}

void Resolver::finish(ResolveQuery& q) {
  if (q.answered || q.cancelled) return;
  q.answered = true;
  q.resolver->asker_gone();
  if (q.status != 0) stub_stat_add(StubStat::ResolverErrors, 1);
  del_timer(q.timer);
  q.handler(q);
}

void Resolver::asker_gone() {
  askers_--;
  if (worker_exiting()) let_go_soon();
}

void Resolver::let_go_soon() {
  // Out of c-ares' callbacks: ares_cancel runs them.
  if (channel_ == nullptr || askers_ != 0 || pending_ == 0 || let_go_.timer_set) return;
  let_go_.handler = [](Event& ev) {
    auto* self = static_cast<Resolver*>(ev.data);
    if (self->askers_ == 0 && self->pending_ != 0) ares_cancel(self->channel_);
  };
  let_go_.data = this;
  let_go_.cancelable = true;
  add_timer(let_go_, 1);
}

// c-ares is done with q: the asker, if still waiting, learns the answer; then q goes (an asker that
// was answered by the timeout, or that cancelled, dropped it already).
bool Resolver::take_answer(ResolveQuery& q, int ares_status) {
  pending_--;
  q.ares_done = true;
  if (q.answered || q.cancelled || ares_status == ARES_EDESTRUCTION) return false;
  q.status = nginx_code(ares_status);
  return true;
}

void Resolver::complete(ResolveQuery& q, bool wanted) {
  if (q.in_call) {
    q.done.data = &q;
    q.done.handler = wanted ? [](Event& ev) {
      auto& q = *static_cast<ResolveQuery*>(ev.data);
      finish(q);
      delete &q;
    }
                            : [](Event& ev) { delete static_cast<ResolveQuery*>(ev.data); };
    post_event(q.done);
    return;
  }
  if (wanted) finish(q);
  delete &q;
}

void Resolver::on_srv_answer(ResolveQuery& q, int ares_status, const void* reply) {
  bool wanted = take_answer(q, ares_status);
  if (wanted) {
    for (auto* r = static_cast<const ares_srv_reply*>(reply); r != nullptr; r = r->next) {
      q.srvs.push_back(SrvRecord{r->host, r->port, r->priority, r->weight});
    }
    if (q.status == 0 && q.srvs.empty()) q.status = 3;
    q.valid_ms = conf_.valid_ms;
  }
  complete(q, wanted);
}

void Resolver::on_answer(ResolveQuery& q, int ares_status, const void* result) {
  bool wanted = take_answer(q, ares_status);
  if (wanted) {
    int ttl = INT32_MAX;
    if (ares_status == ARES_SUCCESS) {
      for (auto* n = static_cast<const ares_addrinfo*>(result)->nodes; n != nullptr;
           n = n->ai_next) {
        if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
        SockAddr a;
        std::memcpy(&a.ss, n->ai_addr, n->ai_addrlen);
        a.len = n->ai_addrlen;
        if (std::find(q.addrs.begin(), q.addrs.end(), a) == q.addrs.end()) q.addrs.push_back(a);
        ttl = std::min(ttl, n->ai_ttl);
      }
      if (q.addrs.empty()) q.status = 3;
    }
    if (q.status == 0) {
      q.valid_ms = conf_.valid_ms != 0 ? conf_.valid_ms : static_cast<uint64_t>(ttl) * 1000;
      cache_[q.name] = Entry{q.addrs, clock::msec() + q.valid_ms};
    }
  }
  complete(q, wanted);
}

void Resolver::query_timeout(Event& ev) {
  auto& q = *static_cast<ResolveQuery*>(ev.data);
  q.status = 110;
  finish(q);  // c-ares goes on until its own tries end; its answer is then dropped
}

void Resolver::on_socket(int fd, bool readable, bool writable) {
  auto it = std::find_if(sockets_.begin(), sockets_.end(),
                         [fd](const Connection* c) { return c->fd == fd; });
  if (!readable && !writable) {
    if (it == sockets_.end()) return;
    Connection* c = *it;
    sockets_.erase(it);
    // c-ares closes the socket itself: the loop only forgets it.
    (void)EventLoop::current->del_connection(*c);
    del_timer(c->read);
    del_timer(c->write);
    delete_posted_event(c->read);
    delete_posted_event(c->write);
    c->fd = -1;
    ConnectionPool::current->free(*c);
    return;
  }
  if (it != sockets_.end()) return;  // registered once, both directions
  Connection* c = ConnectionPool::current->get(fd, *log_);
  if (c == nullptr) return;      // logged; c-ares will time out
  c->own_log.sink = log_->sink;  // the error log of the configuration, not the asker's context
  c->data = this;
  c->idle = true;  // an exiting worker lets it go once no asker waits (socket_event)
  c->read.handler = c->write.handler = socket_event;
  c->read.log = c->write.log = c->log;
  if (EventLoop::current->add_connection(*c) != Rc::Ok) {
    c->fd = -1;
    ConnectionPool::current->free(*c);
    return;
  }
  sockets_.push_back(c);
}

void Resolver::socket_event(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* self = static_cast<Resolver*>(c->data);
  if (c->close) {
    // The worker is exiting: c-ares' tries for askers that are gone need not hold it.
    c->close = false;
    self->let_go_soon();
    return;
  }
  int fd = c->fd;
  if (ev.write) {
    self->process(ARES_SOCKET_BAD, fd);
    return;
  }
  // Edge-triggered: read until nothing is left (c-ares may take one packet per call).
  do {
    self->process(fd, ARES_SOCKET_BAD);
  } while (std::find_if(self->sockets_.begin(), self->sockets_.end(),
                        [fd](const Connection* s) { return s->fd == fd; }) !=
               self->sockets_.end() &&
           readable_now(fd));
}

void Resolver::process(int read_fd, int write_fd) {
  ares_process_fd(channel_, read_fd, write_fd);
  rearm_tick();
}

void Resolver::tick(Event& ev) {
  static_cast<Resolver*>(ev.data)->process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

void Resolver::rearm_tick() {
  if (channel_ == nullptr) return;
  if (pending_ == 0) {
    del_timer(tick_);
    return;
  }
  timeval max{1, 0};
  timeval tv{};
  timeval* t = ares_timeout(channel_, &max, &tv);
  uint64_t ms = static_cast<uint64_t>(t->tv_sec) * 1000 + static_cast<uint64_t>(t->tv_usec) / 1000;
  add_timer(tick_, ms == 0 ? 1 : ms);
}

}  // namespace weir
