// What the balancers share with round robin: the per-request try state (the peer set in use and
// which of its peers this request has tried) and the availability rule of passive health checks.
// ip_hash, hash, least_conn and random pick their peer their own way and fall back to round robin
// (nginx does the same after 20 unlucky picks). nginx: ngx_http_upstream_round_robin.h
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/pool.h"
#include "core/slab.h"
#include "upstream/upstream_group.h"

namespace weir::http {

struct RoundRobinData {
  Pool* pool = nullptr;  // the request's
  RoundRobinPeers* peers = nullptr;
  RoundRobinPeer* current = nullptr;
  uint64_t* tried = nullptr;  // one bit per peer of the current set
  bool on_backup = false;

  bool was_tried(size_t i) const { return (tried[i / 64] >> (i % 64)) & 1; }
  void mark_tried(size_t i) { tried[i / 64] |= uint64_t{1} << (i % 64); }
  // Starts the tried bits over (a new peer set: the backups).
  void reset_tried();
  // The peer this try takes: counted as a connection and handed to pc.
  Rc take(PeerConnection& pc, RoundRobinPeer& p, size_t index, uint64_t now);
};

// Whether a peer may take a try: not down, not unhealthy (active checks), not at max_conns, and
// (when failures count) not failed max_fails times within fail_timeout.
inline bool peer_available(const RoundRobinPeer& p, uint64_t now, bool count_fails) {
  if (p.down) return false;
  const PeerState& s = *p.st;
  if (s.unhealthy) return false;
  if (p.max_conns != 0 && s.conns >= p.max_conns) return false;
  return !count_fails || p.max_fails == 0 || s.fails < p.max_fails ||
         now - s.checked_ms > p.fail_timeout_ms;
}

// Whether peer i of the set in use may take this try (not tried yet, and available).
inline bool can_try(const RoundRobinData& d, size_t i, uint64_t now) {
  return !d.was_tried(i) && peer_available(d.peers->peers[i], now, true);
}

// slow_start: a peer back from failures or ill health regains its weight over slow_start_ms. A
// set with such peers counts its weights in 64ths, so that even a weight of 1 starts near 0.
constexpr int kSlowStartScale = 64;

// What a peer gains in a round of the smooth weighted pick.
inline int pick_gain(const RoundRobinPeers& set, const RoundRobinPeer& p, const PeerState& s,
                     uint64_t now) {
  if (!set.slow_start) return s.effective_weight;
  int gain = s.effective_weight * kSlowStartScale;
  if (p.slow_start_ms != 0 && s.recovered_ms != 0 && now - s.recovered_ms < p.slow_start_ms) {
    gain = std::max(1, static_cast<int>(static_cast<uint64_t>(gain) * (now - s.recovered_ms) /
                                        p.slow_start_ms));
  }
  return gain;
}

// nginx's smooth weighted round robin among the peers (from index `from` on) that eligible(i)
// admits: each gains its effective weight (pick_gain), the heaviest is picked and loses the
// total. The index, or -1 when none is eligible.
template <class Eligible>
ptrdiff_t smooth_weighted_pick(RoundRobinPeers& set, uint64_t now, Eligible eligible,
                               size_t from = 0) {
  ptrdiff_t best = -1;
  int total = 0;
  for (size_t i = from; i < set.peers.size(); i++) {
    if (!eligible(i)) continue;
    RoundRobinPeer& p = set.peers[i];
    PeerState& s = *p.st;
    int gain = pick_gain(set, p, s, now);
    s.current_weight += gain;
    total += gain;
    if (s.effective_weight < p.weight) s.effective_weight++;
    if (best < 0 || s.current_weight > set.peers[static_cast<size_t>(best)].st->current_weight) {
      best = static_cast<ptrdiff_t>(i);
    }
  }
  if (best >= 0) set.peers[static_cast<size_t>(best)].st->current_weight -= total;
  return best;
}

// Holds a peer set's zone lock (when its state is shared) while a balancer picks or frees.
class PeersLock {
 public:
  explicit PeersLock(const RoundRobinPeers& set) : m_(set.lock) {
    if (m_ != nullptr) m_->lock();
  }
  ~PeersLock() {
    if (m_ != nullptr) m_->unlock();
  }
  PeersLock(const PeersLock&) = delete;
  PeersLock& operator=(const PeersLock&) = delete;

 private:
  ShmMutex* m_;
};

// Makes the try state of a request (r.pool) on the group's primary peers and sets pc's tries; the
// balancer then sets pc.get (and pc.data to its own data, which starts with a RoundRobinData).
void init_round_robin_data(RoundRobinData& d, Pool& pool, UpstreamGroup& g, PeerConnection& pc);

// Round robin's get and free, for balancers that fall back to it or account the same way.
Rc round_robin_get(PeerConnection& pc, void* data);
// The same, for a balancer that holds the set's PeersLock already.
Rc round_robin_get_locked(PeerConnection& pc, void* data);
void round_robin_free(PeerConnection& pc, void* data, unsigned state);

// A balancer's try state (Data derives from RoundRobinData) made for a request, with pc's get set
// to the balancer's and its data to the state.
template <class Data>
Data* make_balancer_data(Pool& pool, UpstreamGroup& g, PeerConnection& pc,
                         Rc (*get)(PeerConnection& pc, void* data)) {
  auto* d = pool.make<Data>();
  init_round_robin_data(*d, pool, g, pc);
  pc.get = get;
  pc.data = static_cast<RoundRobinData*>(d);
  return d;
}

// The peer with index `w` in the weight line of the set (0 <= w < total_weight): each peer holds
// `weight` consecutive places, in order. ip_hash and hash map a hash onto it.
size_t peer_at_weight(const RoundRobinPeers& set, uint64_t w);

}  // namespace weir::http
