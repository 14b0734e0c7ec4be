// hash key [consistent]: a key made of variables picks the peer. Plain: nginx's rehashing of
// CRC32(key) onto the weight line (compatible with Cache::Memcached). consistent: a ketama ring of
// 160 points per unit of weight on each server, CRC32(host "\0" port prev_hash) as nginx builds
// it, so keys land on the same servers as with nginx and moving a server moves only its keys.
// A peer that cannot take the try: the next point (or rehash), 20 times at most, then round robin.
// nginx: src/http/modules/ngx_http_upstream_hash_module.c
#include <zlib.h>

#include <algorithm>

#include "core/str.h"
#include "core/time_cache.h"
#include "http/request.h"
#include "http/script.h"
#include "upstream/round_robin.h"

namespace weir::http {

struct HashPoint {
  uint32_t hash;
  const std::string* server;
};

struct HashRing {
  std::vector<HashPoint> points;
};

namespace {

uint32_t crc32_of(uint32_t crc, std::string_view s) {
  return static_cast<uint32_t>(
      ::crc32(crc, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

struct HashData : RoundRobinData {
  std::string_view key;
  uint32_t hash = 0;  // plain: the running sum; consistent: the point index
  unsigned rehash = 0;
  unsigned tries = 0;
  const HashRing* ring = nullptr;
};

HashData& hash_data(void* data) {
  return *static_cast<HashData*>(static_cast<RoundRobinData*>(data));
}

bool falls_back(const HashData& d) {
  return d.tries > 20 || d.peers->peers.size() < 2 || d.key.empty();
}

Rc hash_get(PeerConnection& pc, void* data) {
  HashData& d = hash_data(data);
  if (falls_back(d)) return round_robin_get(pc, data);
  PeersLock lock(*d.peers);
  uint64_t now = clock::msec();
  for (;;) {
    // ((crc32([rehash] key) >> 16) & 0x7fff) + the previous hash; no rehash prefix the first time.
    uint32_t crc = 0;
    if (d.rehash > 0) {
      char buf[24];
      crc = crc32_of(crc, {buf, static_cast<size_t>(put_uint(buf, d.rehash) - buf)});
    }
    crc = crc32_of(crc, d.key);
    d.hash += (crc >> 16) & 0x7fff;
    d.rehash++;
    size_t i = peer_at_weight(*d.peers, d.hash % static_cast<uint32_t>(d.peers->total_weight));
    if (can_try(d, i, now)) return d.take(pc, d.peers->peers[i], i, now);
    if (++d.tries > 20) return round_robin_get_locked(pc, data);
  }
}

Rc chash_get(PeerConnection& pc, void* data) {
  HashData& d = hash_data(data);
  if (falls_back(d)) return round_robin_get(pc, data);
  PeersLock lock(*d.peers);
  uint64_t now = clock::msec();
  const std::vector<HashPoint>& points = d.ring->points;
  std::vector<RoundRobinPeer>& peers = d.peers->peers;
  for (;;) {
    // The point's server: its addresses that can take the try share it by smooth weighted round
    // robin.
    const std::string* server = points[d.hash % points.size()].server;
    ptrdiff_t best = smooth_weighted_pick(
        *d.peers, now, [&](size_t i) { return *peers[i].server == *server && can_try(d, i, now); });
    if (best >= 0) {
      auto i = static_cast<size_t>(best);
      return d.take(pc, peers[i], i, now);
    }
    d.hash++;
    if (++d.tries > 20) return round_robin_get_locked(pc, data);
  }
}

}  // namespace

Status init_hash_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  make_balancer_data<HashData>(*r.pool, g, pc, hash_get)->key = g.hash_key->eval(r);
  return {};
}

Status init_chash_peer(Request& r, UpstreamGroup& g, PeerConnection& pc) {
  auto* d = make_balancer_data<HashData>(*r.pool, g, pc, chash_get);
  d->key = g.hash_key->eval(r);
  d->ring = g.ring;
  // The first point at or after the key's hash, wrapping round.
  uint32_t h = crc32_of(0, d->key);
  const std::vector<HashPoint>& points = g.ring->points;
  auto it = std::lower_bound(points.begin(), points.end(), h,
                             [](const HashPoint& p, uint32_t v) { return p.hash < v; });
  d->hash = static_cast<uint32_t>(it - points.begin());
  return {};
}

Status init_hash_ring(UpstreamGroup& g, Pool& pool) {
  auto* ring = pool.make<HashRing>();
  // A server's points come from its name as written, so the addresses of a name that resolves at
  // run time come and go under points that stay.
  for (const UpstreamServer& s : g.servers) {
    // host "\0" port, from the server's name ("unix:" paths have no port).
    std::string_view name = s.name;
    std::string_view host = name;
    std::string_view port;
    if (name.size() >= 5 && iequals(name.substr(0, 5), "unix:")) {
      host = name.substr(5);
    } else {
      size_t j = name.size();
      while (j > 0 && name[j - 1] >= '0' && name[j - 1] <= '9') j--;
      if (j > 0 && name[j - 1] == ':') {
        host = name.substr(0, j - 1);
        port = name.substr(j);
      }
    }
    uint32_t base = crc32_of(0, host);
    base = crc32_of(base, std::string_view("\0", 1));
    base = crc32_of(base, port);
    uint32_t prev = 0;
    for (int j = 0; j < s.weight * 160; j++) {
      // The previous hash's four bytes, least significant first.
      const char bytes[4] = {static_cast<char>(prev & 0xff), static_cast<char>((prev >> 8) & 0xff),
                             static_cast<char>((prev >> 16) & 0xff),
                             static_cast<char>((prev >> 24) & 0xff)};
      uint32_t h = crc32_of(base, {bytes, 4});
      ring->points.push_back({h, &s.name});
      prev = h;
    }
  }
  std::stable_sort(ring->points.begin(), ring->points.end(),
                   [](const HashPoint& a, const HashPoint& b) { return a.hash < b.hash; });
  auto last = std::unique(ring->points.begin(), ring->points.end(),
                          [](const HashPoint& a, const HashPoint& b) { return a.hash == b.hash; });
  ring->points.erase(last, ring->points.end());
  g.ring = ring;
  return {};
}

}  // namespace weir::http
