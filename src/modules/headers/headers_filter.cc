// The headers filter: `add_header` (values with variables, `always`), `expires` (a time,
// `modified`,
// `@` a daily time, `epoch`, `max`, `off`, negative times, variables) writing Expires and
// Cache-Control, and `add_trailer` (trailers of a chunked response). A level with any add_header
// (or add_trailer) replaces the outer level's list, as nginx. Without `always` the headers go only
// with the statuses nginx calls safe (200, 201, 204, 206, 301, 302, 303, 304, 307, 308).
// nginx: src/http/modules/ngx_http_headers_filter_module.c
#include <cstring>
#include <ctime>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/assert.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/script.h"

namespace weir::http {

extern Module http_headers_filter_module;

namespace {

// How a header of add_header goes in: most are added; a few replace the response's own (or remove
// it when the value is empty), as nginx's table of them.
enum class SetHow : uint8_t {
  Add,           // another line (an empty value adds none)
  CacheControl,  // another line, and one of the response's Cache-Control lines (expires sees it)
  LastModified,  // replaces the response's, and its time
  ETag,          // replaces the response's
};

struct HeaderValue {
  std::string key;
  ComplexValue value;
  // "key: value\r\n" when the value is a constant added as a line of its own.
  std::string_view line;
  SetHow how = SetHow::Add;
  bool always = false;
};

enum class Expires : uint8_t { Unset, Off, Epoch, Max, Access, Modified, Daily };

struct HeadersLocConf {
  static constexpr Module* kModule = &http_headers_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  Expires expires = Expires::Unset;
  int64_t expires_time = 0;               // seconds; negative: in the past
  ComplexValue* expires_value = nullptr;  // with variables: parsed per request
  std::string_view cache_control;         // "Cache-Control: max-age=<expires_time>\r\n", made once
  std::vector<HeaderValue>* headers = nullptr;
  std::vector<HeaderValue>* trailers = nullptr;
  // With `expires <time>` and add_header lines that are all constants, the lines a response gets
  // (Expires, Cache-Control, then add_header's): copied whole, the date set per second. Made at
  // load.
  std::span<const Header> prototype;
  bool active = false;     // anything to do: expires, add_header or add_trailer
  uint32_t new_lines = 0;  // the most header lines one response gets
};

// Lines that whole_line() can copy at once are at most this long.
constexpr size_t kMostLine = 255;

// The value in a "key: value\r\n" line whose key is key_len bytes.
std::string_view line_value(std::string_view line, size_t key_len) {
  return {line.data() + key_len + 2, line.size() - key_len - 4};
}

// The header lines one response gets from this filter: made in one allocation, appended to the
// response's list together, in the order they were made.
class NewLines {
 public:
  NewLines(Pool& pool, size_t most)
      : free_(static_cast<Header*>(pool.alloc(most * sizeof(Header), alignof(Header)))),
        end_(free_ + most) {}

  Header* add(std::string_view key, std::string_view value, size_t line = 0) {
    WEIR_ASSERT(free_ != end_ && line <= kMostLine);
    Header* h = new (free_++) Header;
    h->key = key;
    h->value = value;
    h->line = static_cast<uint8_t>(line);
    made_.append(h, h);
    return h;
  }
  // A whole "key: value\r\n" line whose key is key_len bytes.
  Header* add_line(std::string_view line, size_t key_len) {
    return add({line.data(), key_len}, line_value(line, key_len), line.size());
  }
  void append_to(HeaderList& list) { list.append(made_); }

