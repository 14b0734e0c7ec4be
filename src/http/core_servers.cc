// `server`, `listen` and `server_name`: virtual servers, the addresses they listen on, and choosing
// a server for a request's Host. nginx: src/http/ngx_http.c (ngx_http_optimize_servers ...),
// src/http/ngx_http_core_module.c (ngx_http_core_server, ngx_http_core_listen,
// ngx_http_core_server_name), src/http/ngx_http_request.c (ngx_http_find_virtual_server)
#include <unistd.h>

#include <algorithm>

#include "conf/cycle.h"
#include "core/assert.h"
#include "core/inet.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/core_setters.h"
#include "http/http_connection.h"
#include "http/ssl_module.h"

namespace weir::http {

namespace {

// so_keepalive=[idle]:[interval]:[count], each part optional but not all: idle and interval
// times in seconds ("30m"), count a number. nginx: ngx_http_core_listen
bool parse_keepalive(std::string_view v, ListenOptions& opt) {
  std::string_view parts[3];
  for (std::string_view& part : parts) {
    size_t colon = v.find(':');
    part = v.substr(0, colon);
    v = colon == std::string_view::npos ? std::string_view{} : v.substr(colon + 1);
  }
  if (!v.empty()) return false;
  int* fields[3] = {&opt.keepidle, &opt.keepintvl, &opt.keepcnt};
  for (int i = 0; i < 3; i++) {
    if (parts[i].empty()) continue;
    auto n = i < 2 ? parse_time(parts[i], true) : parse_int(parts[i]);
    if (!n || *n < 0 || *n > INT32_MAX) return false;
    *fields[i] = static_cast<int>(*n);
  }
  return opt.keepidle != 0 || opt.keepintvl != 0 || opt.keepcnt != 0;
}

}  // namespace

Status server_block(ConfContext& cf, const ConfNode& n) {
  auto* ctx = cf.pool.make<HttpConfCtx>();
  ctx->main_conf = cf.http->main_conf;
  ConfContext sc = cf;
  sc.node = &n;
  if (Status s = create_level_confs(sc, *ctx, true); !s.ok()) return s;
  auto& cscf = conf_of<CoreSrvConf>(ctx->srv_conf);
  cscf.ctx = ctx;
  cscf.node = &n;
  auto& cmcf = core_main_conf(cf);
  cmcf.servers.push_back(&cscf);

  sc.http = ctx;
  sc.cmd_type = kHttpSrvConf;
  if (Status s = sc.parse_block(n.children); !s.ok()) return s;

  if (!cscf.has_listen) {
    // nginx's default: port 80 when run as root, 8000 otherwise.
    ListenConf lc;
    Result<std::vector<SockAddr>> addrs =
        parse_addresses(::getuid() == 0 ? "*:80" : "*:8000", 80, false);
    WEIR_RELEASE_ASSERT(addrs.ok() && !addrs->empty());
    lc.addr = (*addrs)[0];
    lc.addr_text = lc.addr.to_string();
    lc.wildcard = true;
    lc.server = &cscf;
    lc.node = &n;
    cmcf.listens.push_back(lc);
  }
  if (!cscf.has_server_name) {
    cscf.server_names.push_back(ServerName{"", nullptr, &cscf});
  }
  return {};
}

Status listen_directive(ConfContext& cf, const ConfNode& n, CoreSrvConf& cscf) {
  cscf.has_listen = true;
  Result<std::vector<SockAddr>> parsed = parse_addresses(n.args[1], 80, false);
  if (!parsed.ok()) {
    return cf.errorf("%s in \"%s\" of the \"listen\" directive", parsed.status().message().c_str(),
                     n.args[1].c_str());
  }
  std::vector<SockAddr>& addrs = *parsed;
  ListenConf base;
  bool options = false;
  for (size_t i = 2; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    if (a == "default_server" || a == "default") {
      base.default_server = true;
    } else if (a == "bind") {
      base.bind = true;
    } else if (a.starts_with("backlog=")) {
      auto v = parse_int(a.substr(8));
      if (!v || *v == 0) return cf.errorf("invalid backlog \"%s\"", n.args[i].c_str());
      base.opt.backlog = static_cast<int>(*v);
      base.bind = options = true;
    } else if (a.starts_with("rcvbuf=")) {
      auto v = parse_size(a.substr(7));
      if (!v) return cf.errorf("invalid rcvbuf \"%s\"", n.args[i].c_str());
      base.opt.rcvbuf = static_cast<int>(*v);
      base.bind = options = true;
    } else if (a.starts_with("sndbuf=")) {
      auto v = parse_size(a.substr(7));
      if (!v) return cf.errorf("invalid sndbuf \"%s\"", n.args[i].c_str());
      base.opt.sndbuf = static_cast<int>(*v);
      base.bind = options = true;
    } else if (a == "deferred") {
      base.opt.deferred = true;
      base.bind = options = true;
    } else if (a.starts_with("ipv6only=")) {
      if (a.substr(9) == "on") {
        base.opt.ipv6only = 1;
      } else if (a.substr(9) == "off") {
        base.opt.ipv6only = 0;
      } else {
        return cf.errorf("invalid ipv6only flags \"%s\"", n.args[i].c_str() + 9);
      }
      base.bind = options = true;
    } else if (a == "reuseport") {
      base.opt.reuseport = true;
      base.bind = options = true;
    } else if (a.starts_with("so_keepalive=")) {
      std::string_view v = a.substr(13);
      if (v == "on") {
        base.opt.so_keepalive = true;
      } else if (v != "off") {
        if (!parse_keepalive(v, base.opt)) {
          return cf.errorf("invalid so_keepalive value: \"%s\"", n.args[i].c_str() + 13);
        }
        base.opt.so_keepalive = true;
      }
      base.bind = options = true;
    } else if (a.starts_with("fastopen=")) {
      if (!parse_int(a.substr(9))) return cf.errorf("invalid fastopen \"%s\"", n.args[i].c_str());
      base.opt.fastopen = true;
      base.bind = options = true;
    } else if (a == "ssl") {
      base.ssl = true;
    } else if (a == "http2") {
      base.http2 = true;
    } else if (a == "quic" || a == "http3") {
      return cf.errorf("the \"%s\" parameter requires ngx_http_v3_module", n.args[i].c_str());
    } else if (a == "proxy_protocol") {
      base.proxy_protocol = true;
    } else {
      return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
    }
  }
  (void)options;
  auto& cmcf = core_main_conf(cf);
  for (const SockAddr& a : addrs) {
    for (const ListenConf& l : cmcf.listens) {
      if (l.server == &cscf && l.addr == a) {
        return cf.errorf("a duplicate listen %s", a.to_string().c_str());
      }
    }
    ListenConf lc = base;
    lc.addr = a;
    lc.addr_text = a.to_string();
    lc.wildcard = a.is_wildcard();
    lc.server = &cscf;
    lc.node = &n;
    cmcf.listens.push_back(lc);
  }
  return {};
}

Status server_name_directive(ConfContext& cf, const ConfNode& n, CoreSrvConf& cscf) {
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string name = n.args[i];
    if (!cscf.has_server_name && cscf.server_name.empty() && name[0] != '~') {
      cscf.server_name = name;
      if (name == "$hostname") cscf.server_name = host_name();
    }
    cscf.has_server_name = true;
    if (name == "$hostname") name = host_name();
    if (name.find('/') != std::string::npos) {
      return cf.errorf("server name \"%s\" has suspicious symbols", name.c_str());
    }
    if (name[0] == '~') {
      if (name.size() == 1) return cf.errorf("empty regex in server name \"%s\"", name.c_str());
      auto* re = cf.pool.make<HttpRegex>();
      if (Status s = compile_http_regex(cf, *re, std::string_view(name).substr(1), true); !s.ok()) {
        return s;
      }
      cscf.server_names.push_back(ServerName{name, re, &cscf});
      continue;
    }
    std::string lower;
    for (char c : name) lower += to_lower(c);
    if (lower.size() > 1 && lower[0] == '.') {
      // ".example.com" is "example.com" and "*.example.com".
      cscf.server_names.push_back(ServerName{lower.substr(1), nullptr, &cscf});
      cscf.server_names.push_back(ServerName{"*" + lower, nullptr, &cscf});
      continue;
    }
    size_t star = lower.find('*');
    if (star != std::string::npos &&
        !(star == 0 && lower.size() > 2 && lower[1] == '.' &&
          lower.find('*', 1) == std::string::npos) &&
        !(star == lower.size() - 1 && lower.size() > 2 && lower[star - 1] == '.' &&
          lower.find('*') == star)) {
      cscf.server_names.push_back(ServerName{name, nullptr, &cscf, true});
      continue;
    }
    cscf.server_names.push_back(ServerName{lower, nullptr, &cscf});
  }
  return {};
}

