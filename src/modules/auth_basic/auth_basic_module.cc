// auth_basic: a location that asks for a user and password (RFC 7617) checked against a
// htpasswd-style file ("user:hash[:comment]", "#" comments), read afresh for every request as
// nginx does, so a changed file counts at once. Hashes: crypt(3) from libcrypt (DES, $1$, $5$,
// $6$, yescrypt, bcrypt - whatever it knows), Apache's $apr1$ (md5-crypt over libcrypto's MD5),
// {SHA}, {SSHA} and {PLAIN}. 401 with nginx's WWW-Authenticate and its error lines for a user not
// found or a wrong password. nginx: src/http/modules/ngx_http_auth_basic_module.c,
// src/core/ngx_crypt.c
#include <crypt.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>

#include "conf/cycle.h"
#include "core/base64.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/script.h"

namespace weir::http {

extern Module http_auth_basic_module;

namespace {

struct AuthBasicLocConf {
  static constexpr Module* kModule = &http_auth_basic_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  ComplexValue* realm = nullptr;  // nullptr: unset; "off": no authentication
  ComplexValue* user_file = nullptr;
  bool realm_set = false;
  bool user_file_set = false;
};

// --- password hashes -------------------------------------------------------------------------

using Digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;

// One digest over the pieces, by libcrypto. Returns its length.
template <class... Pieces>
unsigned digest(const EVP_MD* md, Digest& out, const Pieces&... pieces) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) return 0;
  (EVP_DigestUpdate(ctx.get(), pieces.data(), pieces.size()), ...);
  EVP_DigestFinal_ex(ctx.get(), out.data(), &len);
  return len;
}

// The md5-crypt alphabet, six bits at a time, least significant first.
void to64(std::string& out, uint32_t v, int n) {
  static constexpr std::string_view kItoa64 =
      "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  while (n-- > 0) {
    out += kItoa64[v & 0x3f];
    v >>= 6;
  }
}

// Apache's "$apr1$": Poul-Henning Kamp's md5-crypt with its own magic. The hash the stored one
// must equal. A streaming MD5 context is used through libcrypto for each round.
std::string apr1(std::string_view key, std::string_view stored) {
  std::string_view salt = stored.substr(6);
  salt = salt.substr(0, std::min(salt.find('$'), size_t{8}));
  const EVP_MD* md5 = EVP_md5();
  using Ctx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
  Ctx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx) return {};
  auto update = [&](const void* p, size_t n) { EVP_DigestUpdate(ctx.get(), p, n); };
  unsigned char final_[16];
  unsigned len;
  // The alternate sum: key, salt, key.
  Digest alt;
  digest(md5, alt, key, salt, key);
  EVP_DigestInit_ex(ctx.get(), md5, nullptr);
  update(key.data(), key.size());
  update("$apr1$", 6);
  update(salt.data(), salt.size());
  for (size_t n = key.size(); n > 0; n -= std::min<size_t>(n, 16)) {
    update(alt.data(), std::min<size_t>(n, 16));
  }
  // A bit of the key's length picks a zero byte or the key's first byte.
  const unsigned char zero = 0;
  for (size_t i = key.size(); i != 0; i >>= 1) {
    if (i & 1) {
      update(&zero, 1);
    } else {
      update(key.data(), 1);
    }
  }
  EVP_DigestFinal_ex(ctx.get(), final_, &len);
  for (int i = 0; i < 1000; i++) {
    EVP_DigestInit_ex(ctx.get(), md5, nullptr);
    if (i & 1) {
      update(key.data(), key.size());
    } else {
      update(final_, 16);
    }
    if (i % 3) update(salt.data(), salt.size());
    if (i % 7) update(key.data(), key.size());
    if (i & 1) {
      update(final_, 16);
    } else {
      update(key.data(), key.size());
    }
    EVP_DigestFinal_ex(ctx.get(), final_, &len);
  }
  std::string out = "$apr1$";
  out += salt;
  out += '$';
  auto b = [&](int i) { return static_cast<uint32_t>(final_[i]); };
  to64(out, b(0) << 16 | b(6) << 8 | b(12), 4);
  to64(out, b(1) << 16 | b(7) << 8 | b(13), 4);
  to64(out, b(2) << 16 | b(8) << 8 | b(14), 4);
  to64(out, b(3) << 16 | b(9) << 8 | b(15), 4);
  to64(out, b(4) << 16 | b(10) << 8 | b(5), 4);
  to64(out, b(11), 2);
  return out;
}

std::string base64_of(const unsigned char* p, size_t n) {
  std::string out(base64_encoded_length(n), '\0');
  out.resize(base64_encode(out.data(), {p, n}));
  return out;
}

// "{SHA}": base64 of SHA-1; "{SSHA}": base64 of SHA-1 over the password and a salt, then the salt.
std::string sha(std::string_view key, std::string_view stored, bool salted) {
  Digest d;
  if (!salted) {
    unsigned n = digest(EVP_sha1(), d, key);
    return "{SHA}" + base64_of(d.data(), n);
  }
  std::string_view encoded = stored.substr(6);
  std::string raw(base64_decoded_length(encoded.size()), '\0');
  auto n = base64_decode(raw.data(), encoded);
  if (!n || *n < 20) return {};
  raw.resize(*n);
  std::string_view salt = std::string_view(raw).substr(20);
  unsigned len = digest(EVP_sha1(), d, key, salt);
  std::string both(reinterpret_cast<const char*>(d.data()), len);
  both += salt;
  return "{SSHA}" + base64_of(reinterpret_cast<const unsigned char*>(both.data()), both.size());
}

