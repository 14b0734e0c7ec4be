// geoip2 (the third-party ngx_http_geoip2_module 3.4, Debian's libnginx-mod-http-geoip2): variables
// from MaxMind DB files (GeoLite2, GeoIP2, DB-IP ...) with libmaxminddb.
//   geoip2 /path/db.mmdb {
//       auto_reload 60m;
//       $geoip2_country_code default=XX source=$arg_ip country iso_code;
//       $geoip2_build metadata build_epoch;
//   }
//   geoip2_proxy 10.0.0.0/8; geoip2_proxy_recursive on;
// A variable is the value at its path in the record of the client's address - or of source's, or
// of the address trusted proxies name in X-Forwarded-For - as text (numbers as the module prints
// them), else its default, else not found. auto_reload re-opens a file that changed, checked after
// a request at most once per interval. https://github.com/leev/ngx_http_geoip2_module
#include <arpa/inet.h>
#include <maxminddb.h>
#include <sys/stat.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/cidr.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/forwarded_addr.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_geoip2_module;

namespace {

struct Database {
  MMDB_s mmdb{};
  bool open = false;
  time_t check_interval = 0;  // auto_reload, seconds (0: never)
  time_t last_check = 0;
  time_t last_change = 0;
  // The last address looked up and what it found: the variables of one request share a lookup.
  bool cached = false;
  uint8_t address[16] = {};
  MMDB_lookup_result_s result{};

