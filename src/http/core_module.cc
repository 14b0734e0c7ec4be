// HTTP core directives (root, alias, types, timeouts, sendfile, error_page, try_files ...) and the
// creation/merging of the core configuration. server/listen/server_name live in core_servers.cc,
// location in core_locations.cc. nginx: src/http/ngx_http_core_module.c
#include "http/core_module.h"

#include <unistd.h>

#include <algorithm>

#include "conf/cycle.h"
#include "conf/error_log.h"
#include "conf/thread_pools.h"
#include "core/str.h"
#include "http/core_setters.h"

namespace weir::http {

// resolver address ... [valid=time] [ipv4=on|off] [ipv6=on|off]: http, server, location and
// (nginx 1.27.3) upstream blocks.
Status parse_resolver(ConfContext& cf, const ConfNode& n, Resolver*& out) {
  if (out != nullptr) return Status::error("is duplicate");
  Resolver::Conf rc;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    auto on_off = [&](std::string_view v, bool& out) -> Status {
      if (v == "on") {
        out = true;
      } else if (v == "off") {
        out = false;
      } else {
        return cf.errorf("invalid parameter: %s", n.args[i].c_str());
      }
      return {};
    };
    if (a.starts_with("valid=")) {
      auto t = parse_time(a.substr(6), false);
      if (!t || *t < 0) return cf.errorf("invalid parameter: %s", n.args[i].c_str());
      rc.valid_ms = static_cast<uint64_t>(*t);
    } else if (a.starts_with("ipv4=")) {
      if (Status s = on_off(a.substr(5), rc.ipv4); !s.ok()) return s;
    } else if (a.starts_with("ipv6=")) {
      if (Status s = on_off(a.substr(5), rc.ipv6); !s.ok()) return s;
    } else {
      Result<std::vector<SockAddr>> addrs = parse_resolver_addresses(a);
      if (!addrs.ok()) return cf.error_at(n, addrs.status().message());  // names no directive
      rc.servers.insert(rc.servers.end(), addrs->begin(), addrs->end());
    }
  }
  if (!rc.ipv4 && !rc.ipv6) return Status::error("\"ipv4\" and \"ipv6\" cannot both be \"off\"");
  if (rc.servers.empty()) return Status::error("no name servers defined");
  out = cf.pool.make<Resolver>(std::move(rc));
  return {};
}

