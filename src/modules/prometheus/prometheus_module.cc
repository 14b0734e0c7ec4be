// prometheus: weir's metrics in Prometheus's text exposition format (0.0.4), or in OpenMetrics 1.0
// when the scraper's Accept asks for it, from `location = /metrics { prometheus; }`: the
// connection counters stub_status keeps, and for each server zone (a server's `status_zone`, else
// its first server_name; servers with the same name share one) the requests by status class, the
// bytes received and sent, and a request-time histogram; for each peer of each upstream group, its
// tries by the status they got, its failures (no response header: refused, reset, timed out), the
// bytes both ways, connect, header and response time histograms, and its state as the balancer sees
// it (with a `zone`, every worker's; without, the answering worker's).
//
// The counts live in a shared zone made only when some location has `prometheus`. Each worker
// adds into its own slot (by worker number, so that no cache line bounces between workers) with
// relaxed atomic adds: no mutex and no syscall on a request's path, and exact sums while a
// reload's old and new workers of one number overlap. The handler sums the slots. A reload that
// keeps the same server zones keeps the counts; one that changes them starts a new zone from 0,
// which Prometheus's rate() reads as a counter reset.
//
// Not an nginx module: nginx has only stub_status and needs an exporter beside it.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "conf/cycle.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "upstream/upstream.h"
#include "upstream/upstream_group.h"
#include "upstream/upstream_module.h"

namespace weir::http {

extern Module http_prometheus_module;

namespace {

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

// An upstream peer as the metrics name it.
struct PeerRef {
  std::string upstream;
  const RoundRobinPeer* peer;
};

struct PrometheusMainConf {
  static constexpr Module* kModule = &http_prometheus_module;
  bool used = false;               // some location has `prometheus`
  std::vector<std::string> zones;  // server zone names, in the order servers appear
  std::vector<PeerRef> peers;
  // A try's peer by its name's address: UpstreamState::peer views RoundRobinPeer::name.
  std::unordered_map<const char*, uint32_t> peer_index;
  SharedZone* shm = nullptr;
  SharedCounts* counts = nullptr;  // in the shared zone
};

struct PrometheusSrvConf {
  static constexpr Module* kModule = &http_prometheus_module;
  static constexpr ConfLevel kLevel = ConfLevel::Srv;
  std::string status_zone;
  bool has_status_zone = false;
  uint32_t zone = 0;  // index into the main conf's zones
};

void add(uint64_t& counter, uint64_t n) {
  std::atomic_ref<uint64_t>(counter).fetch_add(n, std::memory_order_relaxed);
}

uint64_t read(const uint64_t& counter) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(counter)).load(std::memory_order_relaxed);
}

void observe(Histogram& h, uint64_t ms) {
  size_t b = 0;
  while (b < std::size(kBucketMs) && ms > kBucketMs[b]) b++;
  add(h.buckets[b], 1);
  add(h.sum_ms, ms);
}

