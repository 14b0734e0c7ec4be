// `api;`: NGINX Plus's API, read-only, at its paths and in its JSON shape for what weir counts, so
// that tools written for it work (Debian's prometheus-nginx-exporter in its Plus mode among them):
// `/api/` lists the versions (1 to 9, all answered alike), `/api/N/` the endpoints, and
// `nginx`, `connections`, `http/requests`, `http/server_zones[/name]`, `http/upstreams[/name]` the
// counts. The endpoints of what weir does not keep (caches, slabs, ssl, resolvers, limit zones,
// location zones, stream, processes, workers) answer an empty object, as NGINX Plus answers for a
// configuration without any. A path it does not know is 404 and a method other than GET or HEAD
// 405, with Plus's JSON error. nginx: NGINX Plus's ngx_http_api_module (documentation only).
#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/str.h"
#include "core/time_cache.h"
#include "http/request_body.h"
#include "http/variables.h"
#include "modules/metrics/metrics.h"

namespace weir::http::metrics {

namespace {

constexpr int kNewestVersion = 9;

// A JSON string: quotes, backslashes and control characters escaped.
void put_string(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

void put_number(std::string& out, uint64_t n) {
  char num[24];
  out.append(num, put_uint(num, n));
}

// "key": as the next member of an object (a comma before all but the first).
void key(std::string& out, std::string_view k) {
  if (out.back() != '{' && out.back() != '[') out += ',';
  put_string(out, k);
  out += ':';
}

void member(std::string& out, std::string_view k, uint64_t n) {
  key(out, k);
  put_number(out, n);
}

void responses(std::string& out, const uint64_t (&by_class)[5], uint64_t other) {
  key(out, "responses");
  out += '{';
  uint64_t total = other;
  for (size_t c = 0; c < 5; c++) {
    member(out, kClass[c], by_class[c]);
    total += by_class[c];
  }
  member(out, "total", total);
  out += '}';
}

void server_zone(std::string& out, const MetricsMainConf& mcf, size_t i) {
  ZoneCounts z = sum_slots(mcf.counts->zones, mcf.zones.size(), i);
  out += '{';
  uint64_t requests = z.other;
  for (uint64_t n : z.by_class) requests += n;
  member(out, "requests", requests);
  responses(out, z.by_class, z.other);
  member(out, "received", z.received);
  member(out, "sent", z.sent);
  out += '}';
}

// One group's peers (those of mcf.peers from first on with this group), as Plus lists them.
void upstream(std::string& out, const MetricsMainConf& mcf, const UpstreamGroup* g) {
  out += "{\"peers\":[";
  uint64_t now = clock::msec();
  uint64_t idle = 0;
  uint64_t id = 0;
  for (size_t i = 0; i < mcf.peers.size(); i++) {
    const PeerRef& ref = mcf.peers[i];
    if (ref.group != g) continue;
    bool backup = false;
    std::optional<RoundRobinPeer> now_peer = current_peer(ref, backup);
    if (!now_peer) continue;
    const RoundRobinPeer& p = *now_peer;
    PeerCounts c = sum_slots(mcf.counts->peers, mcf.peers.size(), i);
    if (out.back() != '[') out += ',';
    out += '{';
    member(out, "id", id++);
    key(out, "server");
    put_string(out, p.name);
    key(out, "name");  // a resolved peer's: its server's name as written
    put_string(out, ref.peer == nullptr ? std::string_view(*p.server) : std::string_view(p.name));
    key(out, "backup");
    out += backup ? "true" : "false";
    member(out, "weight", static_cast<uint64_t>(p.weight));
    key(out, "state");
    std::string_view state = peer_state(p, now);
    put_string(out, state == "unavailable" ? "unavail" : state);
    member(out, "active", static_cast<uint64_t>(p.st->conns > 0 ? p.st->conns : 0));
    if (int n = read_int(p.st->idle); n > 0) idle += static_cast<uint64_t>(n);
    if (p.max_conns != 0) member(out, "max_conns", static_cast<uint64_t>(p.max_conns));
    uint64_t answered = 0;
    for (uint64_t n : c.by_class) answered += n;
    member(out, "requests", answered + c.failures);
    responses(out, c.by_class, 0);
    member(out, "sent", c.sent);
    member(out, "received", c.received);
    member(out, "fails", c.failures);
    key(out, "health_checks");
    out += '{';
    member(out, "checks", p.st->checks);
    member(out, "fails", p.st->checks_failed);
    member(out, "unhealthy", p.st->became_unhealthy);
    if (p.st->checks != 0) {
      key(out, "last_passed");
      out += p.st->last_check_passed ? "true" : "false";
    }
    out += '}';
    // Plus's times are averages in milliseconds.
    uint64_t headers = 0, bodies = 0;
    for (uint64_t n : c.header.buckets) headers += n;
    for (uint64_t n : c.response.buckets) bodies += n;
    if (headers != 0) member(out, "header_time", c.header.sum_ms / headers);
    if (bodies != 0) member(out, "response_time", c.response.sum_ms / bodies);
    out += '}';
  }
  out += ']';
  member(out, "keepalive", idle);  // Plus's: the group's idle keep-alive connections
  if (g->zone != nullptr) {
    key(out, "zone");
    put_string(out, g->zone->name);
  }
  out += '}';
}

// The groups in the order their peers were listed, each once.
template <class F>
void each_group(const MetricsMainConf& mcf, F&& f) {
  const UpstreamGroup* last = nullptr;
  for (const PeerRef& ref : mcf.peers) {
    if (ref.group == last) continue;
    last = ref.group;
    f(ref.upstream, ref.group);
  }
}

enum class Answer : uint8_t { Ok, NotFound };

std::string_view variable(Request& r, std::string_view name) {
  const VariableValue* v = get_variable(r, name);
  return v != nullptr && v->valid ? v->view() : std::string_view();
}

// The JSON of path (what follows the version), into out.
Answer endpoint(Request& r, const MetricsMainConf& mcf, std::string_view path, std::string& out) {
  if (path.empty()) {
    out =
        "[\"nginx\",\"processes\",\"connections\",\"slabs\",\"http\",\"stream\",\"resolvers\","
        "\"ssl\",\"workers\"]";
    return Answer::Ok;
  }
  if (path == "http") {
    out =
        "[\"requests\",\"server_zones\",\"location_zones\",\"upstreams\",\"caches\","
        "\"limit_reqs\",\"limit_conns\"]";
    return Answer::Ok;
  }
  if (path == "stream") {
    out = "[\"server_zones\",\"upstreams\",\"keyvals\",\"zone_sync\",\"limit_conns\"]";
    return Answer::Ok;
  }
  ConnectionCounts c = connection_counts();
  out.clear();
  out += '{';
  if (path == "nginx") {
    key(out, "version");
    put_string(out, WEIR_VERSION);
    key(out, "build");
    put_string(out, "weir");
    key(out, "address");
    put_string(out, variable(r, "server_addr"));
    key(out, "timestamp");
    put_string(out, clock::iso8601());
    member(out, "pid", static_cast<uint64_t>(::getpid()));
    member(out, "ppid", static_cast<uint64_t>(::getppid()));
  } else if (path == "connections") {
    member(out, "accepted", c.accepted);
    member(out, "dropped", c.accepted > c.handled ? c.accepted - c.handled : 0);
    member(out, "active", c.active - c.waiting);
    member(out, "idle", c.waiting);
  } else if (path == "http/requests") {
    member(out, "total", c.requests);
    member(out, "current", c.reading + c.writing);
  } else if (path == "http/server_zones" || path.starts_with("http/server_zones/")) {
    std::string_view name = path.substr(std::string_view("http/server_zones").size());
    for (size_t i = 0; i < mcf.zones.size(); i++) {
      if (name.empty()) {
        key(out, mcf.zones[i]);
        server_zone(out, mcf, i);
      } else if (name.substr(1) == mcf.zones[i]) {
        out.clear();
        server_zone(out, mcf, i);
        return Answer::Ok;
      }
    }
    if (!name.empty()) return Answer::NotFound;
  } else if (path == "http/upstreams" || path.starts_with("http/upstreams/")) {
    std::string_view name = path.substr(std::string_view("http/upstreams").size());
    bool found = false;
    each_group(mcf, [&](const std::string& group, const UpstreamGroup* g) {
      if (name.empty()) {
        key(out, group);
        upstream(out, mcf, g);
      } else if (!found && name.substr(1) == group) {
        out.clear();
        upstream(out, mcf, g);
        found = true;
      }
    });
    if (!name.empty() && !found) return Answer::NotFound;
    if (found) return Answer::Ok;
  } else if (path != "processes" && path != "slabs" && path != "ssl" && path != "resolvers" &&
             path != "workers" && path != "http/caches" && path != "http/location_zones" &&
             path != "http/limit_reqs" && path != "http/limit_conns" &&
             !path.starts_with("stream/")) {
    return Answer::NotFound;
  }
  out += '}';
  return Answer::Ok;
}

Code error(Request& r, int status, std::string_view text, std::string_view code) {
  std::string out = "{\"error\":{";
  member(out, "status", static_cast<uint64_t>(status));
  key(out, "text");
  put_string(out, text);
  key(out, "code");
  put_string(out, code);
  out += "},";
  out += "\"request_id\":";
  put_string(out, variable(r, "request_id"));
  out += ",\"href\":\"https://nginx.org/en/docs/http/ngx_http_api_module.html\"}";
  return send_response(r, status, r.pool->dup(out), "application/json");
}

}  // namespace

Code api_handler(Request& r) {
  if (!(r.method & (kGet | kHead))) return error(r, 405, "method not allowed", "MethodNotAllowed");
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  // The path below the location: "/api/8/http/upstreams" in `location /api/` is "8/http/upstreams".
  std::string_view path = r.uri;
  std::string_view at = core_loc(r).name;
  if (path.starts_with(at)) path.remove_prefix(at.size());
  while (path.starts_with('/')) path.remove_prefix(1);
  while (path.ends_with('/')) path.remove_suffix(1);
  std::string out;
  if (path.empty()) {
    out = "[";
    for (int v = 1; v <= kNewestVersion; v++) {
      if (v > 1) out += ',';
      put_number(out, static_cast<uint64_t>(v));
    }
    out += ']';
    return send_response(r, 200, r.pool->dup(out), "application/json");
  }
  size_t slash = path.find('/');
  std::optional<int64_t> version = parse_int(path.substr(0, slash));
  if (!version || *version < 1 || *version > kNewestVersion) {
    return error(r, 404, "unknown version", "UnknownVersion");
  }
  path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  switch (endpoint(r, r.main_cf<MetricsMainConf>(), path, out)) {
    case Answer::Ok:
      return send_response(r, 200, r.pool->dup(out), "application/json");
    case Answer::NotFound:
      break;
  }
  return error(r, 404, "path not found", "PathNotFound");
}

}  // namespace weir::http::metrics