namespace {

using M = CoreMainConf;
using S = CoreSrvConf;
using L = CoreLocConf;

constexpr EnumName<ServerTokens> kServerTokens[] = {
    {"off", ServerTokens::Off}, {"on", ServerTokens::On}, {"build", ServerTokens::Build}};
constexpr EnumName<LingeringClose> kLingering[] = {
    {"off", LingeringClose::Off}, {"on", LingeringClose::On}, {"always", LingeringClose::Always}};
constexpr EnumName<IfModifiedSince> kIms[] = {{"off", IfModifiedSince::Off},
                                              {"exact", IfModifiedSince::Exact},
                                              {"before", IfModifiedSince::Before}};
constexpr EnumName<BodyInFileOnly> kBodyInFile[] = {
    {"off", BodyInFileOnly::Off}, {"on", BodyInFileOnly::On}, {"clean", BodyInFileOnly::Clean}};
constexpr EnumName<uint32_t> kSatisfy[] = {{"all", 0}, {"any", 1}};

Status set_root(ConfContext& cf, const ConfNode& n, L& clcf) {
  bool alias = n.name() == "alias";
  if (clcf.root_set) {
    if (clcf.alias == alias) return Status::error("is duplicate");
    return cf.errorf("\"%s\" directive is duplicate, \"%s\" directive was specified earlier",
                     n.name().c_str(), clcf.alias ? "alias" : "root");
  }
  if (clcf.named && alias) {
    return cf.errorf("the \"alias\" directive cannot be used inside the named location");
  }
  std::string value = n.args[1];
  if (value.find("$document_root") != std::string::npos ||
      value.find("${document_root}") != std::string::npos) {
    return cf.errorf("the $document_root variable cannot be used in the \"%s\" directive",
                     n.name().c_str());
  }
  if (value.find("$realpath_root") != std::string::npos ||
      value.find("${realpath_root}") != std::string::npos) {
    return cf.errorf("the $realpath_root variable cannot be used in the \"%s\" directive",
                     n.name().c_str());
  }
  clcf.root_set = true;
  clcf.alias = alias;
  clcf.alias_prefix_len = alias ? clcf.name.size() : 0;
  if (!alias && value.size() > 1 && value.back() == '/') value.pop_back();
  if (value.empty() || value[0] != '$') value = cf.full_name(value);
  clcf.root = value;
  if (value.find('$') != std::string::npos) {
    auto* cv = cf.pool.make<ComplexValue>();
    if (Status s = cv->compile(cf, value); !s.ok()) return s;
    if (!cv->is_static()) clcf.root_values = cv;
  }
  return {};
}

Status set_types(ConfContext& cf, const ConfNode& n, L& clcf) {
  auto* map = cf.pool.make<TypesMap>();
  if (clcf.types != nullptr) {
    // A second `types` block in the same context adds to the first.
    *map = *clcf.types;
  }
  for (const ConfNode& t : n.children) {
    if (t.block) return cf.error_at(t, "unexpected \"{\"");
    const std::string& type = t.args[0];
    for (size_t i = 1; i < t.args.size(); i++) {
      std::string ext;
      for (char c : t.args[i]) ext += to_lower(c);
      if (std::string* previous = map->find(ext)) {
        // Warned of even when the type is the same, as nginx does.
        ConfContext w = cf;
        w.node = &t;
        w.warn(LogLevel::Warn,
               "duplicate extension \"%s\", content type: \"%s\", previous content type: \"%s\"",
               ext.c_str(), type.c_str(), previous->c_str());
        *previous = type;
      } else {
        map->add(std::move(ext), type);
      }
    }
  }
  clcf.types = map;
  return {};
}

Status set_keepalive(ConfContext& cf, const ConfNode& n, L& clcf) {
  if (clcf.keepalive_timeout.set) return Status::error("is duplicate");
  auto t = parse_time(n.args[1], false);
  if (!t) return Status::error("invalid value");
  clcf.keepalive_timeout = static_cast<uint64_t>(*t);
  if (n.nargs() == 2) {
    auto h = parse_time(n.args[2], true);
    if (!h) return Status::error("invalid value");
    clcf.keepalive_header = static_cast<time_t>(*h);
  }
  return {};
}

// disable_symlinks off | on | if_not_owner [from=part]
Status set_disable_symlinks_directive(ConfContext& cf, const ConfNode& n, L& clcf) {
  if (clcf.disable_symlinks.set) return Status::error("is duplicate");
  const ComplexValue* from = nullptr;
  for (size_t i = 1; i < n.args.size(); i++) {
    const std::string& a = n.args[i];
    if (a == "off") {
      clcf.disable_symlinks = SymlinkRule::Off;
    } else if (a == "on") {
      clcf.disable_symlinks = SymlinkRule::On;
    } else if (a == "if_not_owner") {
      clcf.disable_symlinks = SymlinkRule::IfNotOwner;
    } else if (a.starts_with("from=")) {
      auto* cv = cf.pool.make<ComplexValue>();
      if (Status s = cv->compile(cf, std::string_view(a).substr(5)); !s.ok()) return s;
      from = cv;
    } else {
      return cf.errorf("invalid parameter \"%s\"", a.c_str());
    }
  }
  if (!clcf.disable_symlinks.set) {
    return cf.errorf("\"%s\" must have \"off\", \"on\" or \"if_not_owner\" parameter",
                     n.name().c_str());
  }
  if (n.args.size() == 3 && from == nullptr) {
    return cf.errorf("duplicate parameters \"%s %s\"", n.args[1].c_str(), n.args[2].c_str());
  }
  if (from != nullptr && *clcf.disable_symlinks == SymlinkRule::Off) {
    return cf.error("\"from=\" cannot be used with \"off\" parameter");
  }
  clcf.disable_symlinks_from = from;
  return {};
}

// keepalive_disable's names ("none" is a name of its own, so "none msie6" still disables it for
// MSIE 6, as in nginx).
constexpr EnumName<uint32_t> kKeepaliveDisableNames[] = {
    {"none", kKeepaliveDisableNone},
    {"msie6", kKeepaliveDisableMsie6},
    {"safari", kKeepaliveDisableSafari},
};

Status set_gzip_http_version(ConfContext& cf, const ConfNode& n, L& clcf) {
  if (clcf.gzip_http_version.set) return Status::error("is duplicate");
  if (n.args[1] == "1.0") {
    clcf.gzip_http_version = 1000;
  } else if (n.args[1] == "1.1") {
    clcf.gzip_http_version = 1001;
  } else {
    return cf.errorf("invalid value \"%s\"", n.args[1].c_str());
  }
  return {};
}

constexpr EnumName<uint32_t> kGzipProxiedNames[] = {
    {"off", kGzipProxiedOff},          {"expired", kGzipProxiedExpired},
    {"no-cache", kGzipProxiedNoCache}, {"no-store", kGzipProxiedNoStore},
    {"private", kGzipProxiedPrivate},  {"no_last_modified", kGzipProxiedNoLastModified},
    {"no_etag", kGzipProxiedNoEtag},   {"auth", kGzipProxiedAuth},
    {"any", kGzipProxiedAny},
};

// gzip_disable: "msie6", or User-Agent regexes (case-blind); each use adds to the list.
Status set_gzip_disable(ConfContext& cf, const ConfNode& n, L& clcf) {
  for (size_t i = 1; i < n.args.size(); i++) {
    if (n.args[i] == "msie6") {
      clcf.gzip_disable_msie6 = true;
      continue;
    }
    if (clcf.gzip_disable == nullptr) {
      clcf.gzip_disable = cf.pool.make<std::vector<std::unique_ptr<Regex>>>();
    }
    auto re = std::make_unique<Regex>();
    if (Status s = re->compile(n.args[i], true); !s.ok()) return cf.error(s.message());
    clcf.gzip_disable->push_back(std::move(re));
  }
  return {};
}

// limit_rate / limit_rate_after: a size, or a value with variables evaluated per request.
template <auto Field, auto Values>
Status set_rate(ConfContext& cf, const ConfNode& n, L& clcf) {
  auto& f = clcf.*Field;
  if (f.set || clcf.*Values != nullptr) return Status::error("is duplicate");
  if (n.args[1].find('$') != std::string::npos) {
    auto* cv = cf.pool.make<ComplexValue>();
    if (Status s = cv->compile(cf, n.args[1]); !s.ok()) return s;
    clcf.*Values = cv;
    f = 0;
    return {};
  }
  auto v = parse_size(n.args[1]);
  if (!v) return Status::error("invalid value");
  f = static_cast<size_t>(*v);
  return {};
}

// aio off | on | threads[=pool]; the pool's name may hold variables.
Status set_aio(ConfContext& cf, const ConfNode& n, L& clcf) {
  if (clcf.aio.set) return Status::error("is duplicate");
  std::string_view v = n.args[1];
  clcf.thread_pool = nullptr;
  clcf.thread_pool_value = nullptr;
  if (v == "off" || v == "on") {
    clcf.aio = v == "on" ? AioMode::On : AioMode::Off;
    return {};
  }
  if (!v.starts_with("threads") || (v.size() > 7 && v[7] != '=')) {
    return Status::error("invalid value");
  }
  clcf.aio = AioMode::Threads;
  std::string_view name = v.size() > 8 ? v.substr(8) : std::string_view{};
  if (name.find('$') != std::string_view::npos) {
    auto* cv = cf.pool.make<ComplexValue>();
    if (Status s = cv->compile(cf, std::string(name)); !s.ok()) return s;
    clcf.thread_pool_value = cv;
    return {};
  }
  clcf.thread_pool = add_thread_pool(cf, name);
  return {};
}

// directio size | off
Status set_directio(ConfContext&, const ConfNode& n, L& clcf) {
  if (clcf.directio.set) return Status::error("is duplicate");
  if (n.args[1] == "off") {
    clcf.directio = -1;
    return {};
  }
  auto v = parse_offset(n.args[1]);
  if (!v) return Status::error("invalid value");
  clcf.directio = *v;
  return {};
}

// directio_alignment size: weir reads by blocks of it, up to a page.
Status set_directio_alignment(ConfContext&, const ConfNode& n, L& clcf) {
  if (clcf.directio_alignment.set) return Status::error("is duplicate");
  auto v = parse_size(n.args[1]);
  if (!v) return Status::error("invalid value");
  if (*v == 0 || *v > 4096 || (*v & (*v - 1)) != 0) {
    return Status::error("must be a power of two up to 4096");
  }
  clcf.directio_alignment = static_cast<size_t>(*v);
  return {};
}

// Accepted for compatibility: weir's tables are not nginx's hashes, so their sizes need no tuning.
// A number, as nginx's num slot takes it.
Status accept_number(ConfContext&, const ConfNode& n) {
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  return {};
}

Status set_resolver(ConfContext& cf, const ConfNode& n, L& clcf) {
  return parse_resolver(cf, n, clcf.resolver);
}

Status set_internal(ConfContext&, const ConfNode&, L& clcf) {
  if (clcf.internal.set) return Status::error("is duplicate");
  clcf.internal = true;
  return {};
}

Status set_error_page(ConfContext& cf, const ConfNode& n, L& clcf) {
  clcf.error_pages_set = true;
  size_t last = n.args.size() - 1;
  int overwrite = -1;
  size_t codes_end = last;
  const std::string& maybe = n.args[last - 1];
  if (!maybe.empty() && maybe[0] == '=') {
    codes_end = last - 1;
    if (maybe.size() == 1) {
      overwrite = 0;
    } else {
      auto v = parse_int(std::string_view(maybe).substr(1));
      if (!v || *v > 999) return cf.errorf("invalid value \"%s\"", maybe.c_str());
      overwrite = static_cast<int>(*v);
    }
    if (codes_end == 1) return cf.error("invalid number of arguments in \"error_page\" directive");
  }
  const std::string& uri = n.args[last];
  if (uri.empty()) return cf.errorf("invalid value \"%s\"", uri.c_str());
  for (size_t i = 1; i < codes_end; i++) {
    auto code = parse_int(n.args[i]);
    if (!code) return cf.errorf("invalid value \"%s\"", n.args[i].c_str());
    if (*code < 300 || *code > 599) {
      return cf.errorf("value \"%s\" must be between 300 and 599", n.args[i].c_str());
    }
    if (*code == kHttpClientClosedRequest) {
      return cf.errorf("invalid value \"%s\"", n.args[i].c_str());
    }
    ErrorPage ep;
    ep.status = static_cast<int>(*code);
    ep.overwrite = overwrite;  // without "=", a URL error page redirects and a URI keeps the status
    if (Status s = ep.value.compile(cf, uri); !s.ok()) return s;
    clcf.error_pages.push_back(std::move(ep));
  }
  return {};
}

Status set_try_files(ConfContext& cf, const ConfNode& n, L& clcf) {
  if (clcf.try_files != nullptr) return Status::error("is duplicate");
  core_main_conf(cf).try_files = true;
  auto* list = cf.pool.make<std::vector<TryFile>>();
  for (size_t i = 1; i < n.args.size(); i++) {
    TryFile tf;
    std::string v = n.args[i];
    if (i < n.args.size() - 1 && v.size() > 1 && v.back() == '/') {
      tf.test_dir = true;
      v.pop_back();
    }
    if (i == n.args.size() - 1 && !v.empty() && v[0] == '=') {
      auto code = parse_int(std::string_view(v).substr(1));
      if (!code || *code > 999) return cf.errorf("invalid code \"%s\"", v.c_str());
    }
    if (Status s = tf.value.compile(cf, v); !s.ok()) return s;
    list->push_back(std::move(tf));
  }
  clcf.try_files = list;
  return {};
}

Status set_open_file_cache(ConfContext& cf, const ConfNode& n, L& clcf) {
  if (clcf.open_file_cache_set) return Status::error("is duplicate");
  clcf.open_file_cache_set = true;
  if (n.args[1] == "off") {
    if (n.nargs() != 1)
      return cf.errorf("invalid \"open_file_cache\" parameter \"%s\"", n.args[2].c_str());
    clcf.open_file_cache = nullptr;
    return {};
  }
  int64_t max = -1;
  int64_t inactive = 60;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    std::optional<int64_t> v;
    if (a.starts_with("max=")) {
      v = parse_int(a.substr(4));
      if (v && *v > 0) max = *v;
    } else if (a.starts_with("inactive=")) {
      v = parse_time(a.substr(9), true);
      if (v) inactive = *v;
    }
    if (!v || (a.starts_with("max=") && *v == 0)) {
      return cf.errorf("invalid \"open_file_cache\" parameter \"%s\"", n.args[i].c_str());
    }
  }
  if (max < 0) return cf.error("\"open_file_cache\" must have the \"max\" parameter");
  clcf.open_file_cache =
      cf.pool.make<OpenFileCache>(static_cast<size_t>(max), static_cast<time_t>(inactive));
  return {};
}

