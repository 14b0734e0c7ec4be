// `prometheus;`: the counts in Prometheus's text exposition format (0.0.4), or in OpenMetrics 1.0
// when the scraper's Accept asks for it (Prometheus does).
#include <cstring>
#include <string>
#include <vector>

#include "core/str.h"
#include "core/time_cache.h"
#include "http/request_body.h"
#include "modules/metrics/metrics.h"

namespace weir::http::metrics {

namespace {

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
  ConnectionCounts c = connection_counts();
  x.family("weir_connections_accepted_total", "counter", "Client connections accepted.");
  x.sample("weir_connections_accepted_total", {}, c.accepted);
  x.family("weir_connections_handled_total", "counter",
           "Client connections handled (accepted and not dropped for a limit).");
  x.sample("weir_connections_handled_total", {}, c.handled);
  x.family("weir_connections_active", "gauge", "Client connections open now.");
  x.sample("weir_connections_active", {}, c.active);
  x.family("weir_connections_reading", "gauge", "Connections reading a request's header.");
  x.sample("weir_connections_reading", {}, c.reading);
  x.family("weir_connections_writing", "gauge", "Connections serving a request.");
  x.sample("weir_connections_writing", {}, c.writing);
  x.family("weir_connections_waiting", "gauge", "Idle keep-alive connections.");
  x.sample("weir_connections_waiting", {}, c.waiting);
  x.family("weir_http_requests_served_total", "counter",
           "Requests read, as stub_status counts them (all servers).");
  x.sample("weir_http_requests_served_total", {}, c.requests);
  x.family("weir_resolver_queries_total", "counter",
           "Names the resolver looked up (proxy_pass with variables), cached answers aside.");
  x.sample("weir_resolver_queries_total", {}, stub_stat(StubStat::ResolverQueries));
  x.family("weir_resolver_errors_total", "counter",
           "Lookups that failed: not found, refused, timed out.");
  x.sample("weir_resolver_errors_total", {}, stub_stat(StubStat::ResolverErrors));
}

// A family with one sample per zone or peer: the labels of each and the value of each.
template <class Value>
void each_sample(Exposition& x, std::string_view name, std::string_view type, std::string_view help,
                 const std::vector<std::string>& labels, Value value) {
  x.family(name, type, help);
  for (size_t i = 0; i < labels.size(); i++) x.sample(name, labels[i], value(i));
}

// A family of histograms, one per zone or peer.
template <class Hist>
void each_histogram(Exposition& x, std::string_view name, std::string_view help,
                    const std::vector<std::string>& labels, Hist hist) {
  x.family(name, "histogram", help);
  for (size_t i = 0; i < labels.size(); i++) histogram(x, name, labels[i], hist(i));
}

// The samples of one zone's or peer's counts by status class.
void by_class(Exposition& x, std::string_view name, const std::string& labels,
              const uint64_t (&counts)[5]) {
  for (size_t c = 0; c < 5; c++) {
    x.sample(name, labels + ",code=\"" + kClass[c] + "\"", counts[c]);
  }
}

void server_metrics(Exposition& x, const MetricsMainConf& mcf) {
  std::vector<ZoneCounts> sums;
  std::vector<std::string> servers;
  for (size_t i = 0; i < mcf.zones.size(); i++) {
    sums.push_back(sum_slots(mcf.counts->zones, mcf.zones.size(), i));
    servers.push_back("server=\"" + label(mcf.zones[i]) + "\"");
  }
  x.family("weir_http_requests_total", "counter",
           "Requests answered, by server zone and status class.");
  for (size_t i = 0; i < sums.size(); i++) {
    by_class(x, "weir_http_requests_total", servers[i], sums[i].by_class);
    x.sample("weir_http_requests_total", servers[i] + ",code=\"other\"", sums[i].other);
  }
  each_sample(x, "weir_http_received_bytes_total", "counter",
              "Bytes of requests received (line, header and body), by server zone.", servers,
              [&](size_t i) { return sums[i].received; });
  each_sample(x, "weir_http_sent_bytes_total", "counter",
              "Bytes of responses sent (header and body), by server zone.", servers,
              [&](size_t i) { return sums[i].sent; });
  each_histogram(x, "weir_http_request_duration_seconds",
                 "Time from a request's first byte to its last byte sent, by server zone.", servers,
                 [&](size_t i) -> const Histogram& { return sums[i].time; });
}

void upstream_metrics(Exposition& x, const MetricsMainConf& mcf) {
  if (mcf.peers.empty()) return;
  std::vector<PeerCounts> sums;
  std::vector<std::string> peers;
  std::vector<RoundRobinPeer> now_peers;  // those with an address now
  for (size_t i = 0; i < mcf.peers.size(); i++) {
    bool backup = false;
    std::optional<RoundRobinPeer> p = current_peer(mcf.peers[i], backup);
    if (!p) continue;
    sums.push_back(sum_slots(mcf.counts->peers, mcf.peers.size(), i));
    peers.push_back("upstream=\"" + label(mcf.peers[i].upstream) + "\",peer=\"" + label(p->name) +
                    "\"");
    now_peers.push_back(std::move(*p));
  }
  x.family("weir_upstream_responses_total", "counter",
           "Response headers from an upstream peer (a try each), by status class.");
  for (size_t i = 0; i < sums.size(); i++) {
    by_class(x, "weir_upstream_responses_total", peers[i], sums[i].by_class);
  }
  each_sample(x, "weir_upstream_failures_total", "counter",
              "Tries of an upstream peer that got no response header (refused, reset, timed out).",
              peers, [&](size_t i) { return sums[i].failures; });
  each_sample(x, "weir_upstream_received_bytes_total", "counter", "Bytes received from a peer.",
              peers, [&](size_t i) { return sums[i].received; });
  each_sample(x, "weir_upstream_sent_bytes_total", "counter", "Bytes sent to a peer.", peers,
              [&](size_t i) { return sums[i].sent; });
  struct Times {
    const char* name;
    const char* help;
    Histogram PeerCounts::*of;
  };
  const Times times[] = {
      {"weir_upstream_connect_duration_seconds",
       "Time to connect to a peer (and for TLS, to shake hands).", &PeerCounts::connect},
      {"weir_upstream_header_duration_seconds",
       "Time from a try's start to the peer's response header.", &PeerCounts::header},
      {"weir_upstream_response_duration_seconds",
       "Time from a try's start to the peer's last byte.", &PeerCounts::response}};
  for (const Times& t : times) {
    each_histogram(x, t.name, t.help, peers,
                   [&](size_t i) -> const Histogram& { return sums[i].*t.of; });
  }
  x.family("weir_upstream_peer_state", "gauge",
           "1 for a peer's state now (up, down, unhealthy, unavailable), as the balancer of the "
           "answering worker sees it (every worker's, with a zone).");
  uint64_t now = clock::msec();
  for (size_t i = 0; i < sums.size(); i++) {
    const char* state = peer_state(now_peers[i], now);
    for (const char* s : {"up", "down", "unhealthy", "unavailable"}) {
      x.sample("weir_upstream_peer_state", peers[i] + ",state=\"" + s + "\"",
               std::strcmp(s, state) == 0 ? 1 : 0);
    }
  }
  each_sample(x, "weir_upstream_peer_connections", "gauge",
              "Connections to a peer in use now (every worker's with a zone, else the answering "
              "worker's).",
              peers, [&](size_t i) -> uint64_t {
                int conns = now_peers[i].st->conns;
                return conns > 0 ? static_cast<uint64_t>(conns) : 0;
              });
  each_sample(x, "weir_upstream_peer_idle_connections", "gauge",
              "Keep-alive connections to a peer cached for reuse now (every worker's with a zone, "
              "else the answering worker's).",
              peers, [&](size_t i) -> uint64_t {
                int idle = read_int(now_peers[i].st->idle);
                return idle > 0 ? static_cast<uint64_t>(idle) : 0;
              });
  x.family("weir_upstream_health_checks_total", "counter",
           "Active health checks of a peer (health_check), by result.");
  for (size_t i = 0; i < sums.size(); i++) {
    const PeerState& st = *now_peers[i].st;
    uint64_t failed = st.checks_failed;
    x.sample("weir_upstream_health_checks_total", peers[i] + ",result=\"passed\"",
             st.checks - failed);
    x.sample("weir_upstream_health_checks_total", peers[i] + ",result=\"failed\"", failed);
  }
}

std::string exposition(const MetricsMainConf& mcf, bool openmetrics) {
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

}  // namespace

Code prometheus_handler(Request& r) {
  if (!(r.method & (kGet | kHead))) return Code::status(405);
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  const auto& mcf = r.main_cf<MetricsMainConf>();
  bool openmetrics = wants_openmetrics(r);
  std::string text = exposition(mcf, openmetrics);
  return send_response(r, 200, r.pool->dup(text),
                       openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                   : "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace weir::http::metrics
