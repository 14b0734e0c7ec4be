// random [two [least_conn]]: a peer drawn at random by weight; with `two`, two different peers are
// drawn and the one with fewer connections for its weight takes the try (the power of two
// choices). 20 unlucky draws and round robin decides, as nginx. Each worker draws on its own.
// nginx: src/http/modules/ngx_http_upstream_random_module.c
#include "core/random.h"

#include "core/time_cache.h"
#include "http/request.h"
#include "upstream/round_robin.h"

namespace weir::http {

namespace {

struct RandomData : RoundRobinData {
  unsigned tries = 0;
};

RandomData& random_data(void* data) {
  return *static_cast<RandomData*>(static_cast<RoundRobinData*>(data));
}

size_t draw(const RoundRobinData& d) {
  return peer_at_weight(*d.peers, worker_random() % static_cast<uint64_t>(d.peers->total_weight));
}

Rc random_get(PeerConnection& pc, void* data) {
  RandomData& d = random_data(data);
  if (d.tries > 20 || d.peers->peers.size() < 2) return round_robin_get(pc, data);
  PeersLock lock(*d.peers);
  uint64_t now = clock::msec();
  for (;;) {
    size_t i = draw(d);
    if (can_try(d, i, now)) return d.take(pc, d.peers->peers[i], i, now);
    if (++d.tries > 20) return round_robin_get_locked(pc, data);
  }
}

Rc random_two_get(PeerConnection& pc, void* data) {
  RandomData& d = random_data(data);
  if (d.tries > 20 || d.peers->peers.size() < 2) return round_robin_get(pc, data);
  PeersLock lock(*d.peers);
  uint64_t now = clock::msec();
  ptrdiff_t first = -1;
  for (;;) {
    size_t i = draw(d);
    if (can_try(d, i, now) && static_cast<ptrdiff_t>(i) != first) {
      if (first < 0) {
        first = static_cast<ptrdiff_t>(i);
        continue;
      }
      const RoundRobinPeer& a = d.peers->peers[static_cast<size_t>(first)];
      const RoundRobinPeer& b = d.peers->peers[i];
      // The less loaded of the two (conns / weight); the second on a tie.
      if (int64_t{b.st->conns} * a.weight > int64_t{a.st->conns} * b.weight) {
        i = static_cast<size_t>(first);
      }
      return d.take(pc, d.peers->peers[i], i, now);
    }
    if (++d.tries > 20) return round_robin_get_locked(pc, data);
  }
}

}  // namespace

Status init_random_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  make_balancer_data<RandomData>(*r.pool, g, pc,
                                 g.balancer == Balancer::RandomTwo ? random_two_get : random_get);
  return {};
}

}  // namespace weir::http