// The password hashed as the stored hash says; an empty result: it cannot be.
std::string hash_like(const std::string& key, const std::string& stored) {
  if (stored.starts_with("$apr1$")) return apr1(key, stored);
  if (stored.starts_with("{PLAIN}")) return "{PLAIN}" + key;
  if (stored.starts_with("{SHA}")) return sha(key, stored, false);
  if (stored.starts_with("{SSHA}")) return sha(key, stored, true);
  static crypt_data data;  // large: one per process (a worker is single-threaded)
  data.initialized = 0;
  const char* out = crypt_r(key.c_str(), stored.c_str(), &data);
  return out != nullptr && out[0] != '*' ? std::string(out) : std::string();
}

// --- the access handler ----------------------------------------------------------------------

Code set_realm(Request& r, std::string_view realm) {
  std::string value = "Basic realm=\"";
  value += realm;
  value += '"';
  r.headers_out.www_authenticate = add_header_out(r, "WWW-Authenticate", r.pool->dup(value));
  return Code::status(401);
}

// The user and password of an Authorization: Basic header; false when there is none.
bool basic_credentials(Request& r, std::string_view& user, std::string_view& password) {
  const Header* h = r.headers_in.authorization;
  if (h == nullptr || !istarts_with(h->value, "Basic ")) return false;
  std::string_view enc = h->value.substr(6);
  while (!enc.empty() && enc.front() == ' ') enc.remove_prefix(1);
  if (enc.empty()) return false;
  char* out = r.pool->alloc_bytes(base64_decoded_length(enc.size()) + 1);
  auto n = base64_decode(out, enc);
  if (!n) return false;
  std::string_view decoded(out, *n);
  size_t colon = decoded.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  user = decoded.substr(0, colon);
  password = decoded.substr(colon + 1);
  return true;
}

// The stored hash of a user in the file's text ("user:hash[:...]", lines starting with '#' or CR
// skipped); false when the user has no line.
bool find_user(std::string_view text, std::string_view user, std::string& hash) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line[0] == '#' || line[0] == '\r') continue;
    if (line.size() > user.size() && line.starts_with(user) && line[user.size()] == ':') {
      std::string_view rest = line.substr(user.size() + 1);
      hash = rest.substr(0, rest.find_first_of(":\r"));
      return true;
    }
  }
  return false;
}

Code auth_basic_handler(Request& r) {
  const auto& conf = r.loc<AuthBasicLocConf>();
  if (conf.realm == nullptr || conf.user_file == nullptr) return Rc::Declined;
  std::string_view realm = conf.realm->eval(r);
  if (realm == "off") return Rc::Declined;
  std::string_view user, password;
  if (!basic_credentials(r, user, password)) {
    log_error(LogLevel::Info, r.log(), 0, "no user/password was provided for basic authentication");
    return set_realm(r, realm);
  }
  std::string file(conf.user_file->eval(r));
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    log_error(err == ENOENT ? LogLevel::Error : LogLevel::Crit, r.log(), err,
              "open() \"%s\" failed", file.c_str());
    return Code::status(err == ENOENT ? 403 : 500);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      log_error(LogLevel::Crit, r.log(), errno, "read() \"%s\" failed", file.c_str());
      ::close(fd);
      return Code::status(500);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  std::string stored;
  bool found = find_user(text, user, stored);
  explicit_bzero(text.data(), text.size());
  if (!found) {
    log_error(LogLevel::Error, r.log(), 0, "user \"%.*s\" was not found in \"%s\"",
              static_cast<int>(user.size()), user.data(), file.c_str());
    return set_realm(r, realm);
  }
  std::string hashed = hash_like(std::string(password), stored);
  if (!hashed.empty() && hashed == stored) return Rc::Ok;
  log_error(LogLevel::Error, r.log(), 0, "user \"%.*s\": password mismatch",
            static_cast<int>(user.size()), user.data());
  return set_realm(r, realm);
}

// --- configuration ---------------------------------------------------------------------------

template <ComplexValue* AuthBasicLocConf::*kField, bool AuthBasicLocConf::*kSet>
Status value_directive(ConfContext& cf, const ConfNode& n, AuthBasicLocConf& conf) {
  if (conf.*kSet) return Status::error("is duplicate");
  auto* cv = cf.pool.make<ComplexValue>();
  if (Status s = cv->compile(cf, n.args[1]); !s.ok()) return s;
  conf.*kField = cv;
  conf.*kSet = true;
  return {};
}

Status user_file_directive(ConfContext& cf, const ConfNode& n, AuthBasicLocConf& conf) {
  if (conf.user_file_set) return Status::error("is duplicate");
  // A relative file is under the configuration's prefix, as nginx's conf paths.
  std::string path = n.args[1];
  if (!path.empty() && path[0] != '/' && path[0] != '$') path = cf.cycle.conf_prefix + path;
  auto* cv = cf.pool.make<ComplexValue>();
  if (Status s = cv->compile(cf, path); !s.ok()) return s;
  conf.user_file = cv;
  conf.user_file_set = true;
  return {};
}

AuthBasicLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<AuthBasicLocConf>();
}

Status merge_loc_conf(ConfContext&, const AuthBasicLocConf& prev, AuthBasicLocConf& conf) {
  if (!conf.realm_set) conf.realm = prev.realm;
  if (!conf.user_file_set) conf.user_file = prev.user_file;
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_auth_basic_module)) return {};
  add_phase_handler(cf, Phase::Access, auth_basic_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<value_directive<&AuthBasicLocConf::realm, &AuthBasicLocConf::realm_set>>(
        "auth_basic", kHttpMainSrvLoc | kHttpLmtConf | kTake1),
    directive<user_file_directive>("auth_basic_user_file", kHttpMainSrvLoc | kHttpLmtConf | kTake1),
};
static_assert(directives_of(kDirectives, &http_auth_basic_module));

}  // namespace

Module http_auth_basic_module{
    .name = "http_auth_basic",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
