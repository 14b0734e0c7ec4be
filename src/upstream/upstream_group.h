// Upstream groups: an `upstream name { server ...; }` block, or the implicit group a proxy_pass
// "host:port" makes, with its servers' addresses resolved at load; the balancer that picks a peer
// for each try (round robin, nginx's smooth weighted one, with max_fails / fail_timeout / backup /
// down / max_conns) and the keepalive cache that can stack on it. Per-worker state: without a
// `zone`, each worker counts failures and connections on its own, as nginx does. nginx:
// src/http/ngx_http_upstream.h (ngx_http_upstream_srv_conf_t), ngx_http_upstream_round_robin.c,
// ngx_http_upstream_keepalive_module.c
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "conf/conf_file.h"
#include "conf/cycle.h"
#include "core/inet.h"
#include "core/shm_mutex.h"
#include "core/status.h"
#include "event/peer_connection.h"

namespace weir {
class Resolver;
}

namespace weir::http {

struct Request;
struct UpstreamGroup;
struct HashRing;
class ComplexValue;

// A `server` line of an upstream block.
struct UpstreamServer {
  std::string name;  // as written, for $upstream_addr when it has one address
  std::vector<SockAddr> addrs;
  int weight = 1;
  int max_fails = 1;
  uint64_t fail_timeout_ms = 10000;
  int max_conns = 0;
  uint64_t slow_start_ms = 0;
  bool backup = false;
  bool down = false;
  // `resolve` (nginx 1.27.3) on a name: no addresses at load; they are looked up at run time
  // (resolved_peers.h). resolve_host is the name, resolve_port the port written or 80.
  bool resolve = false;
  std::string resolve_host;
  uint16_t resolve_port = 80;
  // service=name: the name's SRV records give the addresses, ports and weights (the best
  // priority's are peers, the others backups). resolve_srv is the name asked: "_name._tcp.host",
  // or "name.host" when name has a dot.
  std::string resolve_service;
  std::string resolve_srv;
};

// What changes as a peer serves: each worker's own, or in the group's zone, shared by all workers
// (plain data: it lives in shared memory).
struct PeerState {
  int effective_weight = 1;
  int current_weight = 0;
  int conns = 0;
  int idle = 0;  // keep-alive connections cached for it (atomic: each worker's cache adds its own)
  int fails = 0;
  uint64_t accessed_ms = 0;  // the last failure
  uint64_t checked_ms = 0;   // the last failure, or the last try after fail_timeout
  // Active health checks (health_check.h): out of the balancing while unhealthy; the checks in a
  // row that failed or passed; when the next check is due (the worker that moves it makes it).
  bool unhealthy = false;
  bool last_check_passed = false;
  int check_fails = 0;
  int check_passes = 0;
  uint64_t next_check_ms = 0;
  uint64_t checks = 0;            // made, in all
  uint64_t checks_failed = 0;     // ... of which failed
  uint64_t became_unhealthy = 0;  // times the peer went from healthy to unhealthy
  uint64_t recovered_ms = 0;      // when it came back from failures or ill health (slow_start)
};

// One address of a server, as the balancer sees it.
struct RoundRobinPeer {
  SockAddr addr;
  std::string name;                     // "127.0.0.1:8080", "unix:/path"
  const std::string* server = nullptr;  // its server line's name (consistent hash rings use it)
  int weight = 1;
  int max_conns = 0;
  int max_fails = 1;
  uint64_t fail_timeout_ms = 10000;
  uint64_t slow_start_ms = 0;
  bool down = false;
  uint32_t counts_index = 0;  // the metrics module's index of its counters, + 1; 0: not counted
  PeerState own;
  PeerState* st = nullptr;  // &own, or the zone's copy
};

struct RoundRobinPeers {
  std::vector<RoundRobinPeer> peers;
  RoundRobinPeers* backup = nullptr;  // the backup servers, tried when every primary failed
  int total_weight = 0;
  bool weighted = false;
  bool single = false;  // one primary peer and no backup: nothing to fail over to, nothing counted
  bool slow_start = false;   // a peer has slow_start: gains are counted in kSlowStartScale-ths
  ShmMutex* lock = nullptr;  // the zone's, when the state is shared
};

// The keepalive cache of a group (`keepalive N` and its timers), one list per worker.
struct KeepaliveCache;
// A group's servers with `resolve`: their addresses in the zone, the worker's sets built on them.
struct ResolvedPeers;

// How a group picks the peer of each try.
enum class Balancer : uint8_t {
  RoundRobin,
  IpHash,
  Hash,            // hash key
  ConsistentHash,  // hash key consistent
  LeastConn,
  Random,
  RandomTwo,  // random two [least_conn]
};

struct UpstreamGroup {
  std::string host;                // the block's name, or the implicit group's host
  uint16_t port = 0;               // implicit groups: the port proxy_pass named (0: none written)
  uint16_t default_port = 80;      // ... and the scheme's, when none was written (https: 443)
  bool implicit = false;           // made by proxy_pass "host:port", not by an upstream block
  bool defined = false;            // an upstream block with this name was read
  const ConfFile* file = nullptr;  // where it was first named, for errors
  int line = 0;
  std::vector<UpstreamServer> servers;
  RoundRobinPeers* peers = nullptr;  // built at init
  KeepaliveCache* keepalive = nullptr;
  Balancer balancer = Balancer::RoundRobin;
  SharedZone* zone = nullptr;              // `zone`: the peers' state shared by the workers
  const ComplexValue* hash_key = nullptr;  // hash
  HashRing* ring = nullptr;                // hash ... consistent
  // `resolve` servers: the upstream's `resolver` (else the http block's) and its timeout; the
  // peers the names resolve to (nullptr: no server resolves).
  Resolver* resolver = nullptr;
  uint64_t resolver_timeout_ms = 0;  // 0: not set in the block
  ResolvedPeers* resolved = nullptr;
  bool mandatory_check = false;   // a `health_check ... mandatory`: new peers start unhealthy
  bool persistent_check = false;  // ... `persistent`: healthy ones stay so across a reload

