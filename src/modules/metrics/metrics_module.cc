// The metrics module: its directives (`prometheus`, `api`, `status_zone`), the shared zone, and the
// log-phase counting. See metrics.h.
#include <string>
#include <unordered_map>

#include "core/str.h"
#include "core/time_cache.h"
#include "modules/metrics/metrics.h"
#include "upstream/upstream.h"
#include "upstream/upstream_module.h"

namespace weir::http {
namespace metrics {
namespace {

struct MetricsSrvConf {
  static constexpr Module* kModule = &http_metrics_module;
  static constexpr ConfLevel kLevel = ConfLevel::Srv;
  std::string status_zone;
  bool has_status_zone = false;
  uint32_t zone = 0;  // index into the main conf's zones
};

void add(uint64_t& counter, uint64_t n) {
  std::atomic_ref<uint64_t>(counter).fetch_add(n, std::memory_order_relaxed);
}

void observe(Histogram& h, uint64_t ms) {
  size_t b = 0;
  while (b < std::size(kBucketMs) && ms > kBucketMs[b]) b++;
  add(h.buckets[b], 1);
  add(h.sum_ms, ms);
}

// Each try of the request's upstream, counted for its peer (a peer of no group, one a resolver
// found for a variable proxy_pass, is not).
void count_tries(const MetricsMainConf& mcf, size_t slot, const Upstream& u) {
  for (const UpstreamState* s = u.states; s != nullptr; s = s->next) {
    if (s->counts_index == 0) continue;
    PeerCounts& p = mcf.counts->peers[slot * mcf.peers.size() + s->counts_index - 1];
    if (s->header_time < 0) {
      add(p.failures, 1);
    } else if (s->status >= 100 && s->status < 600) {
      add(p.by_class[s->status / 100 - 1], 1);
    }
    add(p.received, static_cast<uint64_t>(s->bytes_received));
    add(p.sent, static_cast<uint64_t>(s->bytes_sent));
    if (s->connect_time >= 0) observe(p.connect, static_cast<uint64_t>(s->connect_time));
    if (s->header_time >= 0) observe(p.header, static_cast<uint64_t>(s->header_time));
    if (s->response_time >= 0) observe(p.response, static_cast<uint64_t>(s->response_time));
  }
}

// A resolved slot took a new address: its counters (every worker's) start again.
void reset_peer_counts(void* data, uint32_t counts_index) {
  const auto& mcf = *static_cast<const MetricsMainConf*>(data);
  if (mcf.counts == nullptr) return;
  for (size_t slot = 0; slot < kSlots; slot++) {
    auto* words =
        reinterpret_cast<uint64_t*>(&mcf.counts->peers[slot * mcf.peers.size() + counts_index - 1]);
    for (size_t w = 0; w < sizeof(PeerCounts) / sizeof(uint64_t); w++) {
      std::atomic_ref<uint64_t>(words[w]).store(0, std::memory_order_relaxed);
    }
  }
}

// The log phase: the finished request counted in its server zone, in this worker's slot.
Code count_request(Request& r) {
  const auto& mcf = r.main_cf<MetricsMainConf>();
  if (mcf.counts == nullptr || !r.is_main()) return Rc::Ok;
  size_t slot = static_cast<size_t>(worker_number()) % kSlots;
  ZoneCounts& z = mcf.counts->zones[slot * mcf.zones.size() + r.srv<MetricsSrvConf>().zone];
  int status = r.err_status != 0 ? r.err_status : r.headers_out.status;
  if (status >= 100 && status < 600) {
    add(z.by_class[status / 100 - 1], 1);
  } else {
    add(z.other, 1);
  }
  add(z.received, static_cast<uint64_t>(r.request_length));
  add(z.sent, static_cast<uint64_t>(r.connection->io.sent));
  uint64_t now = clock::wall_msec();
  observe(z.time, now > r.start_msec ? now - r.start_msec : 0);
  if (r.upstream != nullptr && !mcf.peers.empty()) count_tries(mcf, slot, *r.upstream);
  return Rc::Ok;
}

// --- configuration ---------------------------------------------------------------------------

Status prometheus_directive(ConfContext& cf, const ConfNode&) {
  conf_of<MetricsMainConf>(cf.http->main_conf).used = true;
  set_location_handler(cf, prometheus_handler);
  return {};
}

// api [write=off]: NGINX Plus's read-only API (api.cc); weir changes nothing through it.
Status api_directive(ConfContext& cf, const ConfNode& n) {
  if (n.args.size() == 2 && n.args[1] != "write=off") {
    if (n.args[1] == "write=on")
      return cf.error("weir's \"api\" is read-only: \"write=on\" is not supported");
    return cf.errorf("invalid parameter \"%s\"", n.args[1].c_str());
  }
  conf_of<MetricsMainConf>(cf.http->main_conf).used = true;
  set_location_handler(cf, api_handler);
  return {};
}

Status status_zone_directive(ConfContext& cf, const ConfNode& n, MetricsSrvConf& conf) {
  if (conf.has_status_zone) return Status::error("is duplicate");
  if (n.args[1].empty()) return cf.errorf("invalid zone name \"%s\"", n.args[1].c_str());
  conf.status_zone = n.args[1];
  conf.has_status_zone = true;
  return {};
}

// The counts: kSlots slots of every server zone and peer, zeroed when the zone is new, kept across
// a reload with the same zones and peers (the zone's name says which).
Status init_zone(SharedZone& zone, void* old_data) {
  auto& mcf = *static_cast<MetricsMainConf*>(zone.data);
  if (old_data != nullptr) {
    mcf.counts = static_cast<MetricsMainConf*>(old_data)->counts;
    return {};
  }
  SlabPool& slab = *zone.slab;
  auto* counts = static_cast<SharedCounts*>(slab.calloc_locked(sizeof(SharedCounts)));
  if (counts != nullptr) {
    counts->zones = static_cast<ZoneCounts*>(
        slab.calloc_locked(sizeof(ZoneCounts) * kSlots * mcf.zones.size()));
    if (!mcf.peers.empty()) {
      counts->peers = static_cast<PeerCounts*>(
          slab.calloc_locked(sizeof(PeerCounts) * kSlots * mcf.peers.size()));
    }
  }
  if (counts == nullptr || counts->zones == nullptr ||
      (counts->peers == nullptr && !mcf.peers.empty())) {
    return Status::errorf("zone \"%s\" is too small", zone.name.c_str());
  }
  mcf.counts = counts;
  slab.data = counts;
  return {};
}

MetricsMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<MetricsMainConf>();
}

MetricsSrvConf* create_srv_conf(ConfContext& cf) {
  return cf.pool.make<MetricsSrvConf>();
}

// Every server gets its zone; the shared zone is sized for them and named after them.
Status init(ConfContext& cf) {
  auto& mcf = conf_of<MetricsMainConf>(cf.http->main_conf);
  if (!mcf.used) return {};
  std::unordered_map<std::string, uint32_t> index;
  for (CoreSrvConf* cscf : conf_of<CoreMainConf>(cf.http->main_conf).servers) {
    auto& pscf = conf_of<MetricsSrvConf>(cscf->ctx->srv_conf);
    const std::string& name = pscf.has_status_zone ? pscf.status_zone : cscf->server_name;
    auto [it, added] = index.emplace(name, static_cast<uint32_t>(mcf.zones.size()));
    if (added) mcf.zones.push_back(name);
    pscf.zone = it->second;
  }
  if (mcf.zones.empty()) mcf.zones.emplace_back();
  for (UpstreamGroup* g : upstream_groups(cf)) {
    // An implicit group (proxy_pass host:port) is named as it was written.
    std::string name = g->host;
    if (g->implicit && g->port != 0) {
      char port[8];
      char* end = put_uint(port, g->port);
      name += ':';
      name.append(port, end);
    }
    for (RoundRobinPeers* list = g->peers; list != nullptr; list = list->backup) {
      for (RoundRobinPeer& p : list->peers) {
        if (p.counts_index == 0) {
          p.counts_index = static_cast<uint32_t>(mcf.peers.size()) + 1;
          mcf.peers.push_back(PeerRef{name, &p, g, list != g->peers});
        }
      }
    }
    if (size_t slots = resolved_slots(*g); slots != 0) {
      count_resolved_peers(*g, static_cast<uint32_t>(mcf.peers.size()), reset_peer_counts, &mcf);
      for (size_t k = 0; k < slots; k++) mcf.peers.push_back(PeerRef{name, nullptr, g, false, k});
    }
  }
  std::string all;
  for (const std::string& z : mcf.zones) {
    all += z;
    all += '\n';
  }
  for (const PeerRef& p : mcf.peers) {
    all += p.upstream + ' ';
    all += p.peer != nullptr ? p.peer->name : "resolve " + std::to_string(p.slot);
    all += '\n';
  }
  char name[40];
  std::snprintf(name, sizeof name, "weir_metrics:%016llx",
                static_cast<unsigned long long>(hash_bytes(all)));
  size_t bytes =
      kSlots * (sizeof(ZoneCounts) * mcf.zones.size() + sizeof(PeerCounts) * mcf.peers.size());
  size_t pages = (bytes + 4095) / 4096 + 2;
  Result<SharedZone*> zone = cf.cycle.add_zone(name, (pages + 8) * 4096, &http_metrics_module);
  if (!zone.ok()) return cf.error(zone.status().message());
  mcf.shm = *zone;
  (*zone)->data = &mcf;
  (*zone)->init = init_zone;
  add_phase_handler(cf, Phase::Log, count_request);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<prometheus_directive>("prometheus", kHttpLocConf | kNoArgs),
    directive<api_directive>("api", kHttpLocConf | kNoArgs | kTake1),
    directive<status_zone_directive>("status_zone", kHttpSrvConf | kTake1),
};
static_assert(directives_of(kDirectives, &http_metrics_module));

}  // namespace
}  // namespace metrics

using metrics::create_main_conf;
using metrics::create_srv_conf;

Module http_metrics_module{
    .name = "http_metrics",
    .type = ModuleType::Http,
    .directives = metrics::kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
    .create_srv_conf = create_conf<create_srv_conf>,
    .postconfiguration = metrics::init,
};

}  // namespace weir::http
