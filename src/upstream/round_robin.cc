// The round-robin balancer: nginx's smooth weighted round robin over a group's primary peers, the
// backup peers when none of them can be tried, and passive health checks (max_fails failures within
// fail_timeout take a peer out for fail_timeout; one good answer after that brings it back).
// nginx: src/http/ngx_http_upstream_round_robin.c
#include "core/time_cache.h"
#include "http/request.h"
#include "upstream/upstream_group.h"

namespace weir::http {

namespace {

struct RoundRobinData {
  Pool* pool = nullptr;  // the request's
  RoundRobinPeers* peers = nullptr;
  RoundRobinPeer* current = nullptr;
  uint64_t* tried = nullptr;  // one bit per peer of the current set
  bool on_backup = false;
};

bool tried(const RoundRobinData& d, size_t i) {
  return (d.tried[i / 64] >> (i % 64)) & 1;
}

void mark_tried(RoundRobinData& d, size_t i) {
  d.tried[i / 64] |= uint64_t{1} << (i % 64);
}

// Whether the peer may take this try: not down, not at max_conns, and (when failures count) not
// failed max_fails times within fail_timeout.
bool available(const RoundRobinPeer& p, uint64_t now, bool count_fails) {
  if (p.down) return false;
  if (p.max_conns != 0 && p.conns >= p.max_conns) return false;
  return !count_fails || p.max_fails == 0 || p.fails < p.max_fails ||
         now - p.checked_ms > p.fail_timeout_ms;
}

RoundRobinPeer* pick(RoundRobinData& d, uint64_t now) {
  RoundRobinPeers& set = *d.peers;
  if (set.peers.size() == 1) {
    // One peer is never taken out for failures (there is nothing else to try), as nginx.
    RoundRobinPeer& p = set.peers[0];
    if (tried(d, 0) || !available(p, now, false)) return nullptr;
    mark_tried(d, 0);
    return &p;
  }
  RoundRobinPeer* best = nullptr;
  size_t best_index = 0;
  int total = 0;
  for (size_t i = 0; i < set.peers.size(); i++) {
    RoundRobinPeer& p = set.peers[i];
    if (tried(d, i) || !available(p, now, true)) continue;
    p.current_weight += p.effective_weight;
    total += p.effective_weight;
    if (p.effective_weight < p.weight) p.effective_weight++;
    if (best == nullptr || p.current_weight > best->current_weight) {
      best = &p;
      best_index = i;
    }
  }
  if (best == nullptr) return nullptr;
  mark_tried(d, best_index);
  best->current_weight -= total;
  if (now - best->checked_ms > best->fail_timeout_ms) best->checked_ms = now;
  return best;
}

void reset_tried(RoundRobinData& d) {
  size_t words = (d.peers->peers.size() + 63) / 64;
  d.tried = static_cast<uint64_t*>(d.pool->alloc_zeroed(words * sizeof(uint64_t)));
}

Rc rr_get(PeerConnection& pc, void* data) {
  auto& d = *static_cast<RoundRobinData*>(data);
  uint64_t now = clock::msec();
  RoundRobinPeer* p = pick(d, now);
  if (p == nullptr && !d.on_backup && d.peers->backup != nullptr) {
    // Every primary peer failed or was tried: the backups take over (nginx tries them only then).
    d.peers = d.peers->backup;
    d.on_backup = true;
    reset_tried(d);
    p = pick(d, now);
  }
  if (p == nullptr) {
    d.current = nullptr;
    return Rc::Busy;
  }
  d.current = p;
  p->conns++;
  pc.sockaddr = &p->addr;
  pc.name = p->name;
  return Rc::Ok;
}

void rr_free(PeerConnection& pc, void* data, unsigned state) {
  auto& d = *static_cast<RoundRobinData*>(data);
  RoundRobinPeer* p = d.current;
  if (p == nullptr) return;
  d.current = nullptr;
  uint64_t now = clock::msec();
  if (state & kPeerFailed) {
    p->fails++;
    p->accessed_ms = p->checked_ms = now;
    if (p->max_fails != 0) {
      p->effective_weight -= p->weight / p->max_fails;
      if (p->fails >= p->max_fails && pc.log != nullptr) {
        log_error(LogLevel::Warn, *pc.log, 0, "upstream server temporarily disabled");
      }
    }
    if (p->effective_weight < 0) p->effective_weight = 0;
  } else if (p->accessed_ms < p->checked_ms) {
    p->fails = 0;  // a good answer after fail_timeout: the peer is back
  }
  p->conns--;
  if (pc.tries > 0) pc.tries--;
}

}  // namespace

Status init_round_robin(UpstreamGroup& g, Pool& pool) {
  auto build = [&](bool backup) -> RoundRobinPeers* {
    RoundRobinPeers tmp;
    RoundRobinPeers* set = &tmp;
    for (const UpstreamServer& s : g.servers) {
      if (s.backup != backup) continue;
      for (const SockAddr& a : s.addrs) {
        RoundRobinPeer p;
        p.addr = a;
        p.name = a.to_string();
        p.weight = p.effective_weight = s.weight;
        p.max_fails = s.max_fails;
        p.fail_timeout_ms = s.fail_timeout_ms;
        p.max_conns = s.max_conns;
        p.down = s.down;
        set->total_weight += s.weight;
        if (s.weight != 1) set->weighted = true;
        set->peers.push_back(std::move(p));
      }
    }
    if (set->peers.empty()) return nullptr;
    return pool.make<RoundRobinPeers>(std::move(tmp));
  };
  g.peers = build(false);
  if (g.peers == nullptr) return Status::errorf("no servers in upstream \"%s\"", g.host.c_str());
  g.peers->backup = build(true);
  return {};
}

Status init_round_robin_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  auto* d = r.pool->make<RoundRobinData>();
  d->pool = r.pool;
  d->peers = g.peers;
  reset_tried(*d);
  pc.get = rr_get;
  pc.free = rr_free;
  pc.data = d;
  size_t n =
      g.peers->peers.size() + (g.peers->backup != nullptr ? g.peers->backup->peers.size() : 0);
  pc.tries = static_cast<unsigned>(n);
  return {};
}

}  // namespace weir::http