Status set_error_log(ConfContext& cf, const ConfNode& n, L& clcf) {
  return parse_error_log(cf, n, &clcf.error_log);
}

M* create_main_conf(ConfContext& cf) {
  M* cmcf = cf.pool.make<M>();
  cmcf->cycle = &cf.cycle;
  return cmcf;
}

Status init_main_conf(ConfContext& cf, M& cmcf) {
  cmcf.server_names_hash_max_size.merge({}, 512);
  cmcf.server_names_hash_bucket_size.merge({}, 64);
  cmcf.variables_hash_max_size.merge({}, 1024);
  cmcf.variables_hash_bucket_size.merge({}, 64);
  return {};
}

S* create_srv_conf(ConfContext& cf) {
  auto* cscf = cf.pool.make<S>();
  cscf->node = cf.node;
  return cscf;
}

Status merge_srv_conf(ConfContext& cf, const S& prev, S& conf) {
  conf.connection_pool_size.merge(prev.connection_pool_size, 512);
  conf.request_pool_size.merge(prev.request_pool_size, 4096);
  conf.client_header_timeout.merge(prev.client_header_timeout, 60000);
  conf.client_header_buffer_size.merge(prev.client_header_buffer_size, 1024);
  conf.large_client_header_buffers.merge(prev.large_client_header_buffers, Bufs{4, 8192});
  if (conf.large_client_header_buffers->size < conf.connection_pool_size.value) {
    return cf.error(
        "the \"large_client_header_buffers\" size must be equal to or greater than "
        "\"connection_pool_size\"");
  }
  conf.ignore_invalid_headers.merge(prev.ignore_invalid_headers, true);
  conf.max_headers.merge(prev.max_headers, 1000);
  conf.merge_slashes.merge(prev.merge_slashes, true);
  conf.underscores_in_headers.merge(prev.underscores_in_headers, false);
  return {};
}

