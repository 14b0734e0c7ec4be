// The userid filter: identifies clients by a cookie, reading the one a client sends ($uid_got) and
// setting a new one to those without ($uid_set) as `userid on|v1`. The cookie is nginx's: the
// base64 of four 32-bit words (service or server address, time, a per-worker start value, a
// sequence), in nginx's byte order, so cookies nginx set are read back and the reverse. `log` only
// reads; `$uid_reset` (set to anything but "" or "0") replaces a client's cookie.
// nginx: src/http/modules/ngx_http_userid_filter_module.c
#include <arpa/inet.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "conf/setting.h"
#include "core/base64.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_userid_filter_module;

namespace {

enum class UseridMode : uint8_t { Off, Log, V1, On };

constexpr EnumName<UseridMode> kModes[] = {
    {"off", UseridMode::Off},
    {"log", UseridMode::Log},
    {"v1", UseridMode::V1},
    {"on", UseridMode::On},
};

enum CookieFlag : uint8_t {
  kFlagOff = 1,
  kFlagSecure = 2,
  kFlagHttpOnly = 4,
  kFlagStrict = 8,
  kFlagLax = 16,
  kFlagNone = 32,
};

constexpr EnumName<uint8_t> kFlags[] = {
    {"off", kFlagOff},           {"secure", kFlagSecure},
    {"httponly", kFlagHttpOnly}, {"samesite=strict", kFlagStrict},
    {"samesite=lax", kFlagLax},  {"samesite=none", kFlagNone},
};

constexpr std::string_view kMaxExpires = "; expires=Thu, 31-Dec-37 23:55:55 GMT";
constexpr int64_t kExpiresMax = -1;  // userid_expires max

struct UseridLocConf {
  static constexpr Module* kModule = &http_userid_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  Setting<UseridMode> mode;
  Setting<uint8_t> flags;
  Setting<int64_t> service;  // unset: the server's address (on) or 0 (v1)
  Setting<std::string> name;
  Setting<std::string> domain;  // "; domain=..." or empty
  Setting<std::string> path;    // "; path=..."
  Setting<std::string> p3p;
  Setting<int64_t> expires;  // seconds, 0: a session cookie, kExpiresMax: 2037
  Setting<char> mark;        // '\0': none
};

// A uid: four words as they lie in memory, which is what the cookie encodes.
using Uid = uint32_t[4];

struct UseridCtx {
  static constexpr Module* kModule = &http_userid_filter_module;
  Uid got{};
  Uid set{};
  std::string_view cookie;  // the client's cookie value
  bool reset = false;
};

// The worker's part of every uid it makes, and its sequences. nginx: init_worker
uint32_t g_start_value = 0;
uint32_t g_sequence_v1 = 1;
uint32_t g_sequence_v2 = 0x03030302;

int g_reset_index = -1;  // $uid_reset

// The client's uid, read once per request: the first 22 characters of the cookie (a mark and
// a broken "==" tail are common after them).
UseridCtx& get_uid(Request& r, const UseridLocConf& conf) {
  if (auto* ctx = r.get_ctx<UseridCtx>()) return *ctx;
  auto* ctx = r.pool->make<UseridCtx>();
  r.set_ctx(ctx);
  const Header* line = nullptr;
  if (!find_cookie(r, *conf.name, ctx->cookie, &line)) return *ctx;
  if (ctx->cookie.size() < 22) {
    log_error(LogLevel::Error, r.log(), 0, "client sent too short userid cookie \"%.*s\"",
              static_cast<int>(line->value.size()), line->value.data());
    return *ctx;
  }
  char decoded[base64_decoded_length(22)];
  if (!base64_decode(decoded, ctx->cookie.substr(0, 22))) {
    log_error(LogLevel::Error, r.log(), 0, "client sent invalid userid cookie \"%.*s\"",
              static_cast<int>(line->value.size()), line->value.data());
    return *ctx;
  }
  std::memcpy(ctx->got, decoded, sizeof ctx->got);
  return *ctx;
}

// The uid to set, made once: none when the client's is kept as it is.
void create_uid(Request& r, UseridCtx& ctx, const UseridLocConf& conf) {
  if (ctx.set[3] != 0) return;
  if (ctx.got[3] != 0) {
    VariableValue* reset = get_indexed_variable(r, g_reset_index);
    std::string_view v = reset != nullptr && !reset->not_found ? reset->view() : "";
    if (v.empty() || v == "0") {
      // Kept; set again only to add the mark a cookie lacks.
      char mark = *conf.mark;
      if (mark == '\0' ||
          (ctx.cookie.size() > 23 && ctx.cookie[22] == mark && ctx.cookie[23] == '=')) {
        return;
      }
      std::memcpy(ctx.set, ctx.got, sizeof ctx.set);
      return;
    }
    ctx.reset = true;
    if (v == "log") {
      log_error(LogLevel::Notice, r.log(), 0, "userid cookie \"%s=%08X%08X%08X%08X\" was reset",
                conf.name->c_str(), ctx.got[0], ctx.got[1], ctx.got[2], ctx.got[3]);
    }
  }
  auto now = static_cast<uint32_t>(clock::now());
  if (*conf.mode == UseridMode::V1) {
    ctx.set[0] = conf.service.set ? static_cast<uint32_t>(*conf.service) : 0;
    ctx.set[1] = now;
    ctx.set[2] = g_start_value;
    ctx.set[3] = g_sequence_v1;
    g_sequence_v1 += 0x100;
    return;
  }
  if (conf.service.set) {
    ctx.set[0] = htonl(static_cast<uint32_t>(*conf.service));
  } else {
    SockAddr local = local_sockaddr(r);
    if (local.family() == AF_INET6) {
      // The address's last four bytes, as they lie.
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(local.sa());
      std::memcpy(&ctx.set[0], &in6->sin6_addr.s6_addr[12], 4);
    } else if (local.family() == AF_INET) {
      ctx.set[0] = reinterpret_cast<const sockaddr_in*>(local.sa())->sin_addr.s_addr;
    }
  }
  ctx.set[1] = htonl(now);
  ctx.set[2] = htonl(g_start_value);
  ctx.set[3] = htonl(g_sequence_v2);
  g_sequence_v2 += 0x100;
  if (g_sequence_v2 < 0x03030302) g_sequence_v2 = 0x03030302;
}

void set_cookie(Request& r, UseridCtx& ctx, const UseridLocConf& conf) {
  create_uid(r, ctx, conf);
  if (ctx.set[3] == 0) return;
  std::string cookie;
  cookie.reserve(conf.name->size() + 128);
  cookie += *conf.name;
  cookie += '=';
  char mark = *conf.mark;
  if (ctx.got[3] == 0 || ctx.reset) {
    char encoded[base64_encoded_length(sizeof ctx.set)];
    size_t n = base64_encode(encoded, {reinterpret_cast<const unsigned char*>(ctx.set), 16});
    if (mark != '\0') encoded[n - 2] = mark;  // the padding's first '='
    cookie.append(encoded, n);
  } else {
    cookie += ctx.cookie.substr(0, 22);
    cookie += mark;
    cookie += '=';
  }
  if (*conf.expires == kExpiresMax) {
    cookie += kMaxExpires;
  } else if (*conf.expires != 0) {
    char when[64];
    char* end = clock::format_cookie_time(when, clock::now() + *conf.expires);
    cookie += "; expires=";
    cookie.append(when, end);
  }
  cookie += *conf.domain;
  cookie += *conf.path;
  uint8_t flags = *conf.flags;
  if (flags & kFlagSecure) cookie += "; secure";
  if (flags & kFlagHttpOnly) cookie += "; httponly";
  if (flags & kFlagStrict) cookie += "; samesite=strict";
  if (flags & kFlagLax) cookie += "; samesite=lax";
  if (flags & kFlagNone) cookie += "; samesite=none";
  add_header_out(r, "Set-Cookie", r.pool->dup(cookie));
  if (!conf.p3p->empty()) add_header_out(r, "P3P", *conf.p3p);
}

Code userid_filter(Request& r, HeaderNext next) {
  if (!r.is_main()) return next(r);
  const auto& conf = r.loc<UseridLocConf>();
  if (*conf.mode < UseridMode::V1) return next(r);
  set_cookie(r, get_uid(r, conf), conf);
  return next(r);
}

// "name=" and the four words in hex, as nginx prints them.
void uid_value(Request& r, VariableValue& v, const std::string& name, const Uid& uid) {
  size_t len = name.size() + 1 + 32;
  char* p = r.pool->alloc_bytes(len + 1);
  std::snprintf(p, len + 1, "%s=%08X%08X%08X%08X", name.c_str(), uid[0], uid[1], uid[2], uid[3]);
  v.set({p, len});
}

void var_uid_got(Request& r, VariableValue& v, uintptr_t) {
  Request& main = *r.main;
  const auto& conf = main.loc<UseridLocConf>();
  if (*conf.mode == UseridMode::Off) return v.set_not_found();
  UseridCtx& ctx = get_uid(main, conf);
  if (ctx.got[3] == 0) return v.set_not_found();
  uid_value(main, v, *conf.name, ctx.got);
}

void var_uid_set(Request& r, VariableValue& v, uintptr_t) {
  Request& main = *r.main;
  const auto& conf = main.loc<UseridLocConf>();
  if (*conf.mode < UseridMode::V1) return v.set_not_found();
  UseridCtx& ctx = get_uid(main, conf);
  create_uid(main, ctx, conf);
  if (ctx.set[3] == 0) return v.set_not_found();
  uid_value(main, v, *conf.name, ctx.set);
}

void var_uid_reset(Request&, VariableValue& v, uintptr_t) {
  v.set({});
}

constexpr VariableDef kVars[] = {
    {"uid_got", var_uid_got, nullptr, 0},
    {"uid_set", var_uid_set, nullptr, 0},
    {"uid_reset", var_uid_reset, nullptr, kVarChangeable},
};

// --- configuration ---------------------------------------------------------------------------

// A cookie attribute: "; <attr>=<value>", or none for `none` (domain).
template <Setting<std::string> UseridLocConf::*kField, const char* kAttr, bool kNoneClears>
Status set_attribute(ConfContext&, const ConfNode& n, UseridLocConf& conf) {
  auto& f = conf.*kField;
  if (f.set) return Status::error("is duplicate");
  if (kNoneClears && n.args[1] == "none") {
    f = std::string();
  } else {
    f = std::string("; ") + kAttr + "=" + n.args[1];
  }
  return {};
}

Status set_p3p(ConfContext&, const ConfNode& n, UseridLocConf& conf) {
  if (conf.p3p.set) return Status::error("is duplicate");
  conf.p3p = n.args[1] == "none" ? std::string() : n.args[1];
  return {};
}

Status set_expires(ConfContext&, const ConfNode& n, UseridLocConf& conf) {
  if (conf.expires.set) return Status::error("is duplicate");
  if (n.args[1] == "max") {
    conf.expires = kExpiresMax;
  } else if (n.args[1] == "off") {
    conf.expires = 0;
  } else {
    auto t = parse_time(n.args[1], true);
    if (!t) return Status::error("invalid value");
    conf.expires = *t;
  }
  return {};
}

Status set_mark(ConfContext&, const ConfNode& n, UseridLocConf& conf) {
  if (conf.mark.set) return Status::error("is duplicate");
  const std::string& v = n.args[1];
  if (v == "off") {
    conf.mark = '\0';
    return {};
  }
  if (v.size() != 1 || !(std::isalnum(static_cast<unsigned char>(v[0])) || v[0] == '=')) {
    return Status::error("value must be \"off\" or a single letter, digit or \"=\"");
  }
  conf.mark = v[0];
  return {};
}

UseridLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<UseridLocConf>();
}

