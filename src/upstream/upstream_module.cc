// The upstream module: `upstream name { server ...; keepalive ...; }` blocks, the implicit groups
// proxy_pass "host:port" makes (resolved once the configuration is read, every address a name has),
// the balancer and keepalive set-up of each group, and the $upstream_* variables in nginx's list
// format (", " between tries). nginx: src/http/ngx_http_upstream.c (ngx_http_upstream_module)
#include "upstream/upstream_module.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "conf/cycle.h"
#include "conf/setting.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"
#include "upstream/health_check.h"
#include "upstream/resolved_peers.h"
#include "upstream/upstream.h"
#include "upstream/upstream_cache.h"

namespace weir::http {

namespace {

struct UpstreamMainConf {
  static constexpr Module* kModule = &http_upstream_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  std::vector<UpstreamGroup*> groups;
  std::vector<HealthCheck*> health_checks;  // health_check in the locations that proxy
  HealthMatches matches;                    // match blocks
};

UpstreamMainConf& upstream_main(ConfContext& cf) {
  return conf_of<UpstreamMainConf>(cf.http->main_conf);
}

Result<UpstreamServer> parse_server(ConfContext& cf, const ConfNode& n) {
  if (n.nargs() < 1) return cf.error_at(n, "invalid number of arguments in \"server\" directive");
  UpstreamServer s;
  s.name = n.args[1];
  // resolve: a name is looked up at run time (an address, or a unix socket, is taken as it is).
  bool resolve = std::find(n.args.begin() + 2, n.args.end(), "resolve") != n.args.end();
  bool has_port = false;
  auto service_error = [&](const char* what) {
    return cf.error_at(n, strprintf("service upstream \"%s\" %s", s.name.c_str(), what));
  };
  bool service = std::any_of(n.args.begin() + 2, n.args.end(),
                             [](const std::string& a) { return a.starts_with("service="); });
  if (service && !resolve) return service_error("requires \"resolve\" parameter");
  SockAddr literal;
  if (resolve && !s.name.starts_with("unix:") && !parse_addr_port(s.name, literal)) {
    s.resolve = true;
    std::string_view host = s.name;
    if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
      std::optional<int64_t> port = parse_int(host.substr(colon + 1));
      if (!port || *port < 1 || *port > 65535) {
        return cf.error_at(n, strprintf("invalid port in upstream \"%s\"", s.name.c_str()));
      }
      s.resolve_port = static_cast<uint16_t>(*port);
      host = host.substr(0, colon);
    }
    if (host.empty()) {
      return cf.error_at(n, strprintf("no host in upstream \"%s\"", s.name.c_str()));
    }
    s.resolve_host = host;
    has_port = host.size() != s.name.size();
  } else {
    has_port = resolve && !s.name.starts_with("unix:") && literal.port() != 0;
    Result<std::vector<SockAddr>> addrs = parse_addresses(n.args[1], 80, false);
    if (!addrs.ok()) {
      return cf.error_at(n, strprintf("%s in upstream \"%s\"", addrs.status().message().c_str(),
                                      n.args[1].c_str()));
    }
    s.addrs = std::move(*addrs);
  }
  for (size_t i = 2; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    auto value = [&](std::string_view key) -> std::optional<std::string_view> {
      if (a.size() > key.size() && a.substr(0, key.size()) == key) return a.substr(key.size());
      return std::nullopt;
    };
    auto invalid = [&] {
      return cf.error_at(n, strprintf("invalid parameter \"%s\"", n.args[i].c_str()));
    };
    if (auto v = value("weight=")) {
      auto w = parse_int(*v);
      if (!w || *w <= 0) return invalid();
      s.weight = static_cast<int>(*w);
    } else if (auto v = value("max_fails=")) {
      auto m = parse_int(*v);
      if (!m || *m < 0) return invalid();
      s.max_fails = static_cast<int>(*m);
    } else if (auto v = value("fail_timeout=")) {
      auto t = parse_time(*v, false);
      if (!t || *t < 0) return invalid();
      s.fail_timeout_ms = static_cast<uint64_t>(*t);
    } else if (auto v = value("max_conns=")) {
      auto m = parse_int(*v);
      if (!m || *m < 0) return invalid();
      s.max_conns = static_cast<int>(*m);
    } else if (auto v = value("slow_start=")) {
      auto t = parse_time(*v, false);
      if (!t || *t < 0) return invalid();
      s.slow_start_ms = static_cast<uint64_t>(*t);
    } else if (a == "resolve") {
      // taken above
    } else if (auto v = value("service=")) {
      s.resolve_service = *v;
    } else if (a == "service=") {
      return cf.error_at(n, "service is empty");
    } else if (a == "backup") {
      s.backup = true;
    } else if (a == "down") {
      s.down = true;
    } else {
      return invalid();
    }
  }
  if (!s.resolve_service.empty()) {
    // nginx's checks, and the SRV name: "_http._tcp.host" for service=http, "a.b.host" for a.b.
    if (has_port) return service_error("may not have port");
    if (!s.resolve) return service_error("requires domain name");
    s.resolve_srv = s.resolve_service.find('.') == std::string::npos
                        ? "_" + s.resolve_service + "._tcp." + s.resolve_host
                        : s.resolve_service + "." + s.resolve_host;
  }
  return s;
}

// A count (only `keepalive`'s must be positive) or a time, as nginx's num and msec slots take them.
Status keepalive_number(ConfContext& cf, const ConfNode& n, int64_t& out, bool time,
                        bool positive = false) {
  if (n.nargs() != 1) {
    return cf.error_at(
        n, strprintf("invalid number of arguments in \"%s\" directive", n.name().c_str()));
  }
  auto v = time ? parse_time(n.args[1], false) : parse_int(n.args[1]);
  if (positive && (!v || *v <= 0)) {
    return cf.error_at(n, strprintf("invalid value \"%s\" in \"%s\" directive", n.args[1].c_str(),
                                    n.name().c_str()));
  }
  if (!v || *v < 0) {
    return cf.error_at(
        n, strprintf("\"%s\" directive invalid %s", n.name().c_str(), time ? "value" : "number"));
  }
  out = *v;
  return {};
}

UpstreamGroup* find_group(UpstreamMainConf& umcf, std::string_view host, uint16_t port) {
  for (UpstreamGroup* g : umcf.groups) {
    if (iequals(g->host, host) && g->port == port) return g;
  }
  return nullptr;
}

// The zone's groups get their peers' state in it, once the master has mapped it (each
// configuration starts with fresh counters, as nginx's upstream zones do; the addresses its names
// resolved to carry over from the old configuration's group of the same name).
Status init_zone(SharedZone& z, void* old_data) {
  auto& umcf = *static_cast<UpstreamMainConf*>(z.data);
  for (UpstreamGroup* g : umcf.groups) {
    if (g->zone != &z) continue;
    if (Status s = share_peer_state(*g, z.slab); !s.ok()) return s;
    const UpstreamGroup* old = nullptr;
    if (old_data != nullptr) {
      old = find_group(*static_cast<UpstreamMainConf*>(old_data), g->host, g->port);
    }
    if (old != nullptr) keep_health(*g, *old);
    if (g->resolved != nullptr) {
      if (Status s = share_resolved_peers(*g, *z.slab, old); !s.ok()) return s;
    }
  }
  return {};
}

// zone name [size]: the group's peer state shared by the workers.
Status zone_directive(ConfContext& cf, const ConfNode& n, UpstreamGroup& g) {
  if (n.nargs() < 1 || n.nargs() > 2) {
    return cf.error_at(n, "invalid number of arguments in \"zone\" directive");
  }
  if (g.zone != nullptr) return cf.error_at(n, "\"zone\" directive is duplicate");
  size_t size = 0;
  if (n.nargs() == 2) {
    auto v = parse_size(n.args[2]);
    if (!v) return cf.error_at(n, strprintf("invalid zone size \"%s\"", n.args[2].c_str()));
    if (*v < static_cast<int64_t>(8 * SlabPool::kPageSize)) {
      return cf.error_at(n, strprintf("zone \"%s\" is too small", n.args[1].c_str()));
    }
    size = static_cast<size_t>(*v);
  }
  Result<SharedZone*> z = cf.cycle.add_zone(n.args[1], size, &http_upstream_module);
  if (!z.ok()) return cf.error_at(n, z.status().message());
  (*z)->noreuse = true;
  (*z)->init = init_zone;
  (*z)->data = &upstream_main(cf);
  g.zone = *z;
  return {};
}

// ip_hash, hash key [consistent], least_conn, random [two [least_conn]].
Status balancer_directive(ConfContext& cf, const ConfNode& n, UpstreamGroup& g, bool& set) {
  const std::string& d = n.name();
  size_t max_args = d == "hash" ? 2 : d == "random" ? 2 : 0;
  if (n.nargs() > max_args || (d == "hash" && n.nargs() == 0)) {
    return cf.error_at(n, strprintf("invalid number of arguments in \"%s\" directive", d.c_str()));
  }
  auto invalid = [&](size_t i) {
    return cf.error_at(n, strprintf("invalid parameter \"%s\"", n.args[i].c_str()));
  };
  if (set) cf.warn(LogLevel::Warn, "load balancing method redefined");
  set = true;
  if (d == "ip_hash") {
    g.balancer = Balancer::IpHash;
  } else if (d == "least_conn") {
    g.balancer = Balancer::LeastConn;
  } else if (d == "hash") {
    auto* key = cf.pool.make<ComplexValue>();
    if (Status s = key->compile(cf, n.args[1]); !s.ok()) return s;
    g.hash_key = key;
    g.balancer = Balancer::Hash;
    if (n.nargs() == 2) {
      if (n.args[2] != "consistent") return invalid(2);
      g.balancer = Balancer::ConsistentHash;
    }
  } else {
    g.balancer = Balancer::Random;
    if (n.nargs() >= 1) {
      if (n.args[1] != "two") return invalid(1);
      g.balancer = Balancer::RandomTwo;
    }
    if (n.nargs() == 2 && n.args[2] != "least_conn") return invalid(2);
  }
  for (const UpstreamServer& s : g.servers) {
    if (s.backup && g.balancer != Balancer::LeastConn) {
      return cf.error_at(n, "balancing method does not support parameter \"backup\"");
    }
  }
  return {};
}

Status upstream_block(ConfContext& cf, const ConfNode& n, UpstreamMainConf& umcf) {
  const std::string& name = n.args[1];
  UpstreamGroup* g = find_group(umcf, name, 0);
  if (g != nullptr && g->defined) {
    return cf.errorf("duplicate upstream \"%s\"", name.c_str());
  }
  if (g == nullptr) {
    g = cf.pool.make<UpstreamGroup>();
    g->host = name;
    umcf.groups.push_back(g);
  }
  g->defined = true;
  g->file = n.file;
  g->line = n.line;
  KeepaliveConf ka;
  bool keepalive = false;
  bool balancer_set = false;
  for (const ConfNode& child : n.children) {
    const std::string& d = child.name();
    cf.node = &child;
    if (child.block) {
      return cf.error_at(child, strprintf("\"%s\" directive is not allowed here", d.c_str()));
    }
    if (d == "server") {
      Result<UpstreamServer> s = parse_server(cf, child);
      if (!s.ok()) return s.status();
      g->servers.push_back(std::move(*s));
    } else if (d == "keepalive") {
      if (keepalive) return cf.error_at(child, "\"keepalive\" directive is duplicate");
      int64_t v;
      if (Status s = keepalive_number(cf, child, v, false, true); !s.ok()) return s;
      ka.max_cached = static_cast<int>(v);
      keepalive = true;
    } else if (d == "keepalive_requests" || d == "keepalive_time" || d == "keepalive_timeout" ||
               d == "keepalive_surplus_timeout") {
      int64_t v;
      if (Status s = keepalive_number(cf, child, v, d != "keepalive_requests"); !s.ok()) return s;
      if (d == "keepalive_requests") ka.requests = static_cast<uint64_t>(v);
      if (d == "keepalive_time") ka.time_ms = static_cast<uint64_t>(v);
      if (d == "keepalive_timeout") ka.timeout_ms = static_cast<uint64_t>(v);
      if (d == "keepalive_surplus_timeout") ka.surplus_ms = static_cast<uint64_t>(v);
    } else if (d == "ip_hash" || d == "hash" || d == "least_conn" || d == "random") {
      if (Status s = balancer_directive(cf, child, *g, balancer_set); !s.ok()) return s;
    } else if (d == "zone") {
      if (Status s = zone_directive(cf, child, *g); !s.ok()) return s;
    } else if (d == "resolver") {
      if (Status s = parse_resolver(cf, child, g->resolver); !s.ok()) {
        if (s.is_located()) return s;
        return cf.error_at(child, strprintf("\"resolver\" directive %s", s.message().c_str()));
      }
    } else if (d == "resolver_timeout") {
      int64_t v;
      if (Status s = keepalive_number(cf, child, v, true); !s.ok()) return s;
      g->resolver_timeout_ms = static_cast<uint64_t>(v);
    } else if (d == "sticky" || d == "ntlm" || d == "state" || d == "queue") {
      // nginx has these; weir does not yet, and must not pretend to.
      return cf.error_at(child,
                         strprintf("\"%s\" directive is not supported by weir yet", d.c_str()));
    } else {
      return cf.error_at(child, strprintf("unknown directive \"%s\"", d.c_str()));
    }
  }
  cf.node = &n;
  if (g->balancer != Balancer::RoundRobin && g->balancer != Balancer::LeastConn) {
    // nginx rejects backup only when the method comes first; a backup after it would be ignored
    // silently, so weir rejects it wherever it is.
    for (const UpstreamServer& s : g->servers) {
      if (s.backup) return cf.error("balancing method does not support parameter \"backup\"");
      if (s.slow_start_ms != 0) {
        return cf.error("balancing method does not support parameter \"slow_start\"");
      }
    }
  }
  if (g->servers.empty()) return cf.error("no servers are inside upstream");
  if (keepalive) g->keepalive = make_keepalive_cache(cf.pool, ka);
  return {};
}

UpstreamMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<UpstreamMainConf>();
}

