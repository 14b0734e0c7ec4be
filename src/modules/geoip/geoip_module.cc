// geoip (ngx_http_geoip_module, Debian's libnginx-mod-http-geoip): variables from MaxMind's legacy
// GeoIP databases, looked up by the client's address - or, from geoip_proxy's trusted proxies, by
// the address X-Forwarded-For names (geoip_proxy_recursive past every trusted one).
//   geoip_country file [utf8]: $geoip_country_code, $geoip_country_code3, $geoip_country_name
//   geoip_org file [utf8]:     $geoip_org
//   geoip_city file [utf8]:    $geoip_city, $geoip_city_country_code, $geoip_region,
//   $geoip_latitude
//                              ... (the GeoIPRecord's fields)
// A database is opened at load, into memory (GEOIP_MEMORY_CACHE), and must be of the directive's
// kind: IPv4 or IPv6 editions (an IPv4 client is looked up in an IPv6 database as IPv4-mapped).
// nginx: src/http/modules/ngx_http_geoip_module.c
#include <GeoIP.h>
#include <GeoIPCity.h>
#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/cidr.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/forwarded_addr.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_geoip_module;

namespace {

struct GeoipDelete {
  void operator()(GeoIP* g) const { GeoIP_delete(g); }
};

// One database and whether it is an IPv6 edition.
struct Database {
  std::unique_ptr<GeoIP, GeoipDelete> db;
  bool v6 = false;
};

struct GeoipMainConf {
  static constexpr Module* kModule = &http_geoip_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  Database country;
  Database org;
  Database city;
  std::vector<Cidr> proxies;
  Setting<bool> proxy_recursive;  // off when not set
};

// The address to look up: the client's, or the one trusted proxies name.
SockAddr lookup_address(Request& r, const GeoipMainConf& conf) {
  return client_address(r, conf.proxies, *conf.proxy_recursive);
}

// As an IPv4 database takes it: an IPv4-mapped IPv6 address as IPv4, any other as INADDR_NONE.
unsigned long ipv4_of(const SockAddr& addr) {
  const sockaddr* sa = addr.sa();
  if (sa->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(reinterpret_cast<const in6_addr*>(a))) {
      return uint32_t{a[12]} << 24 | uint32_t{a[13]} << 16 | uint32_t{a[14]} << 8 | a[15];
    }
  }
  if (sa->sa_family != AF_INET) return INADDR_NONE;
  return ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
}

