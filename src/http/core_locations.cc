// Locations: the `location` and `limit_except` blocks, ordering a server's locations for lookup,
// and matching a URI as nginx does - exact first, then the longest prefix (whose nested locations
// are searched next), then regular expressions in configuration order unless the prefix said ^~.
// nginx: src/http/ngx_http_core_module.c (ngx_http_core_location, ngx_http_core_find_location),
//        src/http/ngx_http.c (ngx_http_init_locations, ngx_http_init_static_location_trees)
#include <algorithm>

#include "core/str.h"
#include "http/core_module.h"
#include "http/core_setters.h"

namespace weir::http {

Status location_block(ConfContext& cf, const ConfNode& n, CoreLocConf& pclcf) {
  HttpConfCtx* ctx = cf.pool.make<HttpConfCtx>();
  ctx->main_conf = cf.http->main_conf;
  ctx->srv_conf = cf.http->srv_conf;
  ConfContext lc = cf;
  lc.node = &n;
  if (Status s = create_level_confs(lc, *ctx, false); !s.ok()) return s;
  auto& clcf = conf_of<CoreLocConf>(ctx->loc_conf);
  clcf.node = &n;

  std::string name;
  std::string mod;
  if (n.nargs() == 2) {
    mod = n.args[1];
    name = n.args[2];
    if (mod == "=") {
      clcf.exact_match = true;
    } else if (mod == "^~") {
      clcf.noregex = true;
    } else if (mod == "~" || mod == "~*") {
      clcf.regex = cf.pool.make<HttpRegex>();
      if (Status s = compile_http_regex(cf, *clcf.regex, name, mod == "~*"); !s.ok()) return s;
    } else {
      return cf.errorf("invalid location modifier \"%s\"", mod.c_str());
    }
  } else {
    name = n.args[1];
    if (name.size() > 0 && name[0] == '=') {
      name = name.substr(1);
      clcf.exact_match = true;
    } else if (name.size() > 1 && name[0] == '^' && name[1] == '~') {
      name = name.substr(2);
      clcf.noregex = true;
    } else if (name.size() > 0 && name[0] == '~') {
      bool caseless = name.size() > 1 && name[1] == '*';
      name = name.substr(caseless ? 2 : 1);
      clcf.regex = cf.pool.make<HttpRegex>();
      if (Status s = compile_http_regex(cf, *clcf.regex, name, caseless); !s.ok()) return s;
    } else if (name.size() > 0 && name[0] == '@') {
      clcf.named = true;
    }
  }
  clcf.name = name;

  auto& cscf = conf_of<CoreSrvConf>(cf.http->srv_conf);
  bool server_level = pclcf.name.empty() && !pclcf.noname;
  if (!server_level) {
    if (pclcf.exact_match) {
      return cf.errorf("location \"%s\" cannot be inside the exact location \"%s\"", name.c_str(),
                       pclcf.name.c_str());
    }
    if (pclcf.named) {
      return cf.errorf("location \"%s\" cannot be inside the named location \"%s\"", name.c_str(),
                       pclcf.name.c_str());
    }
    if (clcf.named) {
      return cf.errorf("named location \"%s\" can be on the server level only", name.c_str());
    }
    if (clcf.regex == nullptr && pclcf.regex == nullptr && !name.starts_with(pclcf.name)) {
      return cf.errorf("location \"%s\" is outside location \"%s\"", name.c_str(),
                       pclcf.name.c_str());
    }
  }
  if (clcf.named) {
    cscf.named_locations.push_back(&clcf);
  }
  pclcf.locations.push_back(&clcf);

  lc.http = ctx;
  lc.cmd_type = kHttpLocConf;
  return lc.parse_block(n.children);
}

Status limit_except_block(ConfContext& cf, const ConfNode& n, CoreLocConf& pclcf) {
  if (pclcf.limit_except != 0) return Status::error("is duplicate");
  uint32_t allowed = 0;
  for (size_t i = 1; i < n.args.size(); i++) {
    const std::string& m = n.args[i];
    static constexpr std::pair<std::string_view, uint32_t> kMethods[] = {
        {"GET", kGet | kHead}, {"HEAD", kHead},         {"POST", kPost},           {"PUT", kPut},
        {"DELETE", kDelete},   {"MKCOL", kMkcol},       {"COPY", kCopy},           {"MOVE", kMove},
        {"OPTIONS", kOptions}, {"PROPFIND", kPropfind}, {"PROPPATCH", kProppatch}, {"LOCK", kLock},
        {"UNLOCK", kUnlock},   {"PATCH", kPatch},
    };
    bool found = false;
    for (const auto& [mn, bit] : kMethods) {
      if (iequals(mn, m)) {
        allowed |= bit;
        found = true;
      }
    }
    if (!found) return cf.errorf("invalid method \"%s\"", m.c_str());
  }
  pclcf.limit_except = 0xffffffffu ^ allowed;

  HttpConfCtx* ctx = cf.pool.make<HttpConfCtx>();
  ctx->main_conf = cf.http->main_conf;
  ctx->srv_conf = cf.http->srv_conf;
  ConfContext lc = cf;
  lc.node = &n;
  if (Status s = create_level_confs(lc, *ctx, false); !s.ok()) return s;
  pclcf.limit_except_loc_conf = ctx->loc_conf;
  auto& clcf = conf_of<CoreLocConf>(ctx->loc_conf);
  clcf.name = pclcf.name;
  clcf.noname = true;
  clcf.lmt_excpt = true;
  clcf.node = &n;
  pclcf.locations.push_back(&clcf);
  lc.http = ctx;
  lc.cmd_type = kHttpLmtConf;
  return lc.parse_block(n.children);
}

Status init_locations(ConfContext& cf, CoreSrvConf& cscf, CoreLocConf& pclcf) {
  pclcf.static_locations.clear();
  pclcf.regex_locations.clear();
  for (CoreLocConf* clcf : pclcf.locations) {
    if (Status s = init_locations(cf, cscf, *clcf); !s.ok()) return s;
    if (clcf->named || clcf->noname) continue;
    if (clcf->regex != nullptr) {
      pclcf.regex_locations.push_back(clcf);
      continue;
    }
    for (CoreLocConf* other : pclcf.static_locations) {
      if (other->name == clcf->name && other->exact_match == clcf->exact_match) {
        ConfContext ec = cf;
        ec.node = clcf->node;
        return ec.errorf("duplicate location \"%s\"", clcf->name.c_str());
      }
    }
    pclcf.static_locations.push_back(clcf);
  }
  // Longest name first; for the same name the exact location first.
  std::stable_sort(pclcf.static_locations.begin(), pclcf.static_locations.end(),
                   [](const CoreLocConf* a, const CoreLocConf* b) {
                     if (a->name.size() != b->name.size()) return a->name.size() > b->name.size();
                     return a->exact_match && !b->exact_match;
                   });
  for (size_t i = 0; i < cscf.named_locations.size(); i++) {
    for (size_t j = i + 1; j < cscf.named_locations.size(); j++) {
      if (cscf.named_locations[i]->name == cscf.named_locations[j]->name) {
        ConfContext ec = cf;
        ec.node = cscf.named_locations[j]->node;
        return ec.errorf("duplicate location \"%s\"", cscf.named_locations[j]->name.c_str());
      }
    }
  }
  return {};
}

namespace {

// Ok: exact match; Done: auto redirect; Again: a prefix matched (r.loc_conf set); Declined: none.
Rc find_static_location(Request& r, const std::vector<CoreLocConf*>& locations) {
  std::string_view uri = r.uri;
  for (CoreLocConf* clcf : locations) {
    if (!clcf->exact_match) continue;
    WEIR_DEBUG(r.log(), "test location: \"=%s\"", clcf->name.c_str());
    if (clcf->name == uri) {
      r.loc_conf = clcf->loc_conf;
      return Rc::Ok;
    }
  }
  for (CoreLocConf* clcf : locations) {
    const std::string& name = clcf->name;
    if (!clcf->exact_match || clcf->auto_redirect) {
      WEIR_DEBUG(r.log(), "test location: \"%s\"", name.c_str());
    }
    if (clcf->auto_redirect && name.size() == uri.size() + 1 && name.back() == '/' &&
        std::string_view(name).starts_with(uri)) {
      r.loc_conf = clcf->loc_conf;
      return Rc::Done;
    }
    if (clcf->exact_match) continue;
    if (uri.starts_with(name)) {
      r.loc_conf = clcf->loc_conf;
      return Rc::Again;
    }
  }
  return Rc::Declined;
}

}  // namespace

Rc find_location(Request& r) {
  CoreLocConf& pclcf = core_loc(r);
  bool noregex = false;
  Rc rc = find_static_location(r, pclcf.static_locations);
  if (rc == Rc::Again) {
    noregex = core_loc(r).noregex;
    rc = find_location(r);  // nested locations
  }
  if (rc == Rc::Ok || rc == Rc::Done) return rc;
  if (!noregex) {
    for (CoreLocConf* clcf : pclcf.regex_locations) {
      WEIR_DEBUG(r.log(), "test location: ~ \"%s\"", clcf->name.c_str());
      if (regex_exec(r, *clcf->regex, r.uri)) {
        r.loc_conf = clcf->loc_conf;
        Rc nested = find_location(r);
        return nested == Rc::Error ? nested : Rc::Ok;
      }
    }
  }
  return rc;
}

}  // namespace weir::http