// Implicit groups resolve their host now; every group gets its balancer (and keepalive cache).
Status init_main_conf(ConfContext& cf, UpstreamMainConf& umcf) {
  for (UpstreamGroup* g : umcf.groups) {
    if (!g->defined) {
      // fastcgi_pass names a group or an address with its port (no default port, as nginx).
      if (g->port == 0 && g->default_port == 0 && g->host.rfind("unix:", 0) != 0) {
        return Status::located(conf_error_at(
            g->file, g->line, strprintf("no port in upstream \"%s\"", g->host.c_str())));
      }
      std::string text = g->host;
      if (g->host.rfind("unix:", 0) != 0) {
        text += ':';
        text += std::to_string(g->port != 0 ? g->port : g->default_port);
      }
      Result<std::vector<SockAddr>> addrs = parse_addresses(text, 80, false);
      if (!addrs.ok()) {
        return Status::located(conf_error_at(
            g->file, g->line, strprintf("host not found in upstream \"%s\"", g->host.c_str())));
      }
      UpstreamServer s;
      s.name = g->host;
      s.addrs = std::move(*addrs);
      g->servers.push_back(std::move(s));
    }
    if (Status s = init_round_robin(*g, cf.pool); !s.ok()) return s;
    const auto& clcf = conf_of<CoreLocConf>(cf.http->loc_conf);
    if (Status s = init_resolved_peers(*g, cf.pool, clcf.resolver,
                                       clcf.resolver_timeout.set ? *clcf.resolver_timeout : 30000);
        !s.ok()) {
      return s;
    }
    switch (g->balancer) {
      case Balancer::RoundRobin:
        g->init_peer = init_round_robin_peer;
        break;
      case Balancer::IpHash:
        g->init_peer = init_ip_hash_peer;
        break;
      case Balancer::Hash:
        g->init_peer = init_hash_peer;
        break;
      case Balancer::ConsistentHash:
        if (Status s = init_hash_ring(*g, cf.pool); !s.ok()) return s;
        g->init_peer = init_chash_peer;
        break;
      case Balancer::LeastConn:
        g->init_peer = init_least_conn_peer;
        break;
      case Balancer::Random:
      case Balancer::RandomTwo:
        g->init_peer = init_random_peer;
        break;
    }
    if (g->keepalive != nullptr) set_keepalive_balancer(*g->keepalive, *g);
  }
  return {};
}

