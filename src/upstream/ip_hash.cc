// ip_hash: the client's address (the first three bytes of IPv4, all sixteen of IPv6) picks the
// peer, so a client keeps landing on the same server; nginx's hash, so it lands on the same server
// as with nginx. A peer that cannot take the try is rehashed, 20 times at most, then round robin
// decides. nginx: src/http/modules/ngx_http_upstream_ip_hash_module.c
#include "core/time_cache.h"
#include "http/request.h"
#include "upstream/round_robin.h"

namespace weir::http {

namespace {

struct IpHashData : RoundRobinData {
  const uint8_t* addr = nullptr;
  size_t addr_len = 0;
  uint32_t hash = 89;
  unsigned tries = 0;
};

constexpr uint8_t kPseudoAddr[3] = {0, 0, 0};  // clients that are not IP (unix sockets)

Rc ip_hash_get(PeerConnection& pc, void* data) {
  auto& d = *static_cast<IpHashData*>(static_cast<RoundRobinData*>(data));
  if (d.tries > 20 || d.peers->peers.size() < 2) return round_robin_get(pc, data);
  PeersLock lock(*d.peers);
  uint64_t now = clock::msec();
  uint32_t hash = d.hash;
  for (;;) {
    for (size_t i = 0; i < d.addr_len; i++) hash = (hash * 113 + d.addr[i]) % 6271;
    size_t i = peer_at_weight(*d.peers, hash % static_cast<uint32_t>(d.peers->total_weight));
    if (can_try(d, i, now)) {
      d.hash = hash;
      return d.take(pc, d.peers->peers[i], i, now);
    }
    if (++d.tries > 20) return round_robin_get_locked(pc, data);
  }
}

}  // namespace

Status init_ip_hash_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  auto* d = make_balancer_data<IpHashData>(*r.pool, g, pc, ip_hash_get);
  const Connection& c = *r.connection;
  if (c.peer.sa.sa_family == AF_INET) {
    d->addr = reinterpret_cast<const uint8_t*>(&c.peer.in.sin_addr.s_addr);
    d->addr_len = 3;
  } else if (c.peer.sa.sa_family == AF_INET6) {
    d->addr = c.peer.in6.sin6_addr.s6_addr;
    d->addr_len = 16;
  } else {
    d->addr = kPseudoAddr;
    d->addr_len = 3;
  }
  return {};
}

}  // namespace weir::http