CoreSrvConf* VirtualServers::find(Request* r, std::string_view host) const {
  if (only_default) return nullptr;
  if (CoreSrvConf* const* srv = names.find(host)) return *srv;
  for (const auto& [re, srv] : regex) {
    if (r != nullptr ? regex_exec(*r, *re, host) : re->re.match(host, nullptr, 0)) return srv;
  }
  return nullptr;
}

namespace {

Status add_names(ConfContext& cf, HttpAddr& addr, const std::vector<CoreSrvConf*>& servers) {
  VirtualServers& vs = addr.servers;
  auto conflict = [&](const std::string& name) {
    cf.warn(LogLevel::Warn, "conflicting server name \"%s\" on %s, ignored", name.c_str(),
            addr.addr_text.c_str());
  };
  // nginx checks the names only where it builds their hash: servers sharing the address, or one
  // whose regex name has captures.
  const auto& names = servers.front()->server_names;
  bool checked = servers.size() > 1 || std::any_of(names.begin(), names.end(), [](const auto& sn) {
                   return sn.regex != nullptr && sn.regex->re.captures() > 0;
                 });
  for (CoreSrvConf* srv : servers) {
    for (const ServerName& sn : srv->server_names) {
      if (sn.invalid) {
        if (!checked) continue;
        return Status::located(
            conf_error_at(srv->node->file, srv->node->line,
                          strprintf("invalid server name or wildcard \"%s\" on %s", sn.name.c_str(),
                                    addr.addr_text.c_str())));
      }
      if (sn.regex != nullptr) {
        vs.regex.emplace_back(sn.regex, srv);
        continue;
      }
      // A repeated name: the first server keeps it. "" too (the name of a server that gives
      // none), as nginx warns of it.
      if (!vs.names.add(sn.name, srv)) conflict(sn.name);
    }
  }
  vs.names.build();
  vs.only_default = servers.size() == 1 && vs.regex.empty();
  return {};
}

}  // namespace