// The variables: one value per try, ", " between them.
// put writes one try's value at p and returns its end; size bounds what it writes (a number by
// default).
template <class Put, class Size>
void state_list(Request& r, VariableValue& v, Put put, Size size) {
  Upstream* u = r.upstream;
  if (u == nullptr || u->states == nullptr) {
    v.set_not_found();
    return;
  }
  size_t len = 0;
  for (UpstreamState* s = u->states; s != nullptr; s = s->next) len += size(*s) + 2;
  char* buf = r.pool->alloc_bytes(len);
  char* p = buf;
  for (UpstreamState* s = u->states; s != nullptr; s = s->next) {
    if (p != buf) {
      *p++ = ',';
      *p++ = ' ';
    }
    p = put(*s, p);
  }
  v.set({buf, static_cast<size_t>(p - buf)});
}

template <class Put>
void state_list(Request& r, VariableValue& v, Put put) {
  state_list(r, v, put, [](const UpstreamState&) { return size_t{24}; });
}

char* put_msec_as_sec(char* p, int64_t ms) {
  if (ms < 0) {
    *p++ = '-';
    return p;
  }
  p = put_uint(p, static_cast<uint64_t>(ms / 1000));
  *p++ = '.';
  *p++ = static_cast<char>('0' + ms % 1000 / 100);
  *p++ = static_cast<char>('0' + ms % 100 / 10);
  *p++ = static_cast<char>('0' + ms % 10);
  return p;
}

