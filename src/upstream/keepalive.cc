// The keepalive cache of an upstream group (`keepalive N`): up to N idle connections per worker,
// most recently used first, each kept only after a complete, well-framed response and for at most
// keepalive_requests requests, keepalive_time in all and keepalive_timeout idle. A cached
// connection the upstream closes (or sends anything on) is dropped; at graceful shutdown and when
// the worker runs out of connections it is closed like an idle client. It stacks on the balancer:
// get asks the balancer for a peer, then looks for a cached connection to the same address.
//
// Beyond nginx: a connection released while N are already idle (a surplus one) is not closed at
// once but after keepalive_surplus_timeout of disuse, least recently used first. nginx closes it at
// once, so a load whose concurrency hovers above N opens and closes upstream connections all the
// time (a handshake, a FIN and a TIME_WAIT socket each); here the idle count above N shrinks only
// when the demand that made it has gone. `keepalive_surplus_timeout 0` is nginx's rule.
// nginx: src/http/modules/ngx_http_upstream_keepalive_module.c
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <deque>

#include "event/event_loop.h"
#include "http/request.h"
#include "upstream/round_robin.h"
#include "upstream/upstream_group.h"

namespace weir::http {

namespace {

struct CachedConnection {
  Connection* connection = nullptr;
  SockAddr addr;
  PeerState* st = nullptr;  // the peer's, which counts its idle connections
  KeepaliveCache* cache = nullptr;
  clock::msec_t idle_since = 0;
  CachedConnection* prev = nullptr;
  CachedConnection* next = nullptr;
};

}  // namespace

struct KeepaliveCache {
  KeepaliveConf conf;
  Status (*balancer_init_peer)(Request& r, UpstreamGroup& g, PeerConnection& pc) = nullptr;
  std::deque<CachedConnection> items;  // grows to the worker's peak of idle connections
  CachedConnection* head = nullptr;    // cached, most recent first
  CachedConnection* tail = nullptr;
  CachedConnection* free = nullptr;
  int cached = 0;
  Event trim;  // closes the surplus connections that stayed unused for surplus_ms
  Log trim_log;