// As an IPv6 database takes it: an IPv4 address IPv4-mapped, any other family as ::.
geoipv6_t ipv6_of(const SockAddr& addr) {
  const sockaddr* sa = addr.sa();
  geoipv6_t out{};
  if (sa->sa_family == AF_INET) {
    out.s6_addr[10] = out.s6_addr[11] = 0xff;
    std::memcpy(out.s6_addr + 12, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    out = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
  }
  return out;
}

const GeoipMainConf& geoip_conf(Request& r) {
  return r.main_cf<GeoipMainConf>();
}

enum CountryField : uintptr_t { kCode, kCode3, kName };

void var_country(Request& r, VariableValue& v, uintptr_t field) {
  const GeoipMainConf& conf = geoip_conf(r);
  GeoIP* db = conf.country.db.get();
  if (db == nullptr) return v.set_not_found();
  SockAddr addr = lookup_address(r, conf);
  const char* value;
  if (conf.country.v6) {
    geoipv6_t a = ipv6_of(addr);
    value = field == kCode    ? GeoIP_country_code_by_ipnum_v6(db, a)
            : field == kCode3 ? GeoIP_country_code3_by_ipnum_v6(db, a)
                              : GeoIP_country_name_by_ipnum_v6(db, a);
  } else {
    unsigned long a = ipv4_of(addr);
    value = field == kCode    ? GeoIP_country_code_by_ipnum(db, a)
            : field == kCode3 ? GeoIP_country_code3_by_ipnum(db, a)
                              : GeoIP_country_name_by_ipnum(db, a);
  }
  if (value == nullptr) return v.set_not_found();
  v.set(value);  // the library's own tables
}

// A string the library allocated, copied into the request and freed.
void set_owned(Request& r, VariableValue& v, char* value) {
  v.set(r.pool->dup(value));
  std::free(value);
}

void var_org(Request& r, VariableValue& v, uintptr_t) {
  const GeoipMainConf& conf = geoip_conf(r);
  GeoIP* db = conf.org.db.get();
  if (db == nullptr) return v.set_not_found();
  SockAddr addr = lookup_address(r, conf);
  char* value = conf.org.v6 ? GeoIP_name_by_ipnum_v6(db, ipv6_of(addr))
                            : GeoIP_name_by_ipnum(db, ipv4_of(addr));
  if (value == nullptr) return v.set_not_found();
  set_owned(r, v, value);
}

struct RecordDelete {
  void operator()(GeoIPRecord* g) const { GeoIPRecord_delete(g); }
};
using Record = std::unique_ptr<GeoIPRecord, RecordDelete>;

Record city_record(Request& r) {
  const GeoipMainConf& conf = geoip_conf(r);
  GeoIP* db = conf.city.db.get();
  if (db == nullptr) return nullptr;
  SockAddr addr = lookup_address(r, conf);
  return Record(conf.city.v6 ? GeoIP_record_by_ipnum_v6(db, ipv6_of(addr))
                             : GeoIP_record_by_ipnum(db, ipv4_of(addr)));
}

// The record's fields, by what they are.
enum class CityField : uintptr_t {
  ContinentCode,
  CountryCode,
  CountryCode3,
  CountryName,
  Region,
  City,
  PostalCode,
  Latitude,
  Longitude,
  DmaCode,
  AreaCode,
  RegionName
};

void var_city(Request& r, VariableValue& v, uintptr_t data) {
  Record rec = city_record(r);
  if (rec == nullptr) return v.set_not_found();
  char buf[64];
  const char* text = nullptr;
  switch (static_cast<CityField>(data)) {
    case CityField::ContinentCode:
      text = rec->continent_code;
      break;
    case CityField::CountryCode:
      text = rec->country_code;
      break;
    case CityField::CountryCode3:
      text = rec->country_code3;
      break;
    case CityField::CountryName:
      text = rec->country_name;
      break;
    case CityField::Region:
      text = rec->region;
      break;
    case CityField::City:
      text = rec->city;
      break;
    case CityField::PostalCode:
      text = rec->postal_code;
      break;
    case CityField::RegionName:
      text = GeoIP_region_name_by_code(rec->country_code, rec->region);
      break;
    case CityField::Latitude:
    case CityField::Longitude:
      *put_fixed(
          buf, data == static_cast<uintptr_t>(CityField::Latitude) ? rec->latitude : rec->longitude,
          4) = '\0';
      text = buf;
      break;
    case CityField::DmaCode:
    case CityField::AreaCode:
      std::snprintf(
          buf, sizeof buf, "%d",
          data == static_cast<uintptr_t>(CityField::DmaCode) ? rec->dma_code : rec->area_code);
      text = buf;
      break;
  }
  if (text == nullptr) return v.set_not_found();
  v.set(r.pool->dup(text));
}

constexpr uintptr_t field(CityField f) {
  return static_cast<uintptr_t>(f);
}

constexpr VariableDef kVars[] = {
    {.name = "geoip_country_code", .get = var_country, .data = kCode},
    {.name = "geoip_country_code3", .get = var_country, .data = kCode3},
    {.name = "geoip_country_name", .get = var_country, .data = kName},
    {.name = "geoip_org", .get = var_org},
    {.name = "geoip_city_continent_code", .get = var_city, .data = field(CityField::ContinentCode)},
    {.name = "geoip_city_country_code", .get = var_city, .data = field(CityField::CountryCode)},
    {.name = "geoip_city_country_code3", .get = var_city, .data = field(CityField::CountryCode3)},
    {.name = "geoip_city_country_name", .get = var_city, .data = field(CityField::CountryName)},
    {.name = "geoip_region", .get = var_city, .data = field(CityField::Region)},
    {.name = "geoip_region_name", .get = var_city, .data = field(CityField::RegionName)},
    {.name = "geoip_city", .get = var_city, .data = field(CityField::City)},
    {.name = "geoip_postal_code", .get = var_city, .data = field(CityField::PostalCode)},
    {.name = "geoip_latitude", .get = var_city, .data = field(CityField::Latitude)},
    {.name = "geoip_longitude", .get = var_city, .data = field(CityField::Longitude)},
    {.name = "geoip_dma_code", .get = var_city, .data = field(CityField::DmaCode)},
    {.name = "geoip_area_code", .get = var_city, .data = field(CityField::AreaCode)},
};

// The editions each directive takes, IPv4 and IPv6.
struct Kind {
  const char* invalid;  // the message's words for a database of another kind
  std::vector<int> v4, v6;
};

Status open_database(ConfContext& cf, const ConfNode& n, Database& d, const Kind& kind) {
  if (d.db != nullptr) return Status::error("is duplicate");
  const std::string& file = n.args[1];
  d.db.reset(GeoIP_open(file.c_str(), GEOIP_MEMORY_CACHE));
  if (d.db == nullptr) return cf.error("GeoIP_open(\"" + file + "\") failed");
  if (n.args.size() == 3) {
    if (n.args[2] != "utf8") return cf.error("invalid parameter \"" + n.args[2] + "\"");
    GeoIP_set_charset(d.db.get(), GEOIP_CHARSET_UTF8);
  }
  int type = GeoIP_database_edition(d.db.get());
  for (int t : kind.v4) {
    if (type == t) return {};
  }
  for (int t : kind.v6) {
    if (type == t) {
      d.v6 = true;
      return {};
    }
  }
  return cf.error(std::string(kind.invalid) + " \"" + file + "\" type:" + std::to_string(type));
}

Status geoip_country(ConfContext& cf, const ConfNode& n, GeoipMainConf& conf) {
  static const Kind kCountry{
      "invalid GeoIP database", {GEOIP_COUNTRY_EDITION}, {GEOIP_COUNTRY_EDITION_V6}};
  return open_database(cf, n, conf.country, kCountry);
}

Status geoip_org(ConfContext& cf, const ConfNode& n, GeoipMainConf& conf) {
  static const Kind kOrg{
      "invalid GeoIP database",
      {GEOIP_ISP_EDITION, GEOIP_ORG_EDITION, GEOIP_DOMAIN_EDITION, GEOIP_ASNUM_EDITION},
      {GEOIP_ISP_EDITION_V6, GEOIP_ORG_EDITION_V6, GEOIP_DOMAIN_EDITION_V6,
       GEOIP_ASNUM_EDITION_V6}};
  return open_database(cf, n, conf.org, kOrg);
}

Status geoip_city(ConfContext& cf, const ConfNode& n, GeoipMainConf& conf) {
  static const Kind kCity{"invalid GeoIP City database",
                          {GEOIP_CITY_EDITION_REV0, GEOIP_CITY_EDITION_REV1},
                          {GEOIP_CITY_EDITION_REV0_V6, GEOIP_CITY_EDITION_REV1_V6}};
  return open_database(cf, n, conf.city, kCity);
}

// geoip_proxy address[/bits]: a trusted proxy ("255.255.255.255" is taken as itself).
Status geoip_proxy(ConfContext& cf, const ConfNode& n, GeoipMainConf& conf) {
  return add_trusted_network(cf, n.args[1], conf.proxies);
}

GeoipMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<GeoipMainConf>();
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

constexpr Directive kDirectives[] = {
    directive<geoip_country>("geoip_country", kHttpMainConf | kTake12),
    directive<geoip_org>("geoip_org", kHttpMainConf | kTake12),
    directive<geoip_city>("geoip_city", kHttpMainConf | kTake12),
    directive<geoip_proxy>("geoip_proxy", kHttpMainConf | kTake1),
    directive<slot::flag<&GeoipMainConf::proxy_recursive>>("geoip_proxy_recursive",
                                                           kHttpMainConf | kFlag),
};
static_assert(directives_of(kDirectives, &http_geoip_module));

}  // namespace

Module http_geoip_module{
    .name = "http_geoip",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_main_conf = create_conf<create_main_conf>,
};

}  // namespace weir::http