void var_addr(Request& r, VariableValue& v, uintptr_t) {
  state_list(
      r, v,
      [](const UpstreamState& s, char* p) {
        std::memcpy(p, s.peer.data(), s.peer.size());
        return p + s.peer.size();
      },
      [](const UpstreamState& s) { return s.peer.size(); });
}

void var_status(Request& r, VariableValue& v, uintptr_t) {
  state_list(r, v, [](const UpstreamState& s, char* p) {
    if (s.status == 0) {
      *p++ = '-';
      return p;
    }
    return put_uint(p, static_cast<uint64_t>(s.status));
  });
}

template <int64_t UpstreamState::*Field>
void var_time(Request& r, VariableValue& v, uintptr_t) {
  state_list(r, v, [](const UpstreamState& s, char* p) {
    int64_t t = s.*Field;
    // A try still running has no response time yet: how long it has taken so far.
    if (Field == &UpstreamState::response_time && t < 0)
      t = static_cast<int64_t>(clock::msec() - s.start_msec);
    return put_msec_as_sec(p, t);
  });
}

template <off_t UpstreamState::*Field>
void var_length(Request& r, VariableValue& v, uintptr_t) {
  state_list(r, v, [](const UpstreamState& s, char* p) {
    return put_uint(p, static_cast<uint64_t>(s.*Field));
  });
}