  ~Database() {
    if (open) MMDB_close(&mmdb);
  }
};

struct Geoip2MainConf {
  static constexpr Module* kModule = &http_geoip2_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  std::vector<std::unique_ptr<Database>> databases;
  std::vector<Cidr> proxies;
  Setting<bool> proxy_recursive;  // off when not set
};

struct DataVar {
  Database* db = nullptr;
  std::vector<std::string> path;
  std::vector<const char*> lookup;  // path's strings, then nullptr (MMDB_aget_value's)
  std::string default_value;
  ComplexValue* source = nullptr;
};

struct MetaVar {
  Database* db = nullptr;
  std::string what;  // build_epoch, last_check or last_change
};

const Geoip2MainConf& geoip2_conf(Request& r) {
  return r.main_cf<Geoip2MainConf>();
}

// An address literal, IPv4 or IPv6, no port (nginx's ngx_parse_addr).
bool parse_address(std::string_view text, SockAddr& out) {
  std::string s(text);
  out = SockAddr{};
  auto* in = reinterpret_cast<sockaddr_in*>(out.sa());
  if (inet_pton(AF_INET, s.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    out.len = sizeof(sockaddr_in);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out.sa());
  if (inet_pton(AF_INET6, s.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    out.len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// The address to look up: source's, or the client's (or the one trusted proxies name).
bool lookup_address(Request& r, const DataVar& var, SockAddr& addr) {
  if (var.source != nullptr) return parse_address(var.source->eval(r), addr);
  const Geoip2MainConf& conf = geoip2_conf(r);
  addr = client_address(r, conf.proxies, *conf.proxy_recursive);
  return true;
}

// The record for addr, from the database's last lookup when it was the same address.
const MMDB_lookup_result_s* lookup(Database& db, const SockAddr& addr) {
  uint8_t key[16] = {};
  const sockaddr* sa = addr.sa();
  if (sa->sa_family == AF_INET) {
    std::memcpy(key + 12, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    std::memcpy(key, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
  } else {
    return nullptr;
  }
  if (db.cached && std::memcmp(key, db.address, sizeof key) == 0) return &db.result;
  int error = MMDB_SUCCESS;
  MMDB_lookup_result_s result = MMDB_lookup_sockaddr(&db.mmdb, sa, &error);
  if (error != MMDB_SUCCESS) {
    db.cached = false;
    return nullptr;
  }
  std::memcpy(db.address, key, sizeof key);
  db.result = result;
  db.cached = true;
  return &db.result;
}

// A value as the module prints it: numbers with nginx's ngx_sprintf formats.
std::string_view format(Request& r, const MMDB_entry_data_s& d) {
  char buf[48];
  char* p = buf;
  switch (d.type) {
    case MMDB_DATA_TYPE_BOOLEAN:
      p = put_uint(buf, d.boolean ? 1 : 0);
      break;
    case MMDB_DATA_TYPE_UTF8_STRING:
      return r.pool->dup({d.utf8_string, d.data_size});
    case MMDB_DATA_TYPE_BYTES:
      return r.pool->dup({reinterpret_cast<const char*>(d.bytes), d.data_size});
    case MMDB_DATA_TYPE_FLOAT:
      p = put_fixed(buf, d.float_value, 5);
      break;
    case MMDB_DATA_TYPE_DOUBLE:
      p = put_fixed(buf, d.double_value, 5);
      break;
    case MMDB_DATA_TYPE_UINT16:
      p = put_uint(buf, d.uint16);
      break;
    case MMDB_DATA_TYPE_UINT32:
      p = put_uint(buf, d.uint32);
      break;
    case MMDB_DATA_TYPE_INT32:
      p = put_int(buf, d.int32);
      break;
    case MMDB_DATA_TYPE_UINT64:
      p = put_uint(buf, d.uint64);
      break;
    case MMDB_DATA_TYPE_UINT128: {
#if MMDB_UINT128_IS_BYTE_ARRAY
      const uint8_t* b = d.uint128;
      p += std::snprintf(buf, sizeof buf, "0x");
      for (int i = 0; i < 16; i++) p += std::snprintf(p, 3, "%02x", b[i]);
#else
      p += std::snprintf(buf, sizeof buf, "0x%016" PRIx64 "%016" PRIx64,
                         static_cast<uint64_t>(d.uint128 >> 64), static_cast<uint64_t>(d.uint128));
#endif
      break;
    }
    default:
      return {};  // maps and arrays have no text
  }
  return r.pool->dup({buf, static_cast<size_t>(p - buf)});
}

void var_data(Request& r, VariableValue& v, uintptr_t data) {
  const auto& var = *reinterpret_cast<const DataVar*>(data);
  auto not_found = [&] {
    if (var.default_value.empty()) return v.set_not_found();
    v.set(var.default_value);
  };
  SockAddr addr;
  if (!lookup_address(r, var, addr)) return not_found();
  const MMDB_lookup_result_s* result = lookup(*var.db, addr);
  if (result == nullptr || !result->found_entry) return not_found();
  MMDB_entry_s entry = result->entry;
  MMDB_entry_data_s d{};
  if (MMDB_aget_value(&entry, &d, var.lookup.data()) != MMDB_SUCCESS || !d.has_data) {
    return not_found();
  }
  std::string_view text = format(r, d);
  if (text.data() == nullptr) return not_found();
  v.set(text);
}

void var_metadata(Request& r, VariableValue& v, uintptr_t data) {
  const auto& var = *reinterpret_cast<const MetaVar*>(data);
  uint64_t n;
  if (var.what.starts_with("build_epoch")) {
    n = var.db->mmdb.metadata.build_epoch;
  } else if (var.what.starts_with("last_check")) {
    n = static_cast<uint64_t>(var.db->last_check);
  } else if (var.what.starts_with("last_change")) {
    n = static_cast<uint64_t>(var.db->last_change);
  } else {
    return v.set_not_found();
  }
  char buf[24];
  v.set(r.pool->dup({buf, static_cast<size_t>(put_uint(buf, n) - buf)}));
}

// auto_reload: after a request, a database whose interval has passed is re-opened if its file
// changed (a failed open keeps the old one).
Code reload_handler(Request& r) {
  for (const auto& db : geoip2_conf(r).databases) {
    if (db->check_interval == 0 || db->last_check + db->check_interval > clock::now()) continue;
    db->last_check = clock::now();
    struct stat st;
    if (::stat(db->mmdb.filename, &st) != 0) {
      log_error(LogLevel::Emerg, r.log(), errno, "stat() \"%s\" failed", db->mmdb.filename);
      continue;
    }
    if (st.st_mtime <= db->last_change) continue;
    MMDB_s fresh{};
    if (int status = MMDB_open(db->mmdb.filename, MMDB_MODE_MMAP, &fresh); status != MMDB_SUCCESS) {
      log_error(LogLevel::Error, r.log(), 0, "MMDB_open(\"%s\") failed to reload - %s",
                db->mmdb.filename, MMDB_strerror(status));
      continue;
    }
    db->last_change = st.st_mtime;
    MMDB_close(&db->mmdb);
    db->mmdb = fresh;
    db->cached = false;
    log_error(LogLevel::Info, r.log(), 0, "Reload MMDB \"%s\"", db->mmdb.filename);
  }
  return Rc::Ok;
}

// --- configuration -----------------------------------------------------------------------------

// An error at a line of the block, formatted.
[[gnu::format(printf, 3, 4)]] Status line_error(ConfContext& cf, const ConfNode& line,
                                                const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cf.error_at(line, msg);
}

// "$name [default=v] [source=$var] path ..." or "$name metadata what".
Status add_database_variable(ConfContext& cf, const ConfNode& line, Database& db) {
  std::string name = line.args[0].substr(1);
  if (line.args.size() > 1 && line.args[1] == "metadata") {
    auto* var = cf.pool.make<MetaVar>();
    var->db = &db;
    var->what = line.args.size() > 2 ? line.args[2] : "";
    return add_variable(cf, name, kVarChangeable, var_metadata, reinterpret_cast<uintptr_t>(var));
  }
  auto* var = cf.pool.make<DataVar>();
  var->db = &db;
  size_t i = 1;
  for (; i < line.args.size() && line.args[i].find('=') != std::string::npos; i++) {
    const std::string& a = line.args[i];
    if (a.size() > 8 && a.starts_with("default=")) {
      if (!var->default_value.empty()) {
        return line_error(cf, line, "default has already been declared for  \"$%s\"", name.c_str());
      }
      var->default_value = a.substr(8);
    } else if (a.size() > 7 && a.starts_with("source=")) {
      if (var->source != nullptr) {
        return line_error(cf, line, "source has already been declared for  \"$%s\"", name.c_str());
      }
      std::string source = a.substr(7);
      if (source[0] != '$') {
        return line_error(cf, line, "invalid source variable name \"%s\"", source.c_str());
      }
      var->source = cf.pool.make<ComplexValue>();
      if (!var->source->compile(cf, source).ok()) {
        return line_error(cf, line, "unable to compile \"%s\" for \"$%s\"", source.c_str(),
                          name.c_str());
      }
    } else {
      return line_error(cf, line, "invalid setting \"%s\" for \"$%s\"", a.c_str(), name.c_str());
    }
  }
  var->path.assign(line.args.begin() + static_cast<std::ptrdiff_t>(i), line.args.end());
  for (const std::string& s : var->path) var->lookup.push_back(s.c_str());
  var->lookup.push_back(nullptr);
  return add_variable(cf, name, kVarChangeable, var_data, reinterpret_cast<uintptr_t>(var));
}

// geoip2 file { auto_reload interval; $variable ...; }
Status geoip2_block(ConfContext& cf, const ConfNode& n, Geoip2MainConf& conf) {
  std::string file = n.args[1];
  if (!file.empty() && file[0] != '/') file = cf.full_name(file);
  for (const auto& db : conf.databases) {
    if (file == db->mmdb.filename) return cf.error("Duplicate GeoIP2 mmdb - " + file);
  }
  auto& db = *conf.databases.emplace_back(std::make_unique<Database>());
  db.last_check = db.last_change = clock::now();
  if (int status = MMDB_open(file.c_str(), MMDB_MODE_MMAP, &db.mmdb); status != MMDB_SUCCESS) {
    return cf.error("MMDB_open(\"" + file + "\") failed - " + MMDB_strerror(status));
  }
  db.open = true;
  for (const ConfNode& line : n.children) {
    if (line.args[0].starts_with('$')) {
      if (Status s = add_database_variable(cf, line, db); !s.ok()) return s;
      continue;
    }
    if (line.args[0] == "auto_reload") {
      if (line.args.size() != 2) {
        return cf.error_at(line, "invalid number of arguments for auto_reload");
      }
      std::optional<int64_t> interval = parse_time(line.args[1], true);
      if (!interval) {
        return line_error(cf, line, "invalid interval for auto_reload \"%s\"",
                          line.args[1].c_str());
      }
      db.check_interval = static_cast<time_t>(*interval);
      continue;
    }
    return line_error(cf, line, "invalid setting \"%s\"", line.args[0].c_str());
  }
  return {};
}

Status geoip2_proxy(ConfContext& cf, const ConfNode& n, Geoip2MainConf& conf) {
  return add_trusted_network(cf, n.args[1], conf.proxies);
}

Geoip2MainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<Geoip2MainConf>();
}

Status init(ConfContext& cf) {
  if (cf.configured(http_geoip2_module)) add_phase_handler(cf, Phase::Log, reload_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<geoip2_block>("geoip2", kHttpMainConf | kBlock | kTake1),
    directive<geoip2_proxy>("geoip2_proxy", kHttpMainConf | kTake1),
    directive<slot::flag<&Geoip2MainConf::proxy_recursive>>("geoip2_proxy_recursive",
                                                            kHttpMainConf | kFlag),
};
static_assert(directives_of(kDirectives, &http_geoip2_module));

}  // namespace

Module http_geoip2_module{
    .name = "http_geoip2",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
