// headers-more (the third-party ngx_http_headers_more_filter_module 0.34, Debian's
// libnginx-mod-http-headers-more-filter): `more_set_headers` and `more_clear_headers` replace,
// add or remove response headers - the Server and Date lines nginx writes itself too - for the
// statuses (-s) and content types (-t) given; a name ending in '*' names every header it begins.
// The outer levels' directives run before the location's. The filter sits where Debian's nginx
// loads the module, right before copy: it runs before add_header's, gzip's and charset's.
// `more_set_input_headers` (-r: only those the request has) and `more_clear_input_headers` change
// the request's headers at the end of the rewrite phase, for -t's request content types, keeping
// nginx's fields (Host's server name, Content-Length, the browser a User-Agent names) in step.
// https://github.com/openresty/headers-more-nginx-module
#include <cctype>
#include <string>
#include <vector>

#include "core/str.h"
#include "http/core_module.h"
#include "http/headers_in.h"
#include "http/script.h"

namespace weir::http {

extern Module http_headers_more_filter_module;

namespace {

// What a response header's name stands for: most are lines of the list; these are nginx's own
// (headers_out's fields), as the module's table has them.
enum class OutKind : uint8_t {
  Plain,
  Builtin,  // a field of HeadersOut: replaced in place, or made and pointed at
  AcceptRanges,
  ContentLength,
  ContentType,
  CacheControl,
};

struct HeaderArg {
  std::string key;
  ComplexValue value;  // empty: clear
  bool clear = false;
  bool wildcard = false;  // key ends in '*': every header it begins
  OutKind kind = OutKind::Plain;
  Header* HeadersOut::*field = nullptr;  // Builtin, AcceptRanges, ContentLength
};

struct Command {
  std::vector<HeaderArg> headers;
  std::vector<std::string> types;
  std::vector<int> statuses;
  bool input = false;         // more_*_input_headers
  bool replace_only = false;  // -r
};

struct HeadersMoreLocConf {
  static constexpr Module* kModule = &http_headers_more_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  std::vector<Command>* cmds = nullptr;
  bool output = false;  // any more_set_headers or more_clear_headers
  bool input = false;   // any of the input ones
};

struct OutName {
  std::string_view name;
  OutKind kind;
  Header* HeadersOut::*field;
};

// The module's table ("E-Tag" is its spelling: an ETag line is a plain one).
constexpr OutName kOutNames[] = {
    {"Server", OutKind::Builtin, &HeadersOut::server},
    {"Date", OutKind::Builtin, &HeadersOut::date},
    {"Content-Encoding", OutKind::Builtin, &HeadersOut::content_encoding},
    {"Location", OutKind::Builtin, &HeadersOut::location},
    {"Refresh", OutKind::Builtin, &HeadersOut::refresh},
    {"Last-Modified", OutKind::Builtin, &HeadersOut::last_modified},
    {"Content-Range", OutKind::Builtin, &HeadersOut::content_range},
    {"Accept-Ranges", OutKind::AcceptRanges, &HeadersOut::accept_ranges},
    {"WWW-Authenticate", OutKind::Builtin, &HeadersOut::www_authenticate},
    {"Expires", OutKind::Builtin, &HeadersOut::expires},
    {"E-Tag", OutKind::Builtin, &HeadersOut::etag},
    {"Content-Length", OutKind::ContentLength, &HeadersOut::content_length},
    {"Content-Type", OutKind::ContentType, nullptr},
    {"Cache-Control", OutKind::CacheControl, &HeadersOut::cache_control},
};

// --- response headers ---------------------------------------------------------------------------

bool key_matches(const HeaderArg& hv, std::string_view key) {
  if (!hv.wildcard) return iequals(key, hv.key);
  std::string_view prefix = std::string_view(hv.key).substr(0, hv.key.size() - 1);
  return key.size() >= prefix.size() && iequals(key.substr(0, prefix.size()), prefix);
}

// Every live line of the name takes the value (the first; the others go), or goes when the value
// is empty; with none, a line is added (an empty one, dead, when no_create is not set: nginx's
// own Last-Modified and the like then know the header was cleared). The line set or made is
// reported through slot.
void set_plain(Request& r, const HeaderArg& hv, std::string_view value, Header** slot,
               bool no_create) {
  HeadersOut& out = r.headers_out;
  bool matched = false;
  for (Header* h : out.headers) {
    if (h->hash == 0 || !key_matches(hv, h->key)) continue;
    if (value.empty() || matched) {
      h->value = {};
      h->hash = 0;
    } else {
      h->value = value;
      h->hash = 1;
    }
    if (slot != nullptr) *slot = h;
    matched = true;
  }
  if (matched || ((hv.wildcard || no_create) && value.empty())) return;
  Header* h = out.headers.push(*r.pool, hv.key, value);
  h->lowcase_key = r.pool->dup(lowercased(hv.key));
  h->hash = value.empty() ? 0 : 1;
  if (slot != nullptr) *slot = h;
}

void set_builtin(Request& r, const HeaderArg& hv, std::string_view value) {
  Header*& slot = r.headers_out.*hv.field;
  if (slot == nullptr) {
    set_plain(r, hv, value, &slot, false);
    return;
  }
  slot->value = value;
  if (value.empty()) {
    slot->hash = 0;
    return;
  }
  slot->key = hv.key;
  slot->hash = 1;
}

// Content-Type: the type and its charset parameter, as nginx keeps them; no line of that name is
// left in the list.
void set_content_type(Request& r, const HeaderArg& hv, std::string_view value) {
  HeadersOut& out = r.headers_out;
  out.content_type = value;
  out.content_type_len = value.size();
  out.content_type_lowcase = {};
  for (size_t i = 0; i < value.size(); i++) {
    if (value[i] != ';') continue;
    size_t last = i;
    size_t p = i + 1;
    while (p < value.size() && value[p] == ' ') p++;
    if (p == value.size()) break;
    if (value.size() - p < 8 || !iequals(value.substr(p, 8), "charset=")) continue;
    p += 8;
    out.content_type_len = last;
    if (p < value.size() && value[p] == '"') p++;
    size_t end = value.size();
    if (end > p && value[end - 1] == '"') end--;
    out.charset = value.substr(p, end > p ? end - p : 0);
    break;
  }
  set_plain(r, hv, {}, nullptr, true);
}

// Cache-Control: the first line takes the value and the others go; with none, one is made.
void set_cache_control(Request& r, const HeaderArg& hv, std::string_view value) {
  HeadersOut& out = r.headers_out;
  if (out.cache_control != nullptr) {
    for (Header* h = out.cache_control->next_same; h != nullptr; h = h->next_same) {
      h->hash = 0;
      h->value = {};
    }
    out.cache_control->value = value;
    out.cache_control->hash = value.empty() ? 0 : 1;
    return;
  }
  // (The module makes an empty line for a clear with none there; weir does not write one.)
  if (value.empty()) return;
  out.cache_control = out.headers.push(*r.pool, "Cache-Control", value);
}

// False: a Content-Length that is no number, which fails the response, as the module's does.
bool set_output(Request& r, const HeaderArg& hv, std::string_view value) {
  switch (hv.kind) {
    case OutKind::Plain:
      set_plain(r, hv, value, nullptr, false);
      return true;
    case OutKind::Builtin:
      set_builtin(r, hv, value);
      return true;
    case OutKind::AcceptRanges:
      if (value.empty()) r.allow_ranges = false;
      set_builtin(r, hv, value);
      return true;
    case OutKind::ContentLength:
      if (value.empty()) {
        r.headers_out.content_length_n = -1;
      } else if (auto n = parse_int(value); n && *n >= 0) {
        r.headers_out.content_length_n = *n;
      } else {
        return false;
      }
      set_builtin(r, hv, value);
      return true;
    case OutKind::ContentType:
      set_content_type(r, hv, value);
      return true;
    case OutKind::CacheControl:
      set_cache_control(r, hv, value);
      return true;
  }
  return true;
}

bool type_matches(std::string_view type, size_t len, const std::vector<std::string>& types) {
  for (const std::string& t : types) {
    if (len == t.size() && type.substr(0, len) == t) return true;
  }
  return false;
}

bool status_matches(int status, const std::vector<int>& statuses) {
  for (int s : statuses) {
    if (s == status) return true;
  }
  return false;
}

Code headers_more_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<HeadersMoreLocConf>();
  if (conf.output) {
    const HeadersOut& out = r.headers_out;
    for (const Command& cmd : *conf.cmds) {
      if (cmd.input || cmd.headers.empty()) continue;
      if (!cmd.types.empty() && !type_matches(out.content_type, out.content_type_len, cmd.types)) {
        continue;
      }
      if (!cmd.statuses.empty() && !status_matches(out.status, cmd.statuses)) continue;
      for (const HeaderArg& hv : cmd.headers) {
        if (!set_output(r, hv, hv.clear ? std::string_view() : hv.value.eval(r))) {
          return Rc::Error;  // nginx's answer: the connection closes, nothing sent
        }
      }
    }
  }
  return next(r);
}

// --- request headers ----------------------------------------------------------------------------

// The request's lines of the name: the first takes the value, the others go (all go when the value
// is empty; a wildcard names lines only to clear them); with none, a line is added unless -r. The
// field nginx keeps the header's first line in follows, and what nginx read from it.
Rc set_input(Request& r, const HeaderArg& hv, std::string_view value, bool replace_only) {
  HeadersIn& in = r.headers_in;
  Header* first = nullptr;
  for (Header* h : in.headers) {
    if (h->hash == 0) continue;
    bool hit = hv.wildcard ? value.empty() && key_matches(hv, h->key) : iequals(h->key, hv.key);
    if (!hit) continue;
    if (value.empty() || first != nullptr) {
      h->hash = 0;
      continue;
    }
    h->value = value;
    first = h;
  }
  if (first == nullptr && !value.empty() && !replace_only) {
    first = in.headers.push(*r.pool, hv.key, value);
    first->lowcase_key = r.pool->dup(lowercased(hv.key));
  }
  if (hv.wildcard) return Rc::Ok;
  std::string lowcase = lowercased(hv.key);
  if (Header** slot = known_header_in(in, lowcase)) *slot = first;
  std::string_view now = first != nullptr ? first->value : std::string_view();
  if (lowcase == "host") {
    if (!now.empty() && !validate_host(now, *r.pool)) return Rc::Error;
    in.server = now;
  } else if (lowcase == "content-length") {
    auto n = now.empty() ? std::optional<int64_t>(-1) : parse_int(now);
    if (!n) return Rc::Error;
    in.content_length_n = *n;
  } else if (lowcase == "user-agent") {
    detect_browser(in, now);
  } else if (lowcase == "connection") {
    in.connection_type = ConnectionType::None;
    if (ifind(now, "close") != std::string_view::npos) {
      in.connection_type = ConnectionType::Close;
    } else if (ifind(now, "keep-alive") != std::string_view::npos) {
      in.connection_type = ConnectionType::KeepAlive;
    }
  }
  return Rc::Ok;
}

// At the end of the rewrite phase: the location's input commands (HTTP/1.0 and later).
Code input_handler(Request& r) {
  const auto& conf = r.loc<HeadersMoreLocConf>();
  if (!conf.input || r.http_version < 1000) return Rc::Declined;
  for (const Command& cmd : *conf.cmds) {
    if (!cmd.input || cmd.headers.empty()) continue;
    if (!cmd.types.empty()) {
      const Header* ct = r.headers_in.content_type;
      std::string_view type = ct != nullptr ? ct->value : std::string_view();
      if (type.empty() || !type_matches(type, type.size(), cmd.types)) continue;
    }
    for (const HeaderArg& hv : cmd.headers) {
      std::string_view value = hv.clear ? std::string_view() : hv.value.eval(r);
      // An invalid Host or Content-Length: the connection closes, nothing sent, as nginx's.
      if (set_input(r, hv, value, cmd.replace_only) != Rc::Ok) return Rc::Error;
    }
  }
  return Rc::Declined;
}

// --- configuration ------------------------------------------------------------------------------

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// "Name: value", "Name:" or "Name", as the module splits them (no variables in the name).
Status parse_header(ConfContext& cf, const std::string& cmd_name, std::string_view raw, bool clear,
                    Command& cmd) {
  size_t key_start = std::string_view::npos, key_len = 0, value_start = std::string_view::npos;
  bool end_of_key = false;
  for (size_t i = 0; i < raw.size(); i++) {
    char c = raw[i];
    if (key_start == std::string_view::npos) {
      if (!is_space(c)) {
        key_start = 0;  // the module's key starts where the argument does
        key_len = 1;
      }
      continue;
    }
    if (!end_of_key) {
      if (c == ':' || is_space(c)) {
        end_of_key = true;
      } else {
        key_len++;
      }
      continue;
    }
    if (value_start == std::string_view::npos && c != ':' && !is_space(c)) value_start = i;
  }
  if (key_start == std::string_view::npos) {
    return Status::located(strprintf("%s: no key found in the header argument: %.*s",
                                     cmd_name.c_str(), static_cast<int>(raw.size()), raw.data()))
        .at_error_level();
  }
  HeaderArg hv;
  hv.key = std::string(raw.substr(key_start, key_len));
  hv.wildcard = hv.key.back() == '*';
  if (hv.wildcard && hv.key.size() < 2) {
    return Status::located(strprintf("%s: wildcard key too short: %.*s", cmd_name.c_str(),
                                     static_cast<int>(raw.size()), raw.data()))
        .at_error_level();
  }
  for (const OutName& n : kOutNames) {
    if (!cmd.input && iequals(hv.key, n.name)) {
      hv.kind = n.kind;
      hv.field = n.field;
      break;
    }
  }
  hv.clear = clear || value_start == std::string_view::npos;
  if (!hv.clear) {
    if (Status s = hv.value.compile(cf, raw.substr(value_start)); !s.ok()) return s;
  }
  cmd.headers.push_back(std::move(hv));
  return {};
}

// -s's list: status codes separated by spaces.
Status parse_statuses(const std::string& cmd_name, std::string_view list, Command& cmd) {
  bool in_number = false;
  for (char c : list) {
    if (is_space(c)) {
      in_number = false;
      continue;
    }
    if (c < '0' || c > '9') {
      return Status::located(strprintf("%s: invalid digit \"%c\" found in the status code list "
                                       "\"%.*s\"",
                                       cmd_name.c_str(), c, static_cast<int>(list.size()),
                                       list.data()))
          .at_error_level();
    }
    if (!in_number) cmd.statuses.push_back(0);
    cmd.statuses.back() = cmd.statuses.back() * 10 + (c - '0');
    in_number = true;
  }
  return {};
}

// -t's list: content types separated by spaces or ';'.
void parse_types(std::string_view list, Command& cmd) {
  bool in_type = false;
  for (char c : list) {
    if (is_space(c) || c == ';') {
      in_type = false;
      continue;
    }
    if (!in_type) cmd.types.emplace_back();
    cmd.types.back() += c;
    in_type = true;
  }
}

template <bool Input, bool Clear>
Status more_directive(ConfContext& cf, const ConfNode& n, HeadersMoreLocConf& conf) {
  if (conf.cmds == nullptr) conf.cmds = cf.pool.make<std::vector<Command>>();
  Command cmd;
  cmd.input = Input;
  const std::string& name = n.args[0];
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    if (a.empty()) continue;
    if (a[0] != '-') {
      if (Status s = parse_header(cf, name, a, Clear, cmd); !s.ok()) return s;
      continue;
    }
    if (Input && a == "-r") {
      cmd.replace_only = true;
      continue;
    }
    if (a != "-t" && (Input || a != "-s")) {
      return Status::located(strprintf("%s: invalid option name: \"%.*s\"", name.c_str(),
                                       static_cast<int>(a.size()), a.data()))
          .at_error_level();
    }
    if (i + 1 == n.args.size()) {
      return Status::located(strprintf("%s: option %.*s takes an argument.", name.c_str(),
                                       static_cast<int>(a.size()), a.data()))
          .at_error_level();
    }
    std::string_view list = n.args[++i];
    if (a == "-t") {
      parse_types(list, cmd);
    } else if (Status s = parse_statuses(name, list, cmd); !s.ok()) {
      return s;
    }
  }
  conf.cmds->push_back(std::move(cmd));
  return {};
}

HeadersMoreLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<HeadersMoreLocConf>();
}

// The outer levels' commands run first, then the level's own.
Status merge_loc_conf(ConfContext& cf, const HeadersMoreLocConf& prev, HeadersMoreLocConf& conf) {
  if (conf.cmds == nullptr || conf.cmds->empty()) {
    conf.cmds = prev.cmds;
  } else if (prev.cmds != nullptr && !prev.cmds->empty()) {
    auto* all = cf.pool.make<std::vector<Command>>(*prev.cmds);
    all->insert(all->end(), conf.cmds->begin(), conf.cmds->end());
    conf.cmds = all;
  }
  if (conf.cmds != nullptr) {
    for (const Command& c : *conf.cmds) (c.input ? conf.input : conf.output) = true;
  }
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_headers_more_filter_module)) return {};
  register_header_filter(cf, FilterId::HeadersMore, headers_more_filter);
  // Registered first, so that it runs last in the phase: after the rewrite module's handlers.
  auto& rewrite = core_main_conf(cf).phases[static_cast<int>(Phase::Rewrite)];
  rewrite.insert(rewrite.begin(), input_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<more_directive<false, false>>("more_set_headers", kHttpMainSrvLocLif | kOneMore),
    directive<more_directive<false, true>>("more_clear_headers", kHttpMainSrvLocLif | kOneMore),
    directive<more_directive<true, false>>("more_set_input_headers", kHttpMainSrvLocLif | kOneMore),
    directive<more_directive<true, true>>("more_clear_input_headers",
                                          kHttpMainSrvLocLif | kOneMore),
};
static_assert(directives_of(kDirectives, &http_headers_more_filter_module));

}  // namespace

Module http_headers_more_filter_module{
    .name = "http_headers_more_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