void var_upstream_http(Request& r, VariableValue& v, uintptr_t data) {
  auto* name = reinterpret_cast<const std::string*>(data);
  if (r.upstream == nullptr) {
    v.set_not_found();
    return;
  }
  unknown_header_variable(r, v, std::string_view(*name).substr(14), r.upstream->headers_in.headers);
}

// $upstream_cookie_NAME: the value NAME has in the upstream's Set-Cookie headers (the first that
// sets it; names compared case-blind, as nginx).
void var_upstream_cookie(Request& r, VariableValue& v, uintptr_t data) {
  auto* var = reinterpret_cast<const std::string*>(data);
  std::string_view want = std::string_view(*var).substr(16);
  if (r.upstream != nullptr) {
    for (Header* h : r.upstream->headers_in.headers) {
      if (h->lowcase_key != "set-cookie") continue;
      std::string_view c = h->value.substr(0, h->value.find(';'));
      size_t eq = c.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view name = trim_ows(c.substr(0, eq));
      if (!iequals(name, want)) continue;
      std::string_view value = c.substr(eq + 1);  // as nginx: leading blanks go, trailing stay
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      v.set(value);
      return;
    }
  }
  v.set_not_found();
}

// $upstream_cache_status: MISS, BYPASS, EXPIRED, HIT; not found when the cache was not asked.
void var_cache_status(Request& r, VariableValue& v, uintptr_t) {
  if (r.upstream == nullptr || r.upstream->cache == nullptr) {
    v.set_not_found();
    return;
  }
  v.set(cache_status_name(r.upstream->cache->status));
}

