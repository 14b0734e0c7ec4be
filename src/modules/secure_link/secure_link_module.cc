// secure_link (ngx_http_secure_link_module, which Debian's nginx has): $secure_link says whether a
// link was signed by the site. With `secure_link hash,expires` and `secure_link_md5 expression`, it
// is "1" when the hash (base64url) is the MD5 of the expression, "0" when it is and the link has
// expired, and not found otherwise ($secure_link_expires holds the time). With
// `secure_link_secret word` (the older form, for URIs /prefix/<md5 hex>/<link>), it is the link
// when the hex is the MD5 of the link and the word. The location decides what to do with it
// (`if ($secure_link = "") { return 403; }`). nginx: src/http/modules/ngx_http_secure_link_module.c

#include <cstring>
#include <string>

#include "core/base64.h"
#include "core/md5.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_secure_link_module;

namespace {

struct SecureLinkLocConf {
  static constexpr Module* kModule = &http_secure_link_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<const ComplexValue*> link;  // secure_link
  Setting<const ComplexValue*> md5;   // secure_link_md5
  Setting<std::string> secret;        // secure_link_secret
};

// What $secure_link found: the expiry time's text, for $secure_link_expires.
struct SecureLinkCtx {
  static constexpr Module* kModule = &http_secure_link_module;
  std::string_view expires;
};

// The older form: /prefix/<32 hex digits>/<link> in the request's URI as the client sent it.
void var_secure_link_old(Request& r, VariableValue& v, const std::string& secret) {
  std::string_view uri = r.unparsed_uri;
  size_t start = uri.find('/', 1);
  size_t end = start == std::string_view::npos ? start : uri.find('/', start + 1);
  if (end == std::string_view::npos || end - start - 1 != 32 || end + 1 == uri.size()) {
    return v.set_not_found();
  }
  std::string_view hex = uri.substr(start + 1, 32);
  std::string_view link = uri.substr(end + 1);
  Md5 md5;
  md5.update(link);
  md5.update(secret);
  Md5Digest digest = md5.final();
  for (size_t i = 0; i < digest.size(); i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0 || (hi << 4 | lo) != digest[i]) return v.set_not_found();
  }
  v.set(link);
}

void var_secure_link(Request& r, VariableValue& v, uintptr_t) {
  const auto& conf = r.loc<SecureLinkLocConf>();
  if (conf.secret.set) return var_secure_link_old(r, v, *conf.secret);
  if (!conf.link.set || *conf.link == nullptr || !conf.md5.set || *conf.md5 == nullptr) {
    return v.set_not_found();
  }
  std::string_view value = (*conf.link)->eval(r);
  std::string_view hash = value;
  time_t expires = 0;
  if (size_t comma = value.find(','); comma != std::string_view::npos) {
    hash = value.substr(0, comma);
    std::string_view when = value.substr(comma + 1);
    std::optional<int64_t> t = parse_int(when);
    if (!t || *t <= 0) return v.set_not_found();
    expires = static_cast<time_t>(*t);
    auto* ctx = r.pool->make<SecureLinkCtx>();
    ctx->expires = when;
    r.set_ctx(ctx);
  }
  constexpr size_t kMaxHash = 24;  // base64 of 16 bytes, with padding
  char decoded[base64_decoded_length(kMaxHash)];
  if (hash.size() > kMaxHash) return v.set_not_found();
  std::optional<size_t> n = base64url_decode(decoded, hash);
  if (!n || *n != sizeof(Md5Digest)) return v.set_not_found();
  Md5Digest digest = Md5::of((*conf.md5)->eval(r));
  if (std::memcmp(decoded, digest.data(), digest.size()) != 0) return v.set_not_found();
  v.set(expires != 0 && expires < clock::now() ? "0" : "1");
}

void var_secure_link_expires(Request& r, VariableValue& v, uintptr_t) {
  const auto* ctx = r.get_ctx<SecureLinkCtx>();
  if (ctx == nullptr) return v.set_not_found();
  v.set(ctx->expires);
}

constexpr VariableDef kVars[] = {
    {"secure_link", var_secure_link, nullptr, 0},
    {"secure_link_expires", var_secure_link_expires, nullptr, 0},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

// --- configuration -----------------------------------------------------------------------------

template <Setting<const ComplexValue*> SecureLinkLocConf::*M>
Status set_value(ConfContext& cf, const ConfNode& n, SecureLinkLocConf& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto* cv = cf.pool.make<ComplexValue>();
  if (Status s = cv->compile(cf, n.args[1]); !s.ok()) return s;
  f = cv;
  return {};
}

SecureLinkLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<SecureLinkLocConf>();
}

// A level with secure_link_secret keeps only it; one without takes the outer expressions, and the
// outer secret only when it has no expression of its own either.
Status merge_loc_conf(ConfContext& cf, const SecureLinkLocConf& prev, SecureLinkLocConf& conf) {
  if (conf.secret.set) {
    if (conf.link.set || conf.md5.set) {
      return cf.error(
          "\"secure_link_secret\" cannot be mixed with \"secure_link\" and \"secure_link_md5\"");
    }
    return {};
  }
  conf.link.merge(prev.link, nullptr);
  conf.md5.merge(prev.md5, nullptr);
  if (*conf.link == nullptr && *conf.md5 == nullptr) conf.secret.merge(prev.secret);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<set_value<&SecureLinkLocConf::link>>("secure_link", kHttpMainSrvLoc | kTake1),
    directive<set_value<&SecureLinkLocConf::md5>>("secure_link_md5", kHttpMainSrvLoc | kTake1),
    directive<slot::str<&SecureLinkLocConf::secret>>("secure_link_secret",
                                                     kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_secure_link_module));

}  // namespace

Module http_secure_link_module{
    .name = "http_secure_link",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