Status merge_loc_conf(ConfContext&, const UseridLocConf& prev, UseridLocConf& conf) {
  conf.mode.merge(prev.mode, UseridMode::Off);
  conf.flags.merge(prev.flags, 0);
  conf.service.merge(prev.service);
  conf.name.merge(prev.name, "uid");
  conf.domain.merge(prev.domain, "");
  conf.path.merge(prev.path, "; path=/");
  conf.p3p.merge(prev.p3p, "");
  conf.expires.merge(prev.expires, 0);
  conf.mark.merge(prev.mark, '\0');
  return {};
}

Status preconfiguration(ConfContext& cf) {
  if (Status s = add_variables(cf, kVars); !s.ok()) return s;
  g_reset_index = core_main_conf(cf).variables.index_of(cf, "uid_reset");
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_userid_filter_module)) return {};
  register_header_filter(cf, FilterId::Userid, userid_filter);
  return {};
}

// The worker's start value: the most significant part of the microseconds that fits in 16 bits,
// and the pid.
Status init_process(Cycle&) {
  timeval tv;
  gettimeofday(&tv, nullptr);
  g_start_value = (static_cast<uint32_t>(tv.tv_usec) / 20) << 16 | static_cast<uint32_t>(getpid());
  return {};
}

constexpr char kDomain[] = "domain";
constexpr char kPath[] = "path";

constexpr Directive kDirectives[] = {
    directive<slot::enum_<&UseridLocConf::mode, kModes>>("userid", kHttpMainSrvLoc | kTake1),
    directive<slot::num<&UseridLocConf::service>>("userid_service", kHttpMainSrvLoc | kTake1),
    directive<slot::str<&UseridLocConf::name>>("userid_name", kHttpMainSrvLoc | kTake1),
    directive<set_attribute<&UseridLocConf::domain, kDomain, true>>("userid_domain",
                                                                    kHttpMainSrvLoc | kTake1),
    directive<set_attribute<&UseridLocConf::path, kPath, false>>("userid_path",
                                                                 kHttpMainSrvLoc | kTake1),
    directive<set_expires>("userid_expires", kHttpMainSrvLoc | kTake1),
    directive<slot::bitmask<&UseridLocConf::flags, kFlags>>("userid_flags",
                                                            kHttpMainSrvLoc | kTake123),
    directive<set_p3p>("userid_p3p", kHttpMainSrvLoc | kTake1),
    directive<set_mark>("userid_mark", kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_userid_filter_module));

}  // namespace

Module http_userid_filter_module{
    .name = "http_userid_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
    .init_process = init_process,
};

}  // namespace weir::http