Status add_listening(ConfContext& cf, CoreMainConf& cmcf) {
  // Group the listen directives by port, then by address.
  struct AddrGroup {
    ListenConf first;
    std::vector<CoreSrvConf*> servers;
    CoreSrvConf* default_server = nullptr;
    bool bind = false;
    bool has_options = false;
  };
  struct PortGroup {
    int family;
    uint16_t port;
    std::string unix_path;
    std::vector<AddrGroup> addrs;
  };
  std::vector<PortGroup> ports;
  for (const ListenConf& l : cmcf.listens) {
    PortGroup* pg = nullptr;
    for (PortGroup& p : ports) {
      bool same = p.family == l.addr.family() &&
                  (l.addr.family() == AF_UNIX ? p.unix_path == l.addr.to_string()
                                              : p.port == l.addr.port());
      if (same) pg = &p;
    }
    if (pg == nullptr) {
      ports.push_back(PortGroup{l.addr.family(),
                                l.addr.port(),
                                l.addr.family() == AF_UNIX ? l.addr.to_string() : "",
                                {}});
      pg = &ports.back();
    }
    AddrGroup* ag = nullptr;
    for (AddrGroup& a : pg->addrs) {
      if (a.first.addr == l.addr) ag = &a;
    }
    bool has_options = l.bind;  // socket options (backlog=, reuseport ...) imply bind
    if (ag == nullptr) {
      pg->addrs.push_back(AddrGroup{l, {}, nullptr, l.bind, has_options});
      ag = &pg->addrs.back();
    } else {
      if (has_options && ag->has_options) {
        ConfContext ec = cf;
        ec.node = l.node;
        return ec.errorf("duplicate listen options for %s", l.addr_text.c_str());
      }
      if (has_options) {
        ag->first.opt = l.opt;
        ag->has_options = true;
      }
      ag->bind = ag->bind || l.bind;
      ag->first.proxy_protocol = ag->first.proxy_protocol || l.proxy_protocol;
      ag->first.ssl = ag->first.ssl || l.ssl;
      ag->first.http2 = ag->first.http2 || l.http2;
    }
    if (std::find(ag->servers.begin(), ag->servers.end(), l.server) == ag->servers.end()) {
      ag->servers.push_back(l.server);
    }
    if (l.default_server) {
      if (ag->default_server != nullptr) {
        ConfContext ec = cf;
        ec.node = l.node;
        return ec.errorf("a duplicate default server for %s", l.addr_text.c_str());
      }
      ag->default_server = l.server;
    }
  }

  for (PortGroup& pg : ports) {
    // Wildcard last: a connection to a specific address prefers that address's servers.
    std::stable_sort(pg.addrs.begin(), pg.addrs.end(), [](const AddrGroup& a, const AddrGroup& b) {
      return !a.first.wildcard && b.first.wildcard;
    });
    bool has_wildcard = !pg.addrs.empty() && pg.addrs.back().first.wildcard;

    // Sockets: every address with `bind` (or without a wildcard) gets its own; the rest share the
    // wildcard.
    auto shared = std::make_unique<HttpPort>();
    std::vector<std::pair<AddrGroup*, std::unique_ptr<HttpPort>>> own;
    for (AddrGroup& ag : pg.addrs) {
      HttpAddr a;
      a.addr = ag.first.addr;
      a.addr_text = ag.first.addr_text;
      a.proxy_protocol = ag.first.proxy_protocol;
      a.ssl = ag.first.ssl;
      a.http2 = ag.first.http2;
      a.servers.default_server =
          ag.default_server != nullptr ? ag.default_server : ag.servers.front();
      if (Status s = add_names(cf, a, ag.servers); !s.ok()) return s;
      if (a.ssl) {
        if (Status s = check_ssl_address(cf, a); !s.ok()) return s;
      }
      if (has_wildcard && !ag.bind && !ag.first.wildcard) {
        shared->addrs.push_back(std::move(a));
      } else if (ag.first.wildcard) {
        shared->addrs.push_back(std::move(a));
        own.emplace_back(&ag, nullptr);  // the wildcard's socket carries `shared`
      } else {
        auto port = std::make_unique<HttpPort>();
        port->addrs.push_back(std::move(a));
        own.emplace_back(&ag, std::move(port));
      }
    }
    for (auto& [ag, port] : own) {
      auto ls = std::make_unique<Listening>();
      ls->addr = ag->first.addr;
      ls->addr_text = ag->first.addr_text;
      ls->opt = ag->first.opt;
      // Requests on plain connections can tell the default file cache when they arrived (see
      // OpenFileCache::lookup); TLS reads go through the record layer and do not.
      HttpPort* served = port != nullptr ? port.get() : shared.get();
      ls->opt.rx_timestamps = cmcf.auto_file_cache != nullptr && ls->addr.family() != AF_UNIX &&
                              std::any_of(served->addrs.begin(), served->addrs.end(),
                                          [](const HttpAddr& a) { return !a.ssl; });
      ls->handler = init_connection;
      ls->log_sink = cf.cycle.log_sink;
      ls->servers = served;
      if (port != nullptr) cmcf.ports.push_back(std::move(port));
      cf.cycle.listening.push_back(std::move(ls));
    }
    if (!shared->addrs.empty()) cmcf.ports.push_back(std::move(shared));
  }
  return {};
}

CoreSrvConf* find_virtual_server(Request& r, std::string_view host) {
  auto* hc = r.http_connection;
  if (hc == nullptr || hc->addr_conf == nullptr) return nullptr;
  CoreSrvConf* s = hc->addr_conf->servers.find(&r, host);
  return s;
}

}  // namespace weir::http