template <std::string_view (*Get)(Request&)>
void var_cache_validator(Request& r, VariableValue& v, uintptr_t) {
  std::string_view s = Get(r);
  if (s.empty()) {
    v.set_not_found();
    return;
  }
  v.set(s);
}

constexpr VariableDef kVars[] = {
    {"upstream_addr", var_addr, nullptr, kVarNoCacheable},
    {"upstream_cache_status", var_cache_status, nullptr, kVarNoCacheable},
    {"upstream_cache_last_modified", var_cache_validator<cache_last_modified>, nullptr,
     kVarNoCacheable},
    {"upstream_cache_etag", var_cache_validator<cache_etag>, nullptr, kVarNoCacheable},
    {"upstream_status", var_status, nullptr, kVarNoCacheable},
    {"upstream_response_time", var_time<&UpstreamState::response_time>, nullptr, kVarNoCacheable},
    {"upstream_connect_time", var_time<&UpstreamState::connect_time>, nullptr, kVarNoCacheable},
    {"upstream_header_time", var_time<&UpstreamState::header_time>, nullptr, kVarNoCacheable},
    {"upstream_response_length", var_length<&UpstreamState::response_length>, nullptr,
     kVarNoCacheable},
    {"upstream_bytes_received", var_length<&UpstreamState::bytes_received>, nullptr,
     kVarNoCacheable},
    {"upstream_bytes_sent", var_length<&UpstreamState::bytes_sent>, nullptr, kVarNoCacheable},
};

Status preconfiguration(ConfContext& cf) {
  if (Status s = add_variables(cf, kVars); !s.ok()) return s;
  core_main_conf(cf).variables.add_prefix("upstream_http_", var_upstream_http, 0, kVarNoCacheable);
  core_main_conf(cf).variables.add_prefix("upstream_cookie_", var_upstream_cookie, 0,
                                          kVarNoCacheable);
  return {};
}

Status match_block(ConfContext& cf, const ConfNode& n, UpstreamMainConf& umcf) {
  return parse_match(cf, n, umcf.matches);
}

// Once the locations are merged (a location's group is known then): the health checks' groups.
Status postconfiguration(ConfContext& cf) {
  UpstreamMainConf& umcf = upstream_main(cf);
  return resolve_health_checks(umcf.health_checks, umcf.matches);
}

// In each worker: the health checks of the configuration start.
Status init_process(Cycle& cycle) {
  auto* http = static_cast<HttpConfCtx*>(cycle.confs[http_module.index]);
  if (http == nullptr) return {};
  const auto& umcf = conf_of<UpstreamMainConf>(http->main_conf);
  start_health_checks(umcf.health_checks, cycle.log);
  start_resolving(umcf.groups, cycle.log);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<upstream_block>("upstream", kHttpMainConf | kBlock | kTake1),
    directive<match_block>("match", kHttpMainConf | kBlock | kTake1),
};
static_assert(directives_of(kDirectives, &http_upstream_module));

}  // namespace

