// valid_referers and $invalid_referer: "" when the Referer is one the location accepts, "1" when
// not. `none` accepts a request without Referer, `blocked` one whose Referer has no http(s)://
// (a firewall or proxy removed it), `server_names` the server's own names; other entries are host
// names (with *.example.com, .example.com and www.example.* forms) with an optional URI prefix, or
// case-blind regexes over the Referer past its scheme. A level with entries replaces the outer one.
// nginx: src/http/modules/ngx_http_referer_module.c
#include <memory>
#include <string>
#include <vector>

#include "core/host_names.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_referer_module;

namespace {

constexpr size_t kNoUri = ~size_t{0};  // a host entry without a URI part

struct RefererLocConf {
  static constexpr Module* kModule = &http_referer_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  bool set = false;  // valid_referers at this level
  bool none = false;
  bool blocked = false;
  bool server_names = false;    // the server's exact and wildcard names (this level's entry)
  bool server_regexes = false;  // the server's regex names (inherited as nginx's are)
  std::vector<std::string>* uris = nullptr;  // URI parts, by entry
  HostNames<size_t>* hosts = nullptr;        // host → index in uris, or kNoUri
  std::vector<std::unique_ptr<HttpRegex>>* regexes = nullptr;
  Setting<size_t> hash_max_size;  // weir's tables have no such bound: taken for nginx's sake
  Setting<size_t> hash_bucket_size;
};

// Whether a host (lower case) is one of the server's names: its exact and wildcard ones, or its
// regexes.
bool server_name_matches(Request& r, std::string_view host, bool regexes) {
  for (const ServerName& sn : core_srv(r).server_names) {
    if (sn.regex != nullptr) {
      if (regexes && regex_exec(r, *sn.regex, host)) return true;
      continue;
    }
    if (regexes) continue;
    std::string_view name = sn.name;
    if (name.empty()) continue;
    if (name.starts_with("*.")) {
      if (host.size() > name.size() - 1 && host.ends_with(name.substr(1))) return true;
    } else if (name.starts_with('.')) {
      if (host == name.substr(1) || host.ends_with(name)) return true;
    } else if (name.ends_with(".*")) {
      if (host.size() > name.size() - 1 && host.starts_with(name.substr(0, name.size() - 1))) {
        return true;
      }
    } else if (host == name) {
      return true;
    }
  }
  return false;
}

bool valid_referer(Request& r, const RefererLocConf& conf) {
  const Header* h = r.headers_in.referer;
  if (h == nullptr) return conf.none;
  std::string_view ref = h->value;
  if (ref.size() >= 11 && istarts_with(ref, "http://")) {
    ref.remove_prefix(7);
  } else if (ref.size() >= 11 && istarts_with(ref, "https://")) {
    ref.remove_prefix(8);
  } else {
    return conf.blocked;
  }
  size_t end = ref.find_first_of("/:");
  std::string_view raw_host = ref.substr(0, end);
  if (raw_host.size() > 256) return false;
  char buf[256];
  lowercase_into(buf, raw_host);
  std::string_view host{buf, raw_host.size()};
  if (conf.hosts != nullptr) {
    if (const size_t* uri = conf.hosts->find(host)) {
      if (*uri == kNoUri) return true;
      std::string_view rest = ref.substr(std::min(ref.size(), ref.find('/')));
      return rest.starts_with((*conf.uris)[*uri]);
    }
  }
  if (conf.server_names && server_name_matches(r, host, false)) return true;
  if (conf.server_regexes && server_name_matches(r, host, true)) return true;
  if (conf.regexes != nullptr) {
    for (const auto& re : *conf.regexes) {
      if (regex_exec(r, *re, ref)) return true;
    }
  }
  return false;
}

void var_invalid_referer(Request& r, VariableValue& v, uintptr_t) {
  const auto& conf = r.loc<RefererLocConf>();
  bool any =
      conf.hosts != nullptr || conf.regexes != nullptr || conf.server_names || conf.server_regexes;
  v.set(!any || valid_referer(r, conf) ? std::string_view{} : "1");
}

Status valid_referers(ConfContext& cf, const ConfNode& n, RefererLocConf& conf) {
  conf.set = true;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view v = n.args[i];
    if (v.empty()) return cf.errorf("invalid referer \"%s\"", n.args[i].c_str());
    if (v == "none") {
      conf.none = true;
    } else if (v == "blocked") {
      conf.blocked = true;
    } else if (v == "server_names") {
      conf.server_names = conf.server_regexes = true;
    } else if (v.starts_with('~')) {
      if (v.size() == 1) return cf.errorf("empty regex in \"%s\"", n.args[i].c_str());
      if (conf.regexes == nullptr) {
        conf.regexes = cf.pool.make<std::vector<std::unique_ptr<HttpRegex>>>();
      }
      auto re = std::make_unique<HttpRegex>();
      if (Status s = compile_http_regex(cf, *re, v.substr(1), true); !s.ok()) return s;
      conf.regexes->push_back(std::move(re));
    } else {
      size_t slash = v.find('/');
      std::string host = lowercased(v.substr(0, slash));
      size_t uri = kNoUri;
      if (slash != std::string_view::npos) {
        if (conf.uris == nullptr) conf.uris = cf.pool.make<std::vector<std::string>>();
        conf.uris->emplace_back(v.substr(slash));
        uri = conf.uris->size() - 1;
      }
      if (conf.hosts == nullptr) conf.hosts = cf.pool.make<HostNames<size_t>>();
      auto result = conf.hosts->add_configured(host, uri);
      if (result == HostNames<size_t>::Added::Invalid) {
        return cf.errorf("invalid hostname or wildcard \"%s\"", host.c_str());
      }
      if (result == HostNames<size_t>::Added::Conflict) {
        return cf.errorf("conflicting parameter \"%s\"", host.c_str());
      }
    }
  }
  if (conf.hosts != nullptr) conf.hosts->build();
  if ((conf.none || conf.blocked) && conf.hosts == nullptr && !conf.server_names) {
    return cf.error(
        "the \"none\" or \"blocked\" referers are specified in the \"valid_referers\" "
        "directive without any valid referer");
  }
  return {};
}

RefererLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<RefererLocConf>();
}

// A level without valid_referers takes the outer one's whole; one with its own keeps its hosts
// and flags, and takes the outer regexes (its own, or the server's names') when it has none, as
// nginx merges them.
Status merge_loc_conf(ConfContext&, const RefererLocConf& prev, RefererLocConf& conf) {
  if (!conf.set) {
    conf.set = prev.set;
    conf.none = prev.none;
    conf.blocked = prev.blocked;
    conf.server_names = prev.server_names;
    conf.uris = prev.uris;
    conf.hosts = prev.hosts;
  }
  if (conf.regexes == nullptr) conf.regexes = prev.regexes;
  if (!conf.server_regexes) conf.server_regexes = prev.server_regexes;
  conf.hash_max_size.merge(prev.hash_max_size, 2048);
  conf.hash_bucket_size.merge(prev.hash_bucket_size, 64);
  return {};
}

constexpr VariableDef kVars[] = {
    {"invalid_referer", var_invalid_referer, nullptr, kVarNoCacheable},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

constexpr Directive kDirectives[] = {
    directive<valid_referers>("valid_referers", kHttpSrvConf | kHttpLocConf | kOneMore),
    directive<slot::num<&RefererLocConf::hash_max_size>>("referer_hash_max_size",
                                                         kHttpSrvConf | kHttpLocConf | kTake1),
    directive<slot::num<&RefererLocConf::hash_bucket_size>>("referer_hash_bucket_size",
                                                            kHttpSrvConf | kHttpLocConf | kTake1),
};
static_assert(directives_of(kDirectives, &http_referer_module));

}  // namespace

Module http_referer_module{
    .name = "http_referer",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
