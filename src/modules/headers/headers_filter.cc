// The headers filter: `add_header` (values with variables, `always`), `expires` (a time,
// `modified`,
// `@` a daily time, `epoch`, `max`, `off`, negative times, variables) writing Expires and
// Cache-Control, and `add_trailer` (trailers of a chunked response). A level with any add_header
// (or add_trailer) replaces the outer level's list, as nginx. Without `always` the headers go only
// with the statuses nginx calls safe (200, 201, 204, 206, 301, 302, 303, 304, 307, 308).
// nginx: src/http/modules/ngx_http_headers_filter_module.c
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

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
  std::string_view max_age;               // "max-age=<expires_time>", made once
  std::vector<HeaderValue>* headers = nullptr;
  std::vector<HeaderValue>* trailers = nullptr;
};

bool safe_status(int status) {
  switch (status) {
    case 200:
    case 201:
    case 204:
    case 206:
    case 301:
    case 302:
    case 303:
    case 304:
    case 307:
    case 308:
      return true;
    default:
      return false;
  }
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

// An Expires date in the request's pool, formatted once for all the responses of a second that
// share it (a copy of a fixed size).
std::string_view expires_text(Request& r, time_t at) {
  static time_t cached_at = -1;
  static char cached[clock::kHttpTimeLen];
  if (at != cached_at) {
    clock::format_http_time(cached, at);
    cached_at = at;
  }
  char* p = r.pool->alloc_bytes(clock::kHttpTimeLen);
  std::memcpy(p, cached, clock::kHttpTimeLen);
  return {p, clock::kHttpTimeLen};
}

// Expires and Cache-Control for this response: the response's own lines are rewritten (the extra
// Cache-Control lines dropped), or added.
void set_expires(Request& r, const HeadersLocConf& conf) {
  Expires expires = conf.expires;
  int64_t expires_time = conf.expires_time;
  if (conf.expires_value != nullptr) {
    std::string_view v = conf.expires_value->eval(r);
    if (!parse_expires(v, expires, expires_time).ok() || expires == Expires::Off) return;
  }
  HeadersOut& out = r.headers_out;
  if (out.expires == nullptr) out.expires = add_header_out(r, "Expires", {});
  Header* e = out.expires;
  if (out.cache_control == nullptr) {
    out.cache_control = add_header_out(r, "Cache-Control", {});
  } else {
    for (Header* more = out.cache_control->next_same; more != nullptr; more = more->next_same) {
      more->hash = 0;
    }
    out.cache_control->next_same = nullptr;
  }
  Header* cc = out.cache_control;
  e->hash = cc->hash = 1;
  if (expires == Expires::Epoch) {
    e->value = "Thu, 01 Jan 1970 00:00:01 GMT";
    cc->value = "no-cache";
    return;
  }
  if (expires == Expires::Max) {
    e->value = "Thu, 31 Dec 2037 23:55:55 GMT";
    cc->value = "max-age=315360000";  // ten years
    return;
  }
  if (expires_time == 0 && expires != Expires::Daily) {
    e->value = r.pool->dup(clock::http_time());
    cc->value = "max-age=0";
    return;
  }
  time_t now = clock::now();
  int64_t at;
  int64_t max_age;
  if (expires == Expires::Daily) {
    at = next_daily_time(expires_time, now);
    max_age = at - now;
  } else if (expires == Expires::Access || out.last_modified_time == -1) {
    at = now + expires_time;
    max_age = expires_time;
  } else {
    at = out.last_modified_time + expires_time;
    max_age = at - now;
  }
  e->value = expires_text(r, static_cast<time_t>(at));
  // As nginx, the configured time's sign decides, not a variable's.
  if (conf.expires_time < 0 || max_age < 0) {
    cc->value = "no-cache";
    return;
  }
  if (max_age == conf.expires_time && !conf.max_age.empty()) {
    cc->value = conf.max_age;  // `expires <time>`: the same every time
    return;
  }
  char* q = r.pool->alloc_bytes(32);
  char* end = put(q, "max-age=");
  end = put_uint(end, static_cast<uint64_t>(max_age));
  cc->value = {q, static_cast<size_t>(end - q)};
}

// One add_header line for this response.
void add_one(Request& r, const HeaderValue& hv) {
  std::string_view value = hv.value.eval(r);
  HeadersOut& out = r.headers_out;
  if (hv.how == SetHow::Add || hv.how == SetHow::CacheControl) {
    if (value.empty()) return;
    Header* h = add_header_out(r, hv.key, value);
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
    slot = add_header_out(r, hv.key, value);
  }
  if (hv.how == SetHow::LastModified) {
    auto t = value.empty() ? std::nullopt : clock::parse_http_time(value);
    out.last_modified_time = t ? *t : -1;
    out.last_modified_text = {};
  }
}

Code headers_filter(Request& r, HeaderNext next) {
  if (!r.is_main()) return next(r);
  const auto& conf = r.loc<HeadersLocConf>();
  if (conf.expires == Expires::Off && conf.headers == nullptr && conf.trailers == nullptr) {
    return next(r);
  }
  bool safe = safe_status(r.headers_out.status);
  if (conf.expires != Expires::Off && safe) set_expires(r, conf);
  if (conf.headers != nullptr) {
    for (const HeaderValue& hv : *conf.headers) {
      if (safe || hv.always) add_one(r, hv);
    }
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
    conf.max_age = cf.pool.dup("max-age=" + std::to_string(conf.expires_time));
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
  if (n.nargs() == 3) {
    if (n.args[3] != "always") return cf.error("invalid parameter \"" + n.args[3] + "\"");
    hv.always = true;
  }
  list->push_back(std::move(hv));
  return {};
}

HeadersLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<HeadersLocConf>();
}

Status merge_loc_conf(ConfContext&, const HeadersLocConf& prev, HeadersLocConf& conf) {
  if (conf.expires == Expires::Unset) {
    conf.expires = prev.expires;
    conf.expires_time = prev.expires_time;
    conf.max_age = prev.max_age;
    conf.expires_value = prev.expires_value;
    if (conf.expires == Expires::Unset) conf.expires = Expires::Off;
  }
  // A level with its own lines does not inherit the outer ones.
  if (conf.headers == nullptr) conf.headers = prev.headers;
  if (conf.trailers == nullptr) conf.trailers = prev.trailers;
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