Status add_health_check(ConfContext& cf, const ConfNode& n, const UpstreamConf& upstream) {
  auto* hc = cf.pool.make<HealthCheck>();
  if (Status s = parse_health_check(cf, n, upstream, *hc); !s.ok()) return s;
  upstream_main(cf).health_checks.push_back(hc);
  return {};
}

std::span<UpstreamGroup* const> upstream_groups(ConfContext& cf) {
  return upstream_main(cf).groups;
}

UpstreamGroup* add_upstream_group(ConfContext& cf, std::string_view host, uint16_t port,
                                  uint16_t default_port) {
  UpstreamMainConf& umcf = upstream_main(cf);
  for (UpstreamGroup* g : umcf.groups) {
    if (iequals(g->host, host) && g->port == port &&
        (g->defined || port != 0 || g->default_port == default_port)) {
      return g;
    }
  }
  auto* g = cf.pool.make<UpstreamGroup>();
  g->host = std::string(host);
  g->port = port;
  g->default_port = default_port;
  g->implicit = true;
  g->file = cf.node != nullptr ? cf.node->file : nullptr;
  g->line = cf.node != nullptr ? cf.node->line : 0;
  umcf.groups.push_back(g);
  return g;
}

UpstreamGroup* find_upstream_group(Request& r, std::string_view host, uint16_t port) {
  for (UpstreamGroup* g : r.main_cf<UpstreamMainConf>().groups) {
    if (!iequals(g->host, host)) continue;
    if (g->defined ? port == 0 : g->port == port) return g;
  }
  return nullptr;
}

UpstreamGroup* make_request_group(Request& r, std::string_view name,
                                  const std::vector<SockAddr>& addrs) {
  auto* g = r.pool->make<UpstreamGroup>();
  g->host = std::string(name);
  UpstreamServer s;
  s.name = g->host;
  s.addrs = addrs;
  g->servers.push_back(std::move(s));
  if (!init_round_robin(*g, *r.pool).ok()) return nullptr;
  g->init_peer = init_round_robin_peer;
  return g;
}

Module http_upstream_module{
    .name = "http_upstream",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_main_conf = create_conf<create_main_conf>,
    .init_main_conf = init_conf<init_main_conf>,
    .postconfiguration = postconfiguration,
    .init_process = init_process,
};

Result<PassAddress> parse_pass_address(std::string_view url) {
  PassAddress a;
  if (istarts_with(url, "unix:")) {
    if (url.size() <= 5) return Status::error("no path in the unix domain socket");
    a.host = url;
    return a;
  }
  if (url.empty() || url.find('/') != std::string_view::npos) {
    return Status::errorf("invalid host in upstream \"%.*s\"", static_cast<int>(url.size()),
                          url.data());
  }
  a.host = url;
  size_t colon = url.rfind(':');
  if (colon != std::string_view::npos && url.find(']', colon) == std::string_view::npos) {
    a.host = url.substr(0, colon);
    auto v = parse_int(url.substr(colon + 1));
    if (!v || *v < 1 || *v > 65535) {
      return Status::errorf("invalid port in upstream \"%.*s\"", static_cast<int>(url.size()),
                            url.data());
    }
    a.port = static_cast<uint16_t>(*v);
  }
  return a;
}

Code set_pass_peer(Request& r, Upstream& u, std::string_view url) {
  Result<PassAddress> parsed = parse_pass_address(url);
  if (!parsed.ok()) {
    log_error(LogLevel::Error, r.log(), 0, "%s", parsed.status().message().c_str());
    return Code::status(500);
  }
  if (UpstreamGroup* g = find_upstream_group(r, parsed->host, parsed->port)) {
    u.group = g;
  } else if (parsed->port == 0 && !istarts_with(parsed->host, "unix:")) {
    log_error(LogLevel::Error, r.log(), 0, "no port in upstream \"%.*s\"",
              static_cast<int>(url.size()), url.data());
    return Code::status(500);
  } else {
    u.resolve_host = parsed->host;
    u.resolve_port = parsed->port;
  }
  return Rc::Ok;
}

}  // namespace weir::http
