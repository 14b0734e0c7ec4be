// map: a variable whose value depends on another value ("map $http_host $site { ... }"): exact keys
// (case-blind), with `hostnames` also "*.example.com", ".example.com" and "www.example.*" forms,
// then regexes in the order written ("~" and case-blind "~*", captures usable in the value), then
// `default` (empty when there is none). Values may hold variables; `volatile` evaluates the map on
// every use. An empty source value always takes the default, as in nginx. The source is evaluated
// only when the variable is used. nginx: src/http/modules/ngx_http_map_module.c
#include <memory>
#include <string>
#include <vector>

#include "core/host_names.h"
#include "core/str.h"
#include "core/string_table.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_map_module;

namespace {

struct MapRegex {
  HttpRegex re;
  const ComplexValue* value = nullptr;
};

struct Map {
  ComplexValue source;
  bool hostnames = false;
  // Lower-case keys, looked up by a view of the lower-cased value (no string built per lookup).
  StringTable<const ComplexValue*> exact;
  HostNames<const ComplexValue*> names;  // with `hostnames`
  std::vector<std::unique_ptr<MapRegex>> regexes;
  const ComplexValue* default_value = nullptr;
};

struct MapMainConf {
  static constexpr Module* kModule = &http_map_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  std::vector<std::unique_ptr<Map>> maps;
  std::vector<std::unique_ptr<ComplexValue>> values;
  Setting<size_t> hash_max_size;  // weir's map tables have no such bound: taken for nginx's sake
  Setting<size_t> hash_bucket_size;
};

// An empty value is looked up among the exact keys (`"" value;`, as Nextcloud's configuration has),
// never matched against the regexes: nginx's order.
const ComplexValue* find_value(Request& r, const Map& m, std::string_view key) {
  if (!m.hostnames) {
    if (const ComplexValue* const* v = m.exact.find_caseless(key)) return *v;
  } else {
    char small[256];  // most keys: no allocation
    char* low = key.size() <= sizeof small ? small : r.pool->alloc_bytes(key.size());
    lowercase_into(low, key);
    if (const ComplexValue* const* v = m.names.find({low, key.size()})) return *v;
  }
  if (key.empty()) return nullptr;
  for (const auto& re : m.regexes) {
    if (regex_exec(r, re->re, key)) return re->value;
  }
  return nullptr;
}

void map_variable(Request& r, VariableValue& v, uintptr_t data) {
  const Map& m = *reinterpret_cast<const Map*>(data);
  std::string_view key = m.source.eval(r);
  if (m.hostnames && !key.empty() && key.back() == '.') key.remove_suffix(1);
  const ComplexValue* value = find_value(r, m, key);
  if (value == nullptr) value = m.default_value;
  v.set(value != nullptr ? value->eval(r) : std::string_view{});
}

// One line of a map block.
Status map_line(ConfContext& cf, const ConfNode& line, Map& m, MapMainConf& mcf) {
  ConfContext at = cf;
  at.node = &line;
  if (line.block) return at.error("unexpected \"{\"");
  if (line.args.size() == 1 && line.args[0] == "hostnames") {
    m.hostnames = true;
    return {};
  }
  if (line.args.size() == 1 && line.args[0] == "volatile") return {};  // read by map_block
  if (line.args.size() != 2) return at.error("invalid number of the map parameters");
  auto value = std::make_unique<ComplexValue>();
  if (Status s = value->compile(at, line.args[1]); !s.ok()) return s;
  const ComplexValue* v = value.get();
  mcf.values.push_back(std::move(value));
  std::string_view key = line.args[0];
  if (key == "default") {
    if (m.default_value != nullptr) return at.error("duplicate default map parameter");
    m.default_value = v;
    return {};
  }
  if (key.starts_with('~')) {
    key.remove_prefix(1);
    bool caseless = key.starts_with('*');
    if (caseless) key.remove_prefix(1);
    auto re = std::make_unique<MapRegex>();
    if (Status s = compile_http_regex(at, re->re, key, caseless); !s.ok()) return s;
    re->value = v;
    m.regexes.push_back(std::move(re));
    return {};
  }
  if (key.starts_with('\\')) key.remove_prefix(1);  // a key that would read as a keyword
  std::string lower = lowercased(key);
  bool added;
  if (m.hostnames) {
    auto result = m.names.add_configured(lower, v);
    if (result == HostNames<const ComplexValue*>::Added::Invalid) {
      return at.errorf("invalid hostname or wildcard \"%.*s\"", static_cast<int>(key.size()),
                       key.data());
    }
    added = result == HostNames<const ComplexValue*>::Added::Ok;
  } else {
    added = m.exact.add(lower, v);
  }
  if (!added) {
    return at.errorf("conflicting parameter \"%s\"", lower.c_str());
  }
  return {};
}

// map $source $variable { ... }
Status map_block(ConfContext& cf, const ConfNode& n, MapMainConf& mcf) {
  auto m = std::make_unique<Map>();
  if (Status s = m->source.compile(cf, n.args[1]); !s.ok()) return s;
  std::string_view name = n.args[2];
  if (!name.starts_with('$')) {
    return cf.errorf("invalid variable name \"%s\"", n.args[2].c_str());
  }
  name.remove_prefix(1);
  bool volatile_ = false;
  for (const ConfNode& line : n.children) {
    if (line.args.size() == 1 && line.args[0] == "volatile") volatile_ = true;
    if (Status s = map_line(cf, line, *m, mcf); !s.ok()) return s;
  }
  m->names.build();
  uint32_t flags = kVarChangeable | (volatile_ ? uint32_t{kVarNoCacheable} : 0u);
  if (Status s = add_variable(cf, name, flags, map_variable, reinterpret_cast<uintptr_t>(m.get()));
      !s.ok()) {
    return s;
  }
  mcf.maps.push_back(std::move(m));
  return {};
}

MapMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<MapMainConf>();
}

constexpr Directive kDirectives[] = {
    directive<map_block>("map", kHttpMainConf | kBlock | kTake2),
    directive<slot::num<&MapMainConf::hash_max_size>>("map_hash_max_size", kHttpMainConf | kTake1),
    directive<slot::num<&MapMainConf::hash_bucket_size>>("map_hash_bucket_size",
                                                         kHttpMainConf | kTake1),
};
static_assert(directives_of(kDirectives, &http_map_module));

}  // namespace

Module http_map_module{
    .name = "http_map",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
};

}  // namespace weir::http