 private:
  Header* free_;
  Header* end_;
  HeaderList made_;
};

// The statuses nginx adds headers to without `always`: 200, 201, 204, 206, 301, 302, 303, 304,
// 307, 308 (bit i of a mask for the status 200 + i and 301 + i).
bool safe_status(int status) {
  constexpr uint32_t k2xx = 1u << 0 | 1u << 1 | 1u << 4 | 1u << 6;
  constexpr uint32_t k3xx = 1u << 0 | 1u << 1 | 1u << 2 | 1u << 3 | 1u << 6 | 1u << 7;
  auto bit = [](int status, int from, uint32_t mask) {
    auto i = static_cast<unsigned>(status - from);
    return i < 32 && (mask >> i & 1) != 0;
  };
  return bit(status, 200, k2xx) || bit(status, 301, k3xx);
}

// An expires value: `epoch`, `max`, `off` (not after `modified`), or a time with an optional sign
// or `@` (a time of day). The error is nginx's word for it.
Status parse_expires(std::string_view v, Expires& expires, int64_t& time) {
  if (expires != Expires::Modified) {
    if (v == "epoch") {
      expires = Expires::Epoch;
      return {};
    }
    if (v == "max") {
      expires = Expires::Max;
      return {};
    }
    if (v == "off") {
      expires = Expires::Off;
      return {};
    }
  }
  bool minus = false;
  if (v.starts_with('@')) {
    v.remove_prefix(1);
    if (expires == Expires::Modified) {
      return Status::error("daily time cannot be used with \"modified\" parameter");
    }
    expires = Expires::Daily;
  } else if (v.starts_with('+')) {
    v.remove_prefix(1);
  } else if (v.starts_with('-')) {
    v.remove_prefix(1);
    minus = true;
  }
  std::optional<int64_t> t = parse_time(v, true);
  if (!t) return Status::error("invalid value");
  if (expires == Expires::Daily && *t > 24 * 60 * 60) {
    return Status::error("daily time value must be less than 24 hours");
  }
  time = minus ? -*t : *t;
  return {};
}

// The next moment the local clock shows the time of day `when` (seconds after midnight).
// nginx: ngx_next_time
time_t next_daily_time(int64_t when, time_t now) {
  struct tm tm;
  localtime_r(&now, &tm);
  tm.tm_hour = static_cast<int>(when / 3600);
  tm.tm_min = static_cast<int>(when % 3600 / 60);
  tm.tm_sec = static_cast<int>(when % 60);
  time_t next = mktime(&tm);
  if (next == -1 || next - now > 0) return next;
  tm.tm_mday++;  // mktime normalises the day after the month's last
  return mktime(&tm);
}

constexpr size_t kExpiresKey = 7;        // "Expires"
constexpr size_t kCacheControlKey = 13;  // "Cache-Control"
constexpr std::string_view kCacheControlLine = "Cache-Control: ";

constexpr size_t kExpiresLine = kExpiresKey + 2 + clock::kHttpTimeLen + 2;

// "Expires: <date>\r\n" written to to (kExpiresLine bytes), the line formatted once for all the
// responses of a second that share it.
std::string_view put_expires_line(char* to, time_t at) {
  static time_t cached_at = -1;
  static char cached[kExpiresLine + 1] = "Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\n";
  if (at != cached_at) {
    clock::format_http_time(cached + kExpiresKey + 2, at);
    cached_at = at;
  }
  std::memcpy(to, cached, kExpiresLine);
  return {to, kExpiresLine};
}

// "Cache-Control: max-age=<seconds>\r\n" in the request's pool.
std::string_view max_age_line(Pool& pool, int64_t max_age) {
  char* q = pool.alloc_bytes(kCacheControlLine.size() + 32);
  char* end = put(q, kCacheControlLine);
  end = put(end, "max-age=");
  end = put_uint(end, static_cast<uint64_t>(max_age));
  end = put(end, "\r\n");
  return {q, static_cast<size_t>(end - q)};
}

// The response's own line of a name becomes line's value (revived if a filter removed it), or
// line is added.
void set_line(Header*& slot, NewLines& lines, std::string_view line, size_t key_len) {
  if (slot == nullptr) {
    slot = lines.add_line(line, key_len);
    return;
  }
  slot->value = line_value(line, key_len);
  slot->hash = 1;
}

// Expires and Cache-Control for this response: the response's own lines are rewritten (the extra
// Cache-Control lines dropped), or added.
void set_expires(Request& r, const HeadersLocConf& conf, NewLines& lines) {
  Expires expires = conf.expires;
  int64_t expires_time = conf.expires_time;
  if (conf.expires_value != nullptr) {
    std::string_view v = conf.expires_value->eval(r);
    if (!parse_expires(v, expires, expires_time).ok() || expires == Expires::Off) return;
  }
  std::string_view expires_at;
  std::string_view cache_control;
  if (expires == Expires::Epoch) {
    expires_at = "Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\n";
    cache_control = "Cache-Control: no-cache\r\n";
  } else if (expires == Expires::Max) {
    expires_at = "Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\n";
    cache_control = "Cache-Control: max-age=315360000\r\n";  // ten years
  } else if (expires_time == 0 && expires != Expires::Daily) {
    expires_at = put_expires_line(r.pool->alloc_bytes(kExpiresLine), clock::now());
    cache_control = "Cache-Control: max-age=0\r\n";
  } else {
    time_t now = clock::now();
    int64_t at;
    int64_t max_age;
    if (expires == Expires::Daily) {
      at = next_daily_time(expires_time, now);
      max_age = at - now;
    } else if (expires == Expires::Access || r.headers_out.last_modified_time == -1) {
      at = now + expires_time;
      max_age = expires_time;
    } else {
      at = r.headers_out.last_modified_time + expires_time;
      max_age = at - now;
    }
    expires_at = put_expires_line(r.pool->alloc_bytes(kExpiresLine), static_cast<time_t>(at));
    // As nginx, the configured time's sign decides, not a variable's.
    if (conf.expires_time < 0 || max_age < 0) {
      cache_control = "Cache-Control: no-cache\r\n";
    } else if (max_age == conf.expires_time && !conf.cache_control.empty()) {
      cache_control = conf.cache_control;  // `expires <time>`: the same every time
    } else {
      cache_control = max_age_line(*r.pool, max_age);
    }
  }
  HeadersOut& out = r.headers_out;
  set_line(out.expires, lines, expires_at, kExpiresKey);
  if (out.cache_control != nullptr) {
    for (Header* more = out.cache_control->next_same; more != nullptr; more = more->next_same) {
      more->hash = 0;
    }
    out.cache_control->next_same = nullptr;
  }
  set_line(out.cache_control, lines, cache_control, kCacheControlKey);
}

// One add_header line for this response.
void add_one(Request& r, const HeaderValue& hv, NewLines& lines) {
  if (!hv.line.empty()) {
    lines.add_line(hv.line, hv.key.size());
    return;
  }
  std::string_view value = hv.value.eval(r);
  HeadersOut& out = r.headers_out;
  if (hv.how == SetHow::Add || hv.how == SetHow::CacheControl) {
    if (value.empty()) return;
    Header* h = lines.add(hv.key, value);
    if (hv.how == SetHow::CacheControl) {
      Header** tail = &out.cache_control;
      while (*tail != nullptr) tail = &(*tail)->next_same;
      *tail = h;
    }
    return;
  }
  Header*& slot = hv.how == SetHow::ETag ? out.etag : out.last_modified;
  if (value.empty()) {
    if (slot != nullptr) slot->hash = 0;
    slot = nullptr;
  } else if (slot != nullptr) {
    slot->key = hv.key;
    slot->value = value;
    slot->hash = 1;
  } else {
    slot = lines.add(hv.key, value);
  }
  if (hv.how == SetHow::LastModified) {
    auto t = value.empty() ? std::nullopt : clock::parse_http_time(value);
    out.last_modified_time = t ? *t : -1;
    out.last_modified_text = {};
  }
}

// The prototype's lines for a response that has neither Expires nor Cache-Control: one copy,
// linked, with this second's Expires.
void add_prototype(Request& r, const HeadersLocConf& conf) {
  std::span<const Header> proto = conf.prototype;
  size_t n = proto.size();
  auto* h = static_cast<Header*>(r.pool->alloc(n * sizeof(Header) + kExpiresLine, alignof(Header)));
  std::memcpy(h, proto.data(), n * sizeof(Header));
  Header* last = h + n - 1;
  for (Header* p = h; p != last; p++) p->next = p + 1;
  std::string_view expires =
      put_expires_line(reinterpret_cast<char*>(h + n), clock::now() + conf.expires_time);
  h[0].key = {expires.data(), kExpiresKey};
  h[0].value = line_value(expires, kExpiresKey);
  HeadersOut& out = r.headers_out;
  out.expires = &h[0];
  out.cache_control = &h[1];
  out.headers.append(h, last);
}

// The lines of any other response, one by one. Out of line: the prototype's path stays lean.
[[gnu::noinline]] void add_lines(Request& r, const HeadersLocConf& conf, bool safe) {
  NewLines lines(*r.pool, conf.new_lines);
  if (conf.expires != Expires::Off && safe) set_expires(r, conf, lines);
  if (conf.headers != nullptr) {
    for (const HeaderValue& hv : *conf.headers) {
      if (safe || hv.always) add_one(r, hv, lines);
    }
  }
  lines.append_to(r.headers_out.headers);
}

Code headers_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<HeadersLocConf>();
  if (!conf.active || !r.is_main()) return next(r);
  HeadersOut& out = r.headers_out;
  bool safe = safe_status(out.status);
  if (safe && !conf.prototype.empty() && out.expires == nullptr && out.cache_control == nullptr) {
    add_prototype(r, conf);
  } else {
    add_lines(r, conf, safe);
  }
  if (conf.trailers != nullptr) {
    for (const HeaderValue& hv : *conf.trailers) {
      if (safe || hv.always) {
        r.expect_trailers = true;
        break;
      }
    }
  }
  return next(r);
}

// add_trailer: the trailers are evaluated when the response's last buffer passes (their values may
// depend on the whole response, $bytes_sent ...); the chunked filter writes them.
Rc trailers_filter(Request& r, ChainLink* in, BodyNext next) {
  const auto& conf = r.loc<HeadersLocConf>();
  if (in == nullptr || conf.trailers == nullptr || !r.expect_trailers || r.header_only) {
    return next(r, in);
  }
  ChainLink* cl = in;
  while (cl != nullptr && !cl->buf->last_buf) cl = cl->next;
  if (cl == nullptr) return next(r, in);
  bool safe = safe_status(r.headers_out.status);
  for (const HeaderValue& hv : *conf.trailers) {
    if (!safe && !hv.always) continue;
    std::string_view value = hv.value.eval(r);
    if (!value.empty()) r.headers_out.trailers.push(*r.pool, hv.key, value);
  }
  return next(r, in);
}

// --- configuration ---------------------------------------------------------------------------

Status expires_directive(ConfContext& cf, const ConfNode& n, HeadersLocConf& conf) {
  if (conf.expires != Expires::Unset) return Status::error("is duplicate");
  size_t i = 1;
  conf.expires = Expires::Access;
  if (n.nargs() == 2) {
    if (n.args[1] != "modified") return Status::error("invalid value");
    conf.expires = Expires::Modified;
    i = 2;
  }
  ComplexValue cv;
  if (Status s = cv.compile(cf, n.args[i]); !s.ok()) return s;
  if (!cv.is_static()) {
    conf.expires_value = cf.pool.make<ComplexValue>(std::move(cv));
    return {};
  }
  if (Status s = parse_expires(n.args[i], conf.expires, conf.expires_time); !s.ok()) return s;
  if (conf.expires_time > 0) {
    conf.cache_control = cf.pool.dup(std::string(kCacheControlLine) +
                                     "max-age=" + std::to_string(conf.expires_time) + "\r\n");
  }
  return {};
}

SetHow set_how(std::string_view key) {
  if (iequals(key, "Cache-Control")) return SetHow::CacheControl;
  if (iequals(key, "Last-Modified")) return SetHow::LastModified;
  if (iequals(key, "ETag")) return SetHow::ETag;
  return SetHow::Add;
}

// Whether the configuration being loaded has an add_trailer: the trailers' body filter is in the
// chain only then.
bool g_trailers_used = false;

// add_header and add_trailer: name, value, and `always`.
template <std::vector<HeaderValue>* HeadersLocConf::*kList>
Status add_directive(ConfContext& cf, const ConfNode& n, HeadersLocConf& conf) {
  if (kList == &HeadersLocConf::trailers) g_trailers_used = true;
  std::vector<HeaderValue>*& list = conf.*kList;
  if (list == nullptr) list = cf.pool.make<std::vector<HeaderValue>>();
  HeaderValue hv;
  hv.key = n.args[1];
  if (kList == &HeadersLocConf::headers) hv.how = set_how(hv.key);
  if (Status s = hv.value.compile(cf, n.args[2]); !s.ok()) return s;
  if (kList == &HeadersLocConf::headers && hv.how == SetHow::Add && hv.value.is_static() &&
      !hv.value.static_value().empty() &&
      hv.key.size() + hv.value.static_value().size() + 4 <= kMostLine) {
    hv.line = cf.pool.dup(hv.key + ": " + std::string(hv.value.static_value()) + "\r\n");
  }
  if (n.nargs() == 3) {
    if (n.args[3] != "always") return cf.error("invalid parameter \"" + n.args[3] + "\"");
    hv.always = true;
  }
  list->push_back(std::move(hv));
  return {};
}

// The prototype of a level whose expires is a constant time after the access and whose add_header
// lines are all constants (see HeadersLocConf::prototype); none otherwise.
std::span<const Header> make_prototype(ConfContext& cf, const HeadersLocConf& conf) {
  if (conf.expires != Expires::Access || conf.cache_control.empty()) return {};
  std::vector<Header> proto(2);
  proto[0].key = "Expires";
  proto[0].line = static_cast<uint8_t>(kExpiresLine);
  proto[1].key = {conf.cache_control.data(), kCacheControlKey};
  proto[1].value = line_value(conf.cache_control, kCacheControlKey);
  proto[1].line = static_cast<uint8_t>(conf.cache_control.size());
  if (conf.headers != nullptr) {
    for (const HeaderValue& hv : *conf.headers) {
      bool adds_nothing =
          hv.how == SetHow::Add && hv.value.is_static() && hv.value.static_value().empty();
      if (adds_nothing) continue;
      if (hv.line.empty()) return {};
      Header& h = proto.emplace_back();
      h.key = {hv.line.data(), hv.key.size()};
      h.value = line_value(hv.line, hv.key.size());
      h.line = static_cast<uint8_t>(hv.line.size());
    }
  }
  auto* nodes = static_cast<Header*>(cf.pool.alloc(proto.size() * sizeof(Header), alignof(Header)));
  std::uninitialized_copy(proto.begin(), proto.end(), nodes);
  return {nodes, proto.size()};
}

HeadersLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<HeadersLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const HeadersLocConf& prev, HeadersLocConf& conf) {
  if (conf.expires == Expires::Unset) {
    conf.expires = prev.expires;
    conf.expires_time = prev.expires_time;
    conf.cache_control = prev.cache_control;
    conf.expires_value = prev.expires_value;
    if (conf.expires == Expires::Unset) conf.expires = Expires::Off;
  }
  // A level with its own lines does not inherit the outer ones.
  if (conf.headers == nullptr) conf.headers = prev.headers;
  if (conf.trailers == nullptr) conf.trailers = prev.trailers;
  conf.active = conf.expires != Expires::Off || conf.headers != nullptr || conf.trailers != nullptr;
  size_t most = (conf.expires != Expires::Off ? 2 : 0) + (conf.headers ? conf.headers->size() : 0);
  conf.new_lines = static_cast<uint32_t>(most);
  conf.prototype = make_prototype(cf, conf);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_headers_filter_module)) return {};
  register_header_filter(cf, FilterId::Headers, headers_filter);
  if (g_trailers_used) register_body_filter(cf, FilterId::Headers, trailers_filter);
  return {};
}

Status preconfiguration(ConfContext&) {
  g_trailers_used = false;
  return {};
}

constexpr Directive kDirectives[] = {
    directive<expires_directive>("expires", kHttpMainSrvLocLif | kTake12),
    directive<add_directive<&HeadersLocConf::headers>>("add_header", kHttpMainSrvLocLif | kTake23),
    directive<add_directive<&HeadersLocConf::trailers>>("add_trailer",
                                                        kHttpMainSrvLocLif | kTake23),
};
static_assert(directives_of(kDirectives, &http_headers_filter_module));

}  // namespace

Module http_headers_filter_module{
    .name = "http_headers_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
