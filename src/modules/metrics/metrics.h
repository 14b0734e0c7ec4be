// The counts behind weir's metrics: what `prometheus;` exposes in Prometheus's formats and `api;`
// in NGINX Plus's JSON. For each server zone (a server's `status_zone`, else its first server_name;
// servers with the same name share one) the requests by status class, bytes received and sent and a
// request-time histogram; for each peer of each upstream group its tries by status class, its
// failures (no response header: refused, reset, timed out), the bytes both ways and connect,
// header and response time histograms; and the connection counters stub_status keeps.
//
// The counts live in a shared zone made only when some location has `prometheus` or `api`. Each
// worker adds into its own slot (by worker number, so that no cache line bounces between workers)
// with relaxed atomic adds: no mutex and no syscall on a request's path, and exact sums while a
// reload's old and new workers of one number overlap. Readers sum the slots. A reload that keeps
// the same server zones and peers keeps the counts; one that changes them starts a new zone from 0,
// which Prometheus's rate() reads as a counter reset.
//
// Not nginx modules: nginx has only stub_status and needs an exporter beside it; NGINX Plus has
// the API.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "conf/cycle.h"
#include "http/core_module.h"
#include "upstream/resolved_peers.h"
#include "upstream/upstream_group.h"

namespace weir::http {

extern Module http_metrics_module;

namespace metrics {

// Upper bounds of the request-time buckets, in milliseconds and as the `le` label says them.
constexpr uint64_t kBucketMs[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
constexpr const char* kBucketLe[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                     "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
constexpr size_t kBuckets = std::size(kBucketMs) + 1;  // the last: above every bound
static_assert(std::size(kBucketLe) == kBuckets);

// Slots a zone has; workers numbered beyond share them (still exact: the adds are atomic).
constexpr size_t kSlots = 32;

// Milliseconds in kBucketMs's buckets (not cumulative: the exposition adds them up) and their sum.
struct Histogram {
  uint64_t buckets[kBuckets];
  uint64_t sum_ms;
};

// One server zone's counts in one slot.
struct alignas(64) ZoneCounts {
  uint64_t by_class[5];  // 1xx .. 5xx
  uint64_t other;        // a status outside 100..599
  uint64_t received;     // bytes, as $request_length
  uint64_t sent;         // bytes, as $bytes_sent
  Histogram time;
};

// One upstream peer's counts in one slot (a try each, as $upstream_status lists them).
struct alignas(64) PeerCounts {
  uint64_t by_class[5];
  uint64_t failures;  // no response header
  uint64_t received;  // bytes from the peer
  uint64_t sent;      // bytes to the peer
  Histogram connect, header, response;
};

// The zone's root: where the two arrays are, so that a reload keeping the zone finds them.
struct SharedCounts {
  ZoneCounts* zones;  // kSlots × zones, slot-major
  PeerCounts* peers;  // kSlots × peers, slot-major
};

// An upstream peer as the metrics name it: a configured one, or slot `slot` of the group's
// `resolve` servers (peer nullptr), a peer while it holds a live address.
struct PeerRef {
  std::string upstream;
  const RoundRobinPeer* peer;
  const UpstreamGroup* group;
  bool backup;
  size_t slot = 0;
};

// The peer ref names now (nullopt: a slot with no live address); backup set for it.
inline std::optional<RoundRobinPeer> current_peer(const PeerRef& ref, bool& backup) {
  if (ref.peer == nullptr) return resolved_peer(*ref.group, ref.slot, backup);
  backup = ref.backup;
  return *ref.peer;
}

struct MetricsMainConf {
  static constexpr Module* kModule = &http_metrics_module;
  bool used = false;               // some location has `prometheus` or `api`
  std::vector<std::string> zones;  // server zone names, in the order servers appear
  std::vector<PeerRef> peers;      // RoundRobinPeer::counts_index - 1 is a peer's place here
  SharedZone* shm = nullptr;
  SharedCounts* counts = nullptr;  // in the shared zone
};

inline int read_int(const int& counter) {
  return std::atomic_ref<int>(const_cast<int&>(counter)).load(std::memory_order_relaxed);
}

inline uint64_t read(const uint64_t& counter) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(counter)).load(std::memory_order_relaxed);
}

// Entry i of every slot, summed: T is made of uint64_t counters only (its padding stays 0).
template <class T>
T sum_slots(const T* base, size_t per_slot, size_t i) {
  static_assert(sizeof(T) % sizeof(uint64_t) == 0 && std::is_trivially_copyable_v<T>);
  constexpr size_t kWords = sizeof(T) / sizeof(uint64_t);
  uint64_t sum[kWords] = {};
  for (size_t slot = 0; slot < kSlots; slot++) {
    const auto* words = reinterpret_cast<const uint64_t*>(&base[slot * per_slot + i]);
    for (size_t w = 0; w < kWords; w++) sum[w] += read(words[w]);
  }
  T out;
  std::memcpy(&out, sum, sizeof out);
  return out;
}

// What the balancer says of a peer now: down (configured so), unhealthy (active health checks),
// unavailable (max_fails failures within fail_timeout), or up.
inline const char* peer_state(const RoundRobinPeer& p, uint64_t now) {
  if (p.down) return "down";
  const PeerState& st = *p.st;
  if (st.unhealthy) return "unhealthy";
  if (p.max_fails != 0 && st.fails >= p.max_fails && now - st.checked_ms <= p.fail_timeout_ms) {
    return "unavailable";
  }
  return "up";
}

inline constexpr const char* kClass[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// The content handlers (prometheus.cc, api.cc).
Code prometheus_handler(Request& r);
Code api_handler(Request& r);

}  // namespace metrics
}  // namespace weir::http