// Each try of the request's upstream, counted for its peer (a peer of no group, one a resolver
// found for a variable proxy_pass, is not).
void count_tries(const PrometheusMainConf& mcf, size_t slot, const Upstream& u) {
  for (const UpstreamState* s = u.states; s != nullptr; s = s->next) {
    auto it = mcf.peer_index.find(s->peer.data());
    if (it == mcf.peer_index.end()) continue;
    PeerCounts& p = mcf.counts->peers[slot * mcf.peers.size() + it->second];
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

// The log phase: the finished request counted in its server zone, in this worker's slot.
Code count_request(Request& r) {
  const auto& mcf = r.main_cf<PrometheusMainConf>();
  if (mcf.counts == nullptr || !r.is_main()) return Rc::Ok;
  size_t slot = static_cast<size_t>(worker_number()) % kSlots;
  ZoneCounts& z = mcf.counts->zones[slot * mcf.zones.size() + r.srv<PrometheusSrvConf>().zone];
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

// --- the exposition --------------------------------------------------------------------------

// A label value as the format has it: backslash, double quote and line feed escaped.
std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Exposition {
 public:
  explicit Exposition(bool openmetrics) : openmetrics_(openmetrics) {}

  // # HELP and # TYPE; an OpenMetrics counter's family is named without "_total".
  void family(std::string_view name, std::string_view type, std::string_view help) {
    if (openmetrics_ && type == "counter" && name.ends_with("_total")) {
      name.remove_suffix(6);
    }
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, uint64_t value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    char num[24];
    out_.append(num, put_uint(num, value));
    out_ += '\n';
  }
  // A value in seconds from milliseconds: "1.234".
  void sample_seconds(std::string_view name, std::string_view labels, uint64_t ms) {
    out_ += name;
    out_ += '{';
    out_ += labels;
    out_ += "} ";
    char num[32];
    char* e = put_uint(num, ms / 1000);
    *e++ = '.';
    e = put_uint_pad(e, ms % 1000, 3);
    out_.append(num, e);
    out_ += '\n';
  }
  std::string finish() {
    if (openmetrics_) out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  bool openmetrics_;
  std::string out_;
};

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

constexpr const char* kClass[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// The buckets made cumulative, the sum in seconds and the count.
void histogram(Exposition& x, std::string_view name, const std::string& labels,
               const Histogram& h) {
  std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t b = 0; b < kBuckets; b++) {
    cumulative += h.buckets[b];
    x.sample(bucket, labels + ",le=\"" + kBucketLe[b] + "\"", cumulative);
  }
  x.sample_seconds(std::string(name) + "_sum", labels, h.sum_ms);
  x.sample(std::string(name) + "_count", labels, cumulative);
}

void connection_metrics(Exposition& x) {
  uint64_t active = stub_stat(StubStat::Active);
  uint64_t reading = stub_stat(StubStat::Reading);
  uint64_t writing = stub_stat(StubStat::Writing);
  x.family("weir_connections_accepted_total", "counter", "Client connections accepted.");
  x.sample("weir_connections_accepted_total", {}, stub_stat(StubStat::Accepted));
  x.family("weir_connections_handled_total", "counter",
           "Client connections handled (accepted and not dropped for a limit).");
  x.sample("weir_connections_handled_total", {}, stub_stat(StubStat::Handled));
  x.family("weir_connections_active", "gauge", "Client connections open now.");
  x.sample("weir_connections_active", {}, active);
  x.family("weir_connections_reading", "gauge", "Connections reading a request's header.");
  x.sample("weir_connections_reading", {}, reading);
  x.family("weir_connections_writing", "gauge", "Connections serving a request.");
  x.sample("weir_connections_writing", {}, writing);
  x.family("weir_connections_waiting", "gauge", "Idle keep-alive connections.");
  x.sample("weir_connections_waiting", {},
           active > reading + writing ? active - reading - writing : 0);
  x.family("weir_http_requests_served_total", "counter",
           "Requests read, as stub_status counts them (all servers).");
  x.sample("weir_http_requests_served_total", {}, stub_stat(StubStat::Requests));
}

void server_metrics(Exposition& x, const PrometheusMainConf& mcf) {
  std::vector<ZoneCounts> sums;
  std::vector<std::string> servers;
  for (size_t i = 0; i < mcf.zones.size(); i++) {
    sums.push_back(sum_slots(mcf.counts->zones, mcf.zones.size(), i));
    servers.push_back("server=\"" + label(mcf.zones[i]) + "\"");
  }
  x.family("weir_http_requests_total", "counter",
           "Requests answered, by server zone and status class.");
  for (size_t i = 0; i < sums.size(); i++) {
    for (size_t c = 0; c < 5; c++) {
      x.sample("weir_http_requests_total", servers[i] + ",code=\"" + kClass[c] + "\"",
               sums[i].by_class[c]);
    }
    x.sample("weir_http_requests_total", servers[i] + ",code=\"other\"", sums[i].other);
  }
  x.family("weir_http_received_bytes_total", "counter",
           "Bytes of requests received (line, header and body), by server zone.");
  for (size_t i = 0; i < sums.size(); i++) {
    x.sample("weir_http_received_bytes_total", servers[i], sums[i].received);
  }
  x.family("weir_http_sent_bytes_total", "counter",
           "Bytes of responses sent (header and body), by server zone.");
  for (size_t i = 0; i < sums.size(); i++) {
    x.sample("weir_http_sent_bytes_total", servers[i], sums[i].sent);
  }
  x.family("weir_http_request_duration_seconds", "histogram",
           "Time from a request's first byte to its last byte sent, by server zone.");
  for (size_t i = 0; i < sums.size(); i++) {
    histogram(x, "weir_http_request_duration_seconds", servers[i], sums[i].time);
  }
}

// What the balancer says of a peer now: down (configured so), unavailable (max_fails failures
// within fail_timeout), or up.
const char* peer_state(const RoundRobinPeer& p, uint64_t now) {
  if (p.down) return "down";
  const PeerState& st = *p.st;
  if (p.max_fails != 0 && st.fails >= p.max_fails && now - st.checked_ms <= p.fail_timeout_ms) {
    return "unavailable";
  }
  return "up";
}

void upstream_metrics(Exposition& x, const PrometheusMainConf& mcf) {
  if (mcf.peers.empty()) return;
  std::vector<PeerCounts> sums;
  std::vector<std::string> peers;
  for (size_t i = 0; i < mcf.peers.size(); i++) {
    sums.push_back(sum_slots(mcf.counts->peers, mcf.peers.size(), i));
    peers.push_back("upstream=\"" + label(mcf.peers[i].upstream) + "\",peer=\"" +
                    label(mcf.peers[i].peer->name) + "\"");
  }
  x.family("weir_upstream_responses_total", "counter",
           "Response headers from an upstream peer (a try each), by status class.");
  for (size_t i = 0; i < sums.size(); i++) {
    for (size_t c = 0; c < 5; c++) {
      x.sample("weir_upstream_responses_total", peers[i] + ",code=\"" + kClass[c] + "\"",
               sums[i].by_class[c]);
    }
  }
  x.family("weir_upstream_failures_total", "counter",
           "Tries of an upstream peer that got no response header (refused, reset, timed out).");
  for (size_t i = 0; i < sums.size(); i++) {
    x.sample("weir_upstream_failures_total", peers[i], sums[i].failures);
  }
  x.family("weir_upstream_received_bytes_total", "counter", "Bytes received from a peer.");
  for (size_t i = 0; i < sums.size(); i++) {
    x.sample("weir_upstream_received_bytes_total", peers[i], sums[i].received);
  }
  x.family("weir_upstream_sent_bytes_total", "counter", "Bytes sent to a peer.");
  for (size_t i = 0; i < sums.size(); i++) {
    x.sample("weir_upstream_sent_bytes_total", peers[i], sums[i].sent);
  }
  const std::pair<const char*, Histogram PeerCounts::*> times[] = {
      {"weir_upstream_connect_duration_seconds", &PeerCounts::connect},
      {"weir_upstream_header_duration_seconds", &PeerCounts::header},
      {"weir_upstream_response_duration_seconds", &PeerCounts::response}};
  const char* help[] = {"Time to connect to a peer (and for TLS, to shake hands).",
                        "Time from a try's start to the peer's response header.",
                        "Time from a try's start to the peer's last byte."};
  for (size_t t = 0; t < std::size(times); t++) {
    x.family(times[t].first, "histogram", help[t]);
    for (size_t i = 0; i < sums.size(); i++) {
      histogram(x, times[t].first, peers[i], sums[i].*times[t].second);
    }
  }
  x.family("weir_upstream_peer_state", "gauge",
           "1 for a peer's state now (up, down, unavailable), as the balancer of the answering "
           "worker sees it (every worker's, with a zone).");
  uint64_t now = clock::msec();
  for (size_t i = 0; i < sums.size(); i++) {
    const char* state = peer_state(*mcf.peers[i].peer, now);
    for (const char* s : {"up", "down", "unavailable"}) {
      x.sample("weir_upstream_peer_state", peers[i] + ",state=\"" + s + "\"",
               std::strcmp(s, state) == 0 ? 1 : 0);
    }
  }
}

std::string exposition(const PrometheusMainConf& mcf, bool openmetrics) {
  Exposition x(openmetrics);
  connection_metrics(x);
  server_metrics(x, mcf);
  upstream_metrics(x, mcf);
  return x.finish();
}

// The scraper asks for OpenMetrics (Prometheus does, before the text format).
bool wants_openmetrics(const Request& r) {
  for (const Header* h : r.headers_in.headers) {
    if (iequals(h->key, "Accept") &&
        ifind(h->value, "application/openmetrics-text") != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

Code prometheus_handler(Request& r) {
  if (!(r.method & (kGet | kHead))) return Code::status(405);
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  const auto& mcf = r.main_cf<PrometheusMainConf>();
  bool openmetrics = wants_openmetrics(r);
  std::string text = exposition(mcf, openmetrics);
  return send_response(r, 200, r.pool->dup(text),
                       openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                   : "text/plain; version=0.0.4; charset=utf-8");
}

// --- configuration ---------------------------------------------------------------------------

Status prometheus_directive(ConfContext& cf, const ConfNode&) {
  conf_of<PrometheusMainConf>(cf.http->main_conf).used = true;
  set_location_handler(cf, prometheus_handler);
  return {};
}

Status status_zone_directive(ConfContext& cf, const ConfNode& n, PrometheusSrvConf& conf) {
  if (conf.has_status_zone) return Status::error("is duplicate");
  if (n.args[1].empty()) return cf.errorf("invalid zone name \"%s\"", n.args[1].c_str());
  conf.status_zone = n.args[1];
  conf.has_status_zone = true;
  return {};
}

// The counts: kSlots slots of every server zone and peer, zeroed when the zone is new, kept across
// a reload with the same zones and peers (the zone's name says which).
Status init_zone(SharedZone& zone, void* old_data) {
  auto& mcf = *static_cast<PrometheusMainConf*>(zone.data);
  if (old_data != nullptr) {
    mcf.counts = static_cast<PrometheusMainConf*>(old_data)->counts;
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

PrometheusMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<PrometheusMainConf>();
}

PrometheusSrvConf* create_srv_conf(ConfContext& cf) {
  return cf.pool.make<PrometheusSrvConf>();
}

// Every server gets its zone; the shared zone is sized for them and named after them.
Status init(ConfContext& cf) {
  auto& mcf = conf_of<PrometheusMainConf>(cf.http->main_conf);
  if (!mcf.used) return {};
  std::unordered_map<std::string, uint32_t> index;
  for (CoreSrvConf* cscf : conf_of<CoreMainConf>(cf.http->main_conf).servers) {
    auto& pscf = conf_of<PrometheusSrvConf>(cscf->ctx->srv_conf);
    const std::string& name = pscf.has_status_zone ? pscf.status_zone : cscf->server_name;
    auto [it, added] = index.emplace(name, static_cast<uint32_t>(mcf.zones.size()));
    if (added) mcf.zones.push_back(name);
    pscf.zone = it->second;
  }
  if (mcf.zones.empty()) mcf.zones.emplace_back();
  for (UpstreamGroup* g : upstream_groups(cf)) {
    for (RoundRobinPeers* list = g->peers; list != nullptr; list = list->backup) {
      for (const RoundRobinPeer& p : list->peers) {
        if (mcf.peer_index.emplace(p.name.data(), static_cast<uint32_t>(mcf.peers.size())).second) {
          // An implicit group (proxy_pass host:port) is named as it was written.
          std::string name = g->host;
          if (g->implicit && g->port != 0) {
            char port[8];
            char* end = put_uint(port, g->port);
            name += ':';
            name.append(port, end);
          }
          mcf.peers.push_back(PeerRef{std::move(name), &p});
        }
      }
    }
  }
  std::string all;
  for (const std::string& z : mcf.zones) {
    all += z;
    all += '\n';
  }
  for (const PeerRef& p : mcf.peers) {
    all += p.upstream + ' ' + p.peer->name + '\n';
  }
  char name[40];
  std::snprintf(name, sizeof name, "weir_metrics:%016llx",
                static_cast<unsigned long long>(hash_bytes(all)));
  size_t bytes =
      kSlots * (sizeof(ZoneCounts) * mcf.zones.size() + sizeof(PeerCounts) * mcf.peers.size());
  size_t pages = (bytes + 4095) / 4096 + 2;
  Result<SharedZone*> zone = cf.cycle.add_zone(name, (pages + 8) * 4096, &http_prometheus_module);
  if (!zone.ok()) return cf.error(zone.status().message());
  mcf.shm = *zone;
  (*zone)->data = &mcf;
  (*zone)->init = init_zone;
  add_phase_handler(cf, Phase::Log, count_request);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<prometheus_directive>("prometheus", kHttpLocConf | kNoArgs),
    directive<status_zone_directive>("status_zone", kHttpSrvConf | kTake1),
};
static_assert(directives_of(kDirectives, &http_prometheus_module));

}  // namespace

Module http_prometheus_module{
    .name = "http_prometheus",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
    .create_srv_conf = create_conf<create_srv_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