  KeepaliveCache() = default;
  KeepaliveCache(const KeepaliveCache&) = delete;
  KeepaliveCache& operator=(const KeepaliveCache&) = delete;
  ~KeepaliveCache() {
    if (trim.timer_set) del_timer(trim);
  }
};

namespace {

struct KeepalivePeerData {
  KeepaliveCache* cache = nullptr;
  Rc (*get)(PeerConnection& pc, void* data) = nullptr;
  void (*free)(PeerConnection& pc, void* data, unsigned state) = nullptr;
  void* data = nullptr;
};

void count_idle(CachedConnection& it, int delta) {
  if (it.st != nullptr)
    std::atomic_ref<int>(it.st->idle).fetch_add(delta, std::memory_order_relaxed);
}

void unlink_item(KeepaliveCache& k, CachedConnection* it) {
  count_idle(*it, -1);
  k.cached--;
  (it->prev != nullptr ? it->prev->next : k.head) = it->next;
  (it->next != nullptr ? it->next->prev : k.tail) = it->prev;
  it->prev = nullptr;
  it->next = k.free;
  k.free = it;
}

void drop(CachedConnection* it) {
  Connection* c = it->connection;
  it->connection = nullptr;
  unlink_item(*it->cache, it);
  ConnectionPool::current->set_reclaim(*c, Reclaim::No);
  close_connection(*c);
}

void dummy_handler(Event&) {}

// Closes the least recently used connections above the cap that have been idle for surplus_ms,
// and comes back when the next one will have been.
void trim_surplus(Event& ev) {
  auto& k = *static_cast<KeepaliveCache*>(ev.data);
  clock::msec_t now = clock::msec();
  while (k.cached > k.conf.max_cached) {
    clock::msec_t since = k.tail->idle_since;
    if (now - since < k.conf.surplus_ms) {
      add_timer(k.trim, since + k.conf.surplus_ms - now);
      return;
    }
    drop(k.tail);
  }
}

// A connection was cached while the cap was full: close the least recently used one now (nginx's
// rule), or let the surplus timer close it when it will have been unused long enough (at once if
// it already has).
void on_surplus(KeepaliveCache& k, const Log& log) {
  if (k.conf.surplus_ms == 0) {
    drop(k.tail);
    return;
  }
  if (k.trim.timer_set) return;
  k.trim_log.sink = log.sink;
  clock::msec_t idle = clock::msec() - k.tail->idle_since;
  add_timer(k.trim, idle < k.conf.surplus_ms ? k.conf.surplus_ms - idle : 0);
}

// An idle cached connection's read event: the upstream closed it, sent something it should not
// have, it stayed idle too long, or the worker wants it back.
void cached_read_handler(Event& ev) {
  auto* c = static_cast<Connection*>(ev.data);
  auto* it = static_cast<CachedConnection*>(c->data);
  if (!ev.timedout && !c->close && c->kept != nullptr && c->kept->idle_read != nullptr) {
    if (c->kept->idle_read(*c, c->kept->data)) return;
    drop(it);
    return;
  }
  if (!ev.timedout && !c->close) {
    char buf[1];
    ssize_t n = ::recv(c->fd, buf, 1, MSG_PEEK);
    if (n < 0 && errno == EAGAIN) return;
  }
  drop(it);
}

Rc keepalive_get(PeerConnection& pc, void* data) {
  auto& d = *static_cast<KeepalivePeerData*>(data);
  Rc rc = d.get(pc, d.data);
  if (rc != Rc::Ok) return rc;
  KeepaliveCache& k = *d.cache;
  for (CachedConnection* it = k.head; it != nullptr; it = it->next) {
    if (!(it->addr == *pc.sockaddr)) continue;
    Connection* c = it->connection;
    it->connection = nullptr;
    unlink_item(k, it);
    ConnectionPool::current->set_reclaim(*c, Reclaim::No);
    c->idle = false;
    if (c->read.timer_set) del_timer(c->read);
    if (pc.log != nullptr) c->log = pc.log;
    c->read.log = c->write.log = c->log;
    c->io.sent = 0;
    pc.connection = c;
    WEIR_DEBUG(*c->log, "get keepalive peer: using connection fd:%d", c->fd);
    return Rc::Done;
  }
  return Rc::Ok;
}

void keepalive_free(PeerConnection& pc, void* data, unsigned state) {
  auto& d = *static_cast<KeepalivePeerData*>(data);
  KeepaliveCache& k = *d.cache;
  Connection* c = pc.connection;
  bool keep = c != nullptr && (state & kPeerKeepalive) && !(state & kPeerFailed) && !c->read.eof &&
              !c->read.error && !c->read.timedout && !c->write.error && !c->write.timedout &&
              !c->error;
  if (keep) {
    c->requests++;
    if (c->requests >= k.conf.requests || clock::msec() - c->start_msec > k.conf.time_ms ||
        worker_exiting()) {
      keep = false;
    }
  }
  if (keep) {
    WEIR_DEBUG(*c->log, "free keepalive peer: saving connection fd:%d", c->fd);
    if (k.free == nullptr) k.free = &k.items.emplace_back();
    CachedConnection* it = k.free;
    k.free = it->next;
    k.cached++;
    it->connection = c;
    it->idle_since = clock::msec();
    it->addr = *pc.sockaddr;
    // Every balancer's data starts with round robin's, whose current peer this try took.
    RoundRobinPeer* peer = static_cast<RoundRobinData*>(d.data)->current;
    it->st = peer != nullptr ? peer->st : nullptr;
    count_idle(*it, 1);
    it->cache = &k;
    it->prev = nullptr;
    it->next = k.head;
    (k.head != nullptr ? k.head->prev : k.tail) = it;
    k.head = it;
    pc.connection = nullptr;  // the cache holds it now
    if (c->write.timer_set) del_timer(c->write);
    add_timer(c->read, k.conf.timeout_ms);
    c->data = it;
    c->read.handler = cached_read_handler;
    c->write.handler = dummy_handler;
    c->own_log.sink = c->log->sink;
    c->log = &c->own_log;
    c->read.log = c->write.log = c->log;
    c->idle = true;
    ConnectionPool::current->set_reclaim(*c, Reclaim::Idle);
    if (k.cached > k.conf.max_cached) on_surplus(k, *c->log);
    // Data (or a close) may already be waiting: look at once.
    if (c->read.ready) cached_read_handler(c->read);
  }
  d.free(pc, d.data, state);
}

}  // namespace

KeepaliveCache* make_keepalive_cache(Pool& pool, const KeepaliveConf& conf) {
  auto* k = pool.make<KeepaliveCache>();
  k->conf = conf;
  // A timer of a worker's own housekeeping: it does not keep an exiting worker.
  k->trim.data = k;
  k->trim.handler = trim_surplus;
  k->trim.log = &k->trim_log;
  k->trim.cancelable = true;
  k->items.resize(static_cast<size_t>(conf.max_cached));
  for (CachedConnection& it : k->items) {
    it.cache = k;
    it.next = k->free;
    k->free = &it;
  }
  return k;
}

namespace {

Status init_keepalive_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  KeepaliveCache& k = *g.keepalive;
  if (Status s = k.balancer_init_peer(r, g, pc); !s.ok()) return s;
  auto* d = r.pool->make<KeepalivePeerData>();
  d->cache = &k;
  d->get = pc.get;
  d->free = pc.free;
  d->data = pc.data;
  pc.get = keepalive_get;
  pc.free = keepalive_free;
  pc.data = d;
  return {};
}

}  // namespace

void keepalive_drop_gone(KeepaliveCache& k, const RoundRobinPeers& peers) {
  auto is_peer = [&](const SockAddr& a) {
    for (const RoundRobinPeers* set = &peers; set != nullptr; set = set->backup) {
      for (const RoundRobinPeer& p : set->peers) {
        if (p.addr == a) return true;
      }
    }
    return false;
  };
  for (CachedConnection* it = k.head; it != nullptr;) {
    CachedConnection* next = it->next;
    if (!is_peer(it->addr)) drop(it);
    it = next;
  }
}

void set_keepalive_balancer(KeepaliveCache& k, UpstreamGroup& g) {
  k.balancer_init_peer = g.init_peer;
  g.init_peer = init_keepalive_peer;
}

}  // namespace weir::http
