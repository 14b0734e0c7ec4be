// least_conn: the peer with the fewest active connections for its weight (conns / weight) takes
// the try; peers that tie share it by smooth weighted round robin; the backups, when no primary
// can, the same way. Without a zone the counts are this worker's, as nginx's are.
// nginx: src/http/modules/ngx_http_upstream_least_conn_module.c
#include "core/time_cache.h"
#include "http/request.h"
#include "upstream/round_robin.h"

namespace weir::http {

namespace {

// Whether a has fewer connections than b for their weights (-1), as many (0) or more (1).
int compare_load(const RoundRobinPeer& a, const RoundRobinPeer& b) {
  int64_t x = int64_t{a.st->conns} * b.weight;
  int64_t y = int64_t{b.st->conns} * a.weight;
  return x < y ? -1 : x == y ? 0 : 1;
}

Rc least_conn_get(PeerConnection& pc, void* data) {
  auto& d = *static_cast<RoundRobinData*>(data);
  if (d.peers->peers.size() == 1 && d.peers->backup == nullptr) return round_robin_get(pc, data);
  PeersLock lock(*d.peers);
  uint64_t now = clock::msec();
  for (;;) {
    std::vector<RoundRobinPeer>& peers = d.peers->peers;
    ptrdiff_t best = -1;
    bool many = false;
    for (size_t i = 0; i < peers.size(); i++) {
      if (!can_try(d, i, now)) continue;
      int c = best < 0 ? -1 : compare_load(peers[i], peers[static_cast<size_t>(best)]);
      if (c < 0) {
        best = static_cast<ptrdiff_t>(i);
        many = false;
      } else if (c == 0) {
        many = true;
      }
    }
    if (best >= 0) {
      if (many) {
        // The tie: smooth weighted round robin among the least loaded.
        const RoundRobinPeer& least = peers[static_cast<size_t>(best)];
        best = smooth_weighted_pick(
            *d.peers, now,
            [&](size_t i) { return can_try(d, i, now) && compare_load(peers[i], least) == 0; },
            static_cast<size_t>(best));
      }
      auto i = static_cast<size_t>(best);
      return d.take(pc, peers[i], i, now);
    }
    if (d.on_backup || d.peers->backup == nullptr) {
      d.current = nullptr;
      return Rc::Busy;
    }
    d.peers = d.peers->backup;
    d.on_backup = true;
    d.reset_tried();
  }
}

}  // namespace

Status init_least_conn_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  make_balancer_data<RoundRobinData>(*r.pool, g, pc, least_conn_get);
  return {};
}

}  // namespace weir::http