  // Sets up the peer connection of one request: its get/free callbacks and their data (the
  // balancer's init_peer, wrapped by the keepalive cache's when there is one).
  Status (*init_peer)(Request& r, UpstreamGroup& g, PeerConnection& pc) = nullptr;
};

// Builds the round-robin peers of a group (called once the configuration is read).
Status init_round_robin(UpstreamGroup& g, Pool& pool);
// A peer of server s at address a, and its place in a set (the set's weights follow).
RoundRobinPeer server_peer(const UpstreamServer& s, const SockAddr& a);
void add_peer(RoundRobinPeers& set, RoundRobinPeer p);
Status init_round_robin_peer(Request& r, UpstreamGroup& g, PeerConnection& pc);
// `zone`: points the peers' state at copies made in the zone's slab pool (before the workers fork).
Status share_peer_state(UpstreamGroup& g, SlabPool* slab);

// The other balancers' init_peer (ip_hash.cc, hash.cc, least_conn.cc, random.cc), and the
// consistent hash's ring, built once the round-robin peers are.
Status init_ip_hash_peer(Request& r, UpstreamGroup& g, PeerConnection& pc);
Status init_hash_peer(Request& r, UpstreamGroup& g, PeerConnection& pc);
Status init_chash_peer(Request& r, UpstreamGroup& g, PeerConnection& pc);
Status init_least_conn_peer(Request& r, UpstreamGroup& g, PeerConnection& pc);
Status init_random_peer(Request& r, UpstreamGroup& g, PeerConnection& pc);
Status init_hash_ring(UpstreamGroup& g, Pool& pool);

// The keepalive cache: `keepalive N` makes it; init_peer stacks on the balancer's.
struct KeepaliveConf {
  int max_cached = 0;
  uint64_t requests = 1000;
  uint64_t time_ms = 3600000;
  uint64_t timeout_ms = 60000;
  // weir's keepalive_surplus_timeout: how long a connection idle beyond max_cached stays open.
  uint64_t surplus_ms = 1000;
};
KeepaliveCache* make_keepalive_cache(Pool& pool, const KeepaliveConf& conf);
// Stacks the cache on the group's balancer (once the balancer's init_peer is set).
void set_keepalive_balancer(KeepaliveCache& k, UpstreamGroup& g);
// Closes the cached connections to addresses that are no peer of the sets any more (`resolve`).
void keepalive_drop_gone(KeepaliveCache& k, const RoundRobinPeers& peers);

}  // namespace weir::http