L* create_loc_conf(ConfContext& cf) {
  auto* clcf = cf.pool.make<L>();
  clcf->node = cf.node;
  return clcf;
}

// prev is not const: the parent keeps the types map it builds here, so that children share it.
// The default file cache's bounds, per worker: entries, seconds unused before one goes, and bytes
// of small files' content kept.
constexpr size_t kAutoFileCacheMax = 1000;
constexpr time_t kAutoFileCacheInactive = 60;
constexpr size_t kAutoFileCacheContent = 8 << 20;

Status merge_loc_conf(ConfContext& cf, L& prev, L& conf) {
  if (!conf.root_set) {
    if (prev.root_set) {
      conf.root = prev.root;
      conf.alias = prev.alias;
      conf.alias_prefix_len = prev.alias_prefix_len;
      conf.root_values = prev.root_values;
    } else {
      conf.root = cf.full_name("html");
      conf.alias = false;
    }
    conf.root_set = true;
  }

  if (conf.types == nullptr) {
    if (prev.types == nullptr) {
      // nginx's built-in types when the http level has none.
      auto* map = cf.pool.make<TypesMap>();
      map->add("gif", "image/gif");
      map->add("html", "text/html");
      map->add("jpg", "image/jpeg");
      prev.types = map;
    }
    conf.types = prev.types;
  }
  conf.default_type.merge(prev.default_type, "text/plain");
  conf.post_action.merge(prev.post_action, "");

  conf.client_max_body_size.merge(prev.client_max_body_size, 1024 * 1024);
  conf.client_body_buffer_size.merge(prev.client_body_buffer_size, 2 * 8192);
  conf.client_body_in_single_buffer.merge(prev.client_body_in_single_buffer, false);
  conf.client_body_in_file_only.merge(prev.client_body_in_file_only, BodyInFileOnly::Off);
  TempPath body_temp;
  body_temp.name = cf.full_name(WEIR_CLIENT_BODY_TEMP_PATH);
  conf.client_body_temp_path.merge(prev.client_body_temp_path, body_temp);
  if (Status s = cf.cycle.add_path(&conf.client_body_temp_path.value); !s.ok())
    return cf.error(s.message());
  conf.client_body_timeout.merge(prev.client_body_timeout, 60000);
  conf.client_body_min_rate.merge(prev.client_body_min_rate, 0);
  conf.subrequest_output_buffer_size.merge(prev.subrequest_output_buffer_size, 4096);
  conf.send_timeout.merge(prev.send_timeout, 60000);
  if (conf.resolver == nullptr) conf.resolver = prev.resolver;
  conf.keepalive_timeout.merge(prev.keepalive_timeout, 75000);
  conf.keepalive_header.merge(prev.keepalive_header, 0);
  conf.keepalive_requests.merge(prev.keepalive_requests, 1000);
  conf.keepalive_time.merge(prev.keepalive_time, 3600000);
  conf.keepalive_disable.merge(prev.keepalive_disable, kKeepaliveDisableMsie6);
  conf.lingering_time.merge(prev.lingering_time, 30000);
  conf.lingering_timeout.merge(prev.lingering_timeout, 5000);
  conf.lingering_close.merge(prev.lingering_close, LingeringClose::On);
  conf.reset_timedout_connection.merge(prev.reset_timedout_connection, false);
  conf.resolver_timeout.merge(prev.resolver_timeout, 30000);
  conf.auth_delay.merge(prev.auth_delay, 0);

  conf.sendfile.merge(prev.sendfile, false);
  conf.sendfile_max_chunk.merge(prev.sendfile_max_chunk, 2 * 1024 * 1024);
  conf.tcp_nopush.merge(prev.tcp_nopush, false);
  conf.tcp_nodelay.merge(prev.tcp_nodelay, true);
  conf.postpone_output.merge(prev.postpone_output, 1460);
  if (!conf.limit_rate.set && conf.limit_rate_values == nullptr) {
    conf.limit_rate_values = prev.limit_rate_values;
  }
  conf.limit_rate.merge(prev.limit_rate, 0);
  if (!conf.limit_rate_after.set && conf.limit_rate_after_values == nullptr) {
    conf.limit_rate_after_values = prev.limit_rate_after_values;
  }
  conf.limit_rate_after.merge(prev.limit_rate_after, 0);
  conf.directio.merge(prev.directio, -1);
  conf.directio_alignment.merge(prev.directio_alignment, 512);
  if (!conf.aio.set) {
    conf.thread_pool = prev.thread_pool;
    conf.thread_pool_value = prev.thread_pool_value;
  }
  conf.aio.merge(prev.aio, AioMode::Off);
  // aio on reads directio files asynchronously (nginx: Linux's native AIO): here in the default
  // thread pool. Without directio it reads as off does, as on Linux.
  if (*conf.aio == AioMode::On && *conf.directio >= 0 && conf.thread_pool == nullptr) {
    conf.thread_pool = add_thread_pool(cf, "");
  }
  conf.aio_write.merge(prev.aio_write, false);
  conf.read_ahead.merge(prev.read_ahead, 0);

  conf.internal.merge({}, false);  // never inherited
  conf.absolute_redirect.merge(prev.absolute_redirect, true);
  conf.gzip_vary.merge(prev.gzip_vary, false);
  conf.gzip_http_version.merge(prev.gzip_http_version, 1001);
  conf.gzip_proxied.merge(prev.gzip_proxied, kGzipProxiedOff);
  conf.gzip_disable_msie6.merge(prev.gzip_disable_msie6, false);
  if (conf.gzip_disable == nullptr) conf.gzip_disable = prev.gzip_disable;
  conf.server_name_in_redirect.merge(prev.server_name_in_redirect, false);
  conf.port_in_redirect.merge(prev.port_in_redirect, true);
  conf.msie_padding.merge(prev.msie_padding, true);
  conf.msie_refresh.merge(prev.msie_refresh, false);
  conf.log_not_found.merge(prev.log_not_found, true);
  conf.log_subrequest.merge(prev.log_subrequest, false);
  conf.recursive_error_pages.merge(prev.recursive_error_pages, false);
  conf.server_tokens.merge(prev.server_tokens, ServerTokens::On);
  conf.chunked_transfer_encoding.merge(prev.chunked_transfer_encoding, true);
  conf.etag.merge(prev.etag, true);
  conf.if_modified_since.merge(prev.if_modified_since, IfModifiedSince::Exact);
  conf.max_ranges.merge(prev.max_ranges, UINT64_MAX);
  conf.satisfy.merge(prev.satisfy, 0);

  if (!conf.error_pages_set && prev.error_pages_set) {
    conf.error_pages = prev.error_pages;
    conf.error_pages_set = true;
  }
  if (!conf.open_file_cache_set) {
    conf.open_file_cache = prev.open_file_cache;
    conf.open_file_cache_set = prev.open_file_cache_set;
  }
  conf.open_file_cache_valid.merge(prev.open_file_cache_valid, 60);
  conf.open_file_cache_min_uses.merge(prev.open_file_cache_min_uses, 1);
  conf.open_file_cache_errors.merge(prev.open_file_cache_errors, false);
  conf.disable_symlinks.merge(prev.disable_symlinks, SymlinkRule::Off);
  conf.disable_symlinks_from.merge(prev.disable_symlinks_from, nullptr);
  conf.open_file_cache_events.merge(prev.open_file_cache_events, false);
  conf.open_file_cache_auto.merge(prev.open_file_cache_auto, true);
  if (!conf.open_file_cache_set && *conf.open_file_cache_auto) {
    M& cmcf = core_main_conf(cf);
    if (cmcf.auto_file_cache == nullptr) {
      cmcf.auto_file_cache = cf.pool.make<OpenFileCache>(kAutoFileCacheMax, kAutoFileCacheInactive,
                                                         kAutoFileCacheContent, &cf.cycle.log);
    }
    conf.open_file_cache = cmcf.auto_file_cache;
  }
  if (conf.error_log == nullptr) conf.error_log = prev.error_log;
  if (conf.error_log == nullptr) conf.error_log = cf.cycle.log_sink;
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::num<&M::variables_hash_max_size>>("variables_hash_max_size",
                                                      kHttpMainConf | kTake1),
    directive<slot::num<&M::variables_hash_bucket_size>>("variables_hash_bucket_size",
                                                         kHttpMainConf | kTake1),
    directive<slot::num<&M::server_names_hash_max_size>>("server_names_hash_max_size",
                                                         kHttpMainConf | kTake1),
    directive<slot::num<&M::server_names_hash_bucket_size>>("server_names_hash_bucket_size",
                                                            kHttpMainConf | kTake1),
    directive<server_block>("server", kHttpMainConf | kBlock | kNoArgs),
    directive<slot::pool_size<&S::connection_pool_size>>("connection_pool_size",
                                                         kHttpMainSrv | kTake1),
    directive<slot::pool_size<&S::request_pool_size>>("request_pool_size", kHttpMainSrv | kTake1),
    directive<slot::msec<&S::client_header_timeout>>("client_header_timeout",
                                                     kHttpMainSrv | kTake1),
    directive<slot::size<&S::client_header_buffer_size>>("client_header_buffer_size",
                                                         kHttpMainSrv | kTake1),
    directive<slot::bufs<&S::large_client_header_buffers>>("large_client_header_buffers",
                                                           kHttpMainSrv | kTake2),
    directive<slot::flag<&S::ignore_invalid_headers>>("ignore_invalid_headers",
                                                      kHttpMainSrv | kFlag),
    directive<slot::num<&S::max_headers>>("max_headers", kHttpMainSrv | kTake1),
    directive<slot::flag<&S::merge_slashes>>("merge_slashes", kHttpMainSrv | kFlag),
    directive<slot::flag<&S::underscores_in_headers>>("underscores_in_headers",
                                                      kHttpMainSrv | kFlag),
    directive<location_block>("location", kHttpSrvConf | kHttpLocConf | kBlock | kTake12),
    directive<listen_directive>("listen", kHttpSrvConf | kOneMore),
    directive<server_name_directive>("server_name", kHttpSrvConf | kOneMore),
    directive<accept_number>("types_hash_max_size", kHttpMainSrvLoc | kTake1),
    directive<accept_number>("types_hash_bucket_size", kHttpMainSrvLoc | kTake1),
    directive<set_types>("types", kHttpMainSrvLoc | kBlock | kNoArgs),
    directive<slot::str<&L::default_type>>("default_type", kHttpMainSrvLoc | kTake1),
    directive<set_root>("root", kHttpMainSrvLocLif | kTake1),
    directive<set_root>("alias", kHttpLocConf | kTake1),
    directive<limit_except_block>("limit_except", kHttpLocConf | kBlock | kOneMore),
    directive<slot::offset<&L::client_max_body_size>>("client_max_body_size",
                                                      kHttpMainSrvLoc | kTake1),
    directive<slot::size<&L::client_body_buffer_size>>("client_body_buffer_size",
                                                       kHttpMainSrvLoc | kTake1),
    directive<slot::msec<&L::client_body_timeout>>("client_body_timeout", kHttpMainSrvLoc | kTake1),
    directive<slot::size<&L::client_body_min_rate>>("client_body_min_rate",
                                                    kHttpMainSrvLoc | kTake1),
    directive<slot::size<&L::subrequest_output_buffer_size>>("subrequest_output_buffer_size",
                                                             kHttpMainSrvLoc | kTake1),
    directive<slot::path<&L::client_body_temp_path>>("client_body_temp_path",
                                                     kHttpMainSrvLoc | kTake1234),
    directive<slot::enum_<&L::client_body_in_file_only, kBodyInFile>>("client_body_in_file_only",
                                                                      kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&L::client_body_in_single_buffer>>("client_body_in_single_buffer",
                                                            kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::sendfile>>("sendfile", kHttpMainSrvLocLif | kFlag),
    directive<slot::size<&L::sendfile_max_chunk>>("sendfile_max_chunk", kHttpMainSrvLoc | kTake1),
    directive<slot::size<&L::read_ahead>>("read_ahead", kHttpMainSrvLoc | kTake1),
    directive<set_aio>("aio", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&L::aio_write>>("aio_write", kHttpMainSrvLoc | kFlag),
    directive<set_directio>("directio", kHttpMainSrvLoc | kTake1),
    directive<set_directio_alignment>("directio_alignment", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&L::tcp_nopush>>("tcp_nopush", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::tcp_nodelay>>("tcp_nodelay", kHttpMainSrvLoc | kFlag),
    directive<slot::msec<&L::send_timeout>>("send_timeout", kHttpMainSrvLoc | kTake1),
    directive<slot::send_lowat<&L::send_lowat>>("send_lowat", kHttpMainSrvLoc | kTake1),
    directive<slot::str<&L::post_action>>("post_action", kHttpMainSrvLoc | kHttpLifConf | kTake1),
    directive<set_resolver>("resolver", kHttpMainSrvLoc | kOneMore),
    directive<slot::msec<&L::resolver_timeout>>("resolver_timeout", kHttpMainSrvLoc | kTake1),
    directive<slot::size<&L::postpone_output>>("postpone_output", kHttpMainSrvLoc | kTake1),
    directive<set_rate<&L::limit_rate, &L::limit_rate_values>>("limit_rate",
                                                               kHttpMainSrvLocLif | kTake1),
    directive<set_rate<&L::limit_rate_after, &L::limit_rate_after_values>>(
        "limit_rate_after", kHttpMainSrvLocLif | kTake1),
    directive<slot::msec<&L::keepalive_time>>("keepalive_time", kHttpMainSrvLoc | kTake1),
    directive<set_keepalive>("keepalive_timeout", kHttpMainSrvLoc | kTake12),
    directive<slot::num<&L::keepalive_requests>>("keepalive_requests", kHttpMainSrvLoc | kTake1),
    directive<slot::bitmask<&L::keepalive_disable, kKeepaliveDisableNames>>(
        "keepalive_disable", kHttpMainSrvLoc | kTake12),
    directive<set_disable_symlinks_directive>("disable_symlinks", kHttpMainSrvLoc | kTake12),
    directive<slot::enum_<&L::satisfy, kSatisfy>>("satisfy", kHttpMainSrvLoc | kTake1),
    directive<slot::msec<&L::auth_delay>>("auth_delay", kHttpMainSrvLoc | kTake1),
    directive<set_internal>("internal", kHttpLocConf | kNoArgs),
    directive<slot::enum_<&L::lingering_close, kLingering>>("lingering_close",
                                                            kHttpMainSrvLoc | kTake1),
    directive<slot::msec<&L::lingering_time>>("lingering_time", kHttpMainSrvLoc | kTake1),
    directive<slot::msec<&L::lingering_timeout>>("lingering_timeout", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&L::reset_timedout_connection>>("reset_timedout_connection",
                                                         kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::absolute_redirect>>("absolute_redirect", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::gzip_vary>>("gzip_vary", kHttpMainSrvLoc | kFlag),
    directive<set_gzip_http_version>("gzip_http_version", kHttpMainSrvLoc | kTake1),
    directive<slot::bitmask<&L::gzip_proxied, kGzipProxiedNames>>("gzip_proxied",
                                                                  kHttpMainSrvLoc | kOneMore),
    directive<set_gzip_disable>("gzip_disable", kHttpMainSrvLoc | kOneMore),
    directive<slot::flag<&L::server_name_in_redirect>>("server_name_in_redirect",
                                                       kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::port_in_redirect>>("port_in_redirect", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::msie_padding>>("msie_padding", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::msie_refresh>>("msie_refresh", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::log_not_found>>("log_not_found", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::log_subrequest>>("log_subrequest", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::recursive_error_pages>>("recursive_error_pages",
                                                     kHttpMainSrvLoc | kFlag),
    directive<slot::enum_<&L::server_tokens, kServerTokens>>("server_tokens",
                                                             kHttpMainSrvLoc | kTake1),
    directive<slot::enum_<&L::if_modified_since, kIms>>("if_modified_since",
                                                        kHttpMainSrvLoc | kTake1),
    directive<slot::num<&L::max_ranges>>("max_ranges", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&L::chunked_transfer_encoding>>("chunked_transfer_encoding",
                                                         kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::etag>>("etag", kHttpMainSrvLoc | kFlag),
    directive<set_error_page>("error_page", kHttpMainSrvLocLif | kTwoMore),
    directive<set_try_files>("try_files", kHttpSrvConf | kHttpLocConf | kTwoMore),
    directive<set_error_log>("error_log", kHttpMainSrvLoc | kOneMore),
    directive<set_open_file_cache>("open_file_cache", kHttpMainSrvLoc | kTake12),
    directive<slot::sec<&L::open_file_cache_valid>>("open_file_cache_valid",
                                                    kHttpMainSrvLoc | kTake1),
    directive<slot::num<&L::open_file_cache_min_uses>>("open_file_cache_min_uses",
                                                       kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&L::open_file_cache_errors>>("open_file_cache_errors",
                                                      kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::open_file_cache_events>>("open_file_cache_events",
                                                      kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&L::open_file_cache_auto>>("open_file_cache_auto",
                                                    kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_core_module));

}  // namespace

Module http_core_module{
    .name = "http_core",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = add_core_variables,
    .create_main_conf = create_conf<create_main_conf>,
    .init_main_conf = init_conf<init_main_conf>,
    .create_srv_conf = create_conf<create_srv_conf>,
    .merge_srv_conf = merge_conf<merge_srv_conf>,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

void init_open_file_info(const Request& r, const CoreLocConf& clcf, OpenFileInfo& of) {
  of.arrived_ns = r.connection->rx_ns;
  of.valid = *clcf.open_file_cache_valid;
  of.min_uses = static_cast<unsigned>(*clcf.open_file_cache_min_uses);
  of.errors = *clcf.open_file_cache_errors;
}

void set_symlinks_from(Request& r, const CoreLocConf& clcf, std::string_view path,
                       OpenFileInfo& of) {
  std::string_view from = (*clcf.disable_symlinks_from)->eval(r);
  if (from.empty() || !path.starts_with(from)) return;
  if (from.size() == path.size()) {
    of.symlinks = SymlinkRule::Off;  // the path is the part from= trusts
  } else if (path[from.size()] == '/') {
    of.symlinks_from = from.size();
  } else if (from.back() == '/') {
    of.symlinks_from = from.size() - 1;
  }
}

}  // namespace weir::http
