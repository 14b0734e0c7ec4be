// The round-robin balancer: nginx's smooth weighted round robin over a group's primary peers, the
// backup peers when none of them can be tried, and passive health checks (max_fails failures within
// fail_timeout take a peer out for fail_timeout; one good answer after that brings it back).
// nginx: src/http/ngx_http_upstream_round_robin.c
#include "upstream/round_robin.h"

#include "core/slab.h"
#include "core/time_cache.h"
#include "http/request.h"
#include "upstream/resolved_peers.h"

namespace weir::http {

void RoundRobinData::reset_tried() {
  size_t words = (peers->peers.size() + 63) / 64;
  tried = static_cast<uint64_t*>(pool->alloc_zeroed(words * sizeof(uint64_t)));
}

Rc RoundRobinData::take(PeerConnection& pc, RoundRobinPeer& p, size_t index, uint64_t now) {
  mark_tried(index);
  if (now - p.st->checked_ms > p.fail_timeout_ms) p.st->checked_ms = now;
  current = &p;
  p.st->conns++;
  pc.sockaddr = &p.addr;
  pc.name = p.name;
  pc.counts_index = p.counts_index;
  return Rc::Ok;
}

namespace {

// The smooth weighted pick among the peers that can take this try; -1 when none can.
ptrdiff_t pick(RoundRobinData& d, uint64_t now) {
  RoundRobinPeers& set = *d.peers;
  if (set.single) {
    // A lone peer with no backups is never taken out for failures (there is nothing else to try),
    // as nginx; one with backups is, so that they take over.
    if (d.was_tried(0) || !peer_available(set.peers[0], now, false)) return -1;
    return 0;
  }
  return smooth_weighted_pick(set, now, [&](size_t i) { return can_try(d, i, now); });
}

}  // namespace

Rc round_robin_get(PeerConnection& pc, void* data) {
  PeersLock lock(*static_cast<RoundRobinData*>(data)->peers);  // the backups share the zone
  return round_robin_get_locked(pc, data);
}

Rc round_robin_get_locked(PeerConnection& pc, void* data) {
  auto& d = *static_cast<RoundRobinData*>(data);
  uint64_t now = clock::msec();
  ptrdiff_t i = pick(d, now);
  if (i < 0 && !d.on_backup && d.peers->backup != nullptr) {
    // Every primary peer failed or was tried: the backups take over (nginx tries them only then).
    d.peers = d.peers->backup;
    d.on_backup = true;
    d.reset_tried();
    i = pick(d, now);
  }
  if (i < 0) {
    d.current = nullptr;
    return Rc::Busy;
  }
  return d.take(pc, d.peers->peers[static_cast<size_t>(i)], static_cast<size_t>(i), now);
}

void round_robin_free(PeerConnection& pc, void* data, unsigned state) {
  auto& d = *static_cast<RoundRobinData*>(data);
  RoundRobinPeer* p = d.current;
  if (p == nullptr) return;
  d.current = nullptr;
  PeersLock lock(*d.peers);
  PeerState& s = *p->st;
  if (d.peers->single) {
    // Nothing else could take the request, so its failures are not counted, as nginx.
    s.fails = 0;
    s.conns--;
    pc.tries = 0;
    return;
  }
  uint64_t now = clock::msec();
  if (state & kPeerFailed) {
    s.fails++;
    s.accessed_ms = s.checked_ms = now;
    if (p->max_fails != 0) {
      s.effective_weight -= p->weight / p->max_fails;
      if (s.fails >= p->max_fails && pc.log != nullptr) {
        log_error(LogLevel::Warn, *pc.log, 0, "upstream server temporarily disabled");
      }
    }
    if (s.effective_weight < 0) s.effective_weight = 0;
  } else if (s.accessed_ms < s.checked_ms) {
    // A good answer after fail_timeout: the peer is back (and, with slow_start, regains its
    // weight from now on if it had been taken out).
    if (p->max_fails != 0 && s.fails >= p->max_fails) s.recovered_ms = now;
    s.fails = 0;
  }
  s.conns--;
  if (pc.tries > 0) pc.tries--;
}

size_t peer_at_weight(const RoundRobinPeers& set, uint64_t w) {
  size_t i = 0;
  while (w >= static_cast<uint64_t>(set.peers[i].weight)) {
    w -= static_cast<uint64_t>(set.peers[i].weight);
    i++;
  }
  return i;
}

RoundRobinPeer server_peer(const UpstreamServer& s, const SockAddr& a) {
  RoundRobinPeer p;
  p.addr = a;
  p.name = a.to_string();
  p.server = &s.name;
  p.weight = p.own.effective_weight = s.weight;
  p.max_fails = s.max_fails;
  p.fail_timeout_ms = s.fail_timeout_ms;
  p.max_conns = s.max_conns;
  p.down = s.down;
  p.slow_start_ms = s.slow_start_ms;
  return p;
}

void add_peer(RoundRobinPeers& set, RoundRobinPeer p) {
  if (p.slow_start_ms != 0) set.slow_start = true;
  set.total_weight += p.weight;
  if (p.weight != 1) set.weighted = true;
  set.peers.push_back(std::move(p));
}

Status init_round_robin(UpstreamGroup& g, Pool& pool) {
  // A set of servers that all resolve at run time starts empty (their peers come and go).
  auto resolves = [&](bool backup) {
    return std::any_of(g.servers.begin(), g.servers.end(),
                       [&](const UpstreamServer& s) { return s.backup == backup && s.resolve; });
  };
  auto build = [&](bool backup) -> RoundRobinPeers* {
    RoundRobinPeers set;
    for (const UpstreamServer& s : g.servers) {
      if (s.backup != backup) continue;
      for (const SockAddr& a : s.addrs) add_peer(set, server_peer(s, a));
    }
    if (set.peers.empty() && !resolves(backup)) return nullptr;
    return pool.make<RoundRobinPeers>(std::move(set));
  };
  g.peers = build(false);
  if (g.peers == nullptr) return Status::errorf("no servers in upstream \"%s\"", g.host.c_str());
  g.peers->backup = build(true);
  g.peers->single = g.peers->peers.size() == 1 && g.peers->backup == nullptr && !resolves(false);
  // The vectors are final now: each peer's state is its own until a zone shares it.
  for (RoundRobinPeers* set = g.peers; set != nullptr;
       set = set == g.peers ? set->backup : nullptr) {
    for (RoundRobinPeer& p : set->peers) p.st = &p.own;
  }
  return {};
}

Status share_peer_state(UpstreamGroup& g, SlabPool* slab) {
  for (RoundRobinPeers* set : {g.peers, g.peers->backup}) {
    if (set == nullptr) continue;
    auto* states =
        static_cast<PeerState*>(slab->calloc_locked(sizeof(PeerState) * set->peers.size()));
    if (states == nullptr) {
      return Status::errorf("upstream zone \"%s\" is too small for upstream \"%s\"",
                            g.zone->name.c_str(), g.host.c_str());
    }
    for (size_t i = 0; i < set->peers.size(); i++) {
      states[i] = set->peers[i].own;
      set->peers[i].st = &states[i];
    }
    set->lock = &slab->mutex();
  }
  return {};
}

void init_round_robin_data(RoundRobinData& d, Pool& pool, UpstreamGroup& g, PeerConnection& pc) {
  if (g.resolved != nullptr) hold_resolved_peers(g, pool);
  d.pool = &pool;
  d.peers = g.peers;
  d.reset_tried();
  size_t n =
      g.peers->peers.size() + (g.peers->backup != nullptr ? g.peers->backup->peers.size() : 0);
  pc.tries = static_cast<unsigned>(n);
  pc.free = round_robin_free;
}

Status init_round_robin_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  make_balancer_data<RoundRobinData>(*r.pool, g, pc, round_robin_get);
  return {};
}

}  // namespace weir::http
