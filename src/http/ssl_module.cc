#include "http/ssl_module.h"

#include <string>
#include <vector>

#include "conf/cycle.h"
#include "conf/setting.h"
#include "core/str.h"
#include "event/ssl_ocsp.h"
#include "http/core_module.h"
#include "http/headers_in.h"
#include "http/http2.h"
#include "http/http_connection.h"
#include "http/request.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

namespace {

// The context, freed with the configuration that made it.
struct OwnedContext {
  ssl_ctx_st* ctx = nullptr;
  ~OwnedContext() {
    if (ctx != nullptr) ssl_free_context(ctx);
  }
};

// ssl_session_cache's arguments.
struct SessionCacheSpec {
  SslSessionCache mode = SslSessionCache::None;
  long builtin_size = 20480;
  bool builtin = false;
  SslSessionShm* shared = nullptr;
};

struct SslSrvConf {
  static constexpr Module* kModule = &http_ssl_module;
  static constexpr ConfLevel kLevel = ConfLevel::Srv;

  Setting<bool> enable;                              // `ssl on` (deprecated)
  std::vector<std::string>* certificates = nullptr;  // as written
  std::vector<std::string>* keys = nullptr;
  // Names with variables: made per handshake, relative to conf_prefix.
  std::vector<std::pair<ComplexValue, ComplexValue>>* cert_values = nullptr;
  std::string conf_prefix;
  Setting<uint32_t> protocols;
  Setting<std::string> ciphers, ecdh_curve, dhparam;
  Setting<bool> prefer_server_ciphers, session_tickets;
  Setting<SessionCacheSpec> session_cache;
  Setting<uint64_t> session_timeout;
  Setting<size_t> buffer_size;
  Setting<bool> reject_handshake;
  Setting<bool> stapling, stapling_verify;
  Setting<bool> early_data;
  Setting<int> verify_client;  // 0 off, 1 on, 2 optional, 3 optional_no_ca
  Setting<int64_t> verify_depth;
  Setting<std::string> client_certificate, crl;
  Setting<std::string> stapling_file, stapling_responder, trusted_certificate;
  Setting<SslOcspMode> ocsp;
  Setting<std::string> ocsp_responder;
  Setting<SslOcspCacheShm*> ocsp_cache;             // nullptr: off
  std::vector<std::string>* passwords = nullptr;    // ssl_password_file's lines
  std::vector<std::string>* ticket_keys = nullptr;  // ssl_session_ticket_key files
  std::vector<std::pair<std::string, std::string>>* conf_commands = nullptr;
  ssl_ctx_st* ctx = nullptr;
};

const SslSrvConf& ssl_conf(const CoreSrvConf& cscf) {
  return conf_of<SslSrvConf>(cscf.ctx->srv_conf);
}

// --- directives --------------------------------------------------------------------------------

Status ssl_on(ConfContext& cf, const ConfNode& n, SslSrvConf& conf) {
  if (Status s = slot::flag<&SslSrvConf::enable>(cf, n, conf); !s.ok()) return s;
  cf.warn(LogLevel::Warn,
          "the \"ssl\" directive is deprecated, use the \"listen ... ssl\" directive "
          "instead");
  return {};
}

// nginx names every TLS file relative to the configuration's directory.
template <std::vector<std::string>* SslSrvConf::*List>
Status add_file(ConfContext& cf, const ConfNode& n, SslSrvConf& conf) {
  auto*& list = conf.*List;
  if (list == nullptr) list = cf.pool.make<std::vector<std::string>>();
  list->push_back(cf.full_name(n.args[1], true));
  return {};
}

// ssl_certificate, ssl_certificate_key: a file, "data:" and the PEM, or a name with variables
// (made for each handshake, after SNI): kept as written until the merge decides.
template <std::vector<std::string>* SslSrvConf::*List>
Status add_certificate(ConfContext& cf, const ConfNode& n, SslSrvConf& conf) {
  auto*& list = conf.*List;
  if (list == nullptr) list = cf.pool.make<std::vector<std::string>>();
  list->push_back(n.args[1]);
  return {};
}

// A shared cache's zone (sessions, OCSP answers): the store is made when the zone is mapped, or
// kept from the last configuration's zone of the same name and size (what it holds stays valid
// across a reload).
template <class Shm, void* (*Create)(SlabPool&)>
Status init_store_zone(SharedZone& zone, void* old_data) {
  auto* shm = static_cast<Shm*>(zone.data);
  shm->slab = zone.slab;
  if (old_data != nullptr) {
    shm->store = static_cast<Shm*>(old_data)->store;
    return {};
  }
  shm->store = Create(*zone.slab);
  if (shm->store == nullptr) {
    return Status::errorf("%s \"%s\" is too small", Shm::kKind, zone.name.c_str());
  }
  zone.slab->data = shm->store;
  return {};
}

// "shared:NAME:SIZE": the zone, declared for a Shm store (8 pages at least), or nginx's error.
template <class Shm, void* (*Create)(SlabPool&)>
Result<Shm*> shared_store(ConfContext& cf, std::string_view word, const void* tag) {
  std::string w(word);
  std::string_view rest = word.substr(7);
  size_t colon = rest.find(':');
  auto size = colon == std::string_view::npos || colon == 0 ? std::nullopt
                                                            : parse_size(rest.substr(colon + 1));
  if (!size) return cf.errorf("invalid %s \"%s\"", Shm::kKind, w.c_str());
  if (*size < 8 * 4096) return cf.errorf("%s \"%s\" is too small", Shm::kKind, w.c_str());
  std::string name(rest.substr(0, colon));
  Result<SharedZone*> zone = cf.cycle.add_zone(name, *size, tag);
  if (!zone.ok()) return zone.status();
  if ((*zone)->data == nullptr) {
    auto* shm = cf.pool.make<Shm>();
    shm->name = name;
    (*zone)->data = shm;
    (*zone)->init = init_store_zone<Shm, Create>;
  }
  return static_cast<Shm*>((*zone)->data);
}

// ssl_session_cache off | none | [builtin[:size]] [shared:name:size].
Status set_session_cache(ConfContext& cf, const ConfNode& n, SslSrvConf& conf) {
  if (conf.session_cache.set) return Status::error("is duplicate");
  SessionCacheSpec spec;
  spec.mode = SslSessionCache::None;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    auto invalid = [&] { return cf.errorf("invalid session cache \"%s\"", n.args[i].c_str()); };
    if (a == "off" || a == "none") {  // later words override earlier ones, as nginx's
      spec.mode = a == "off" ? SslSessionCache::Off : SslSessionCache::None;
      spec.builtin = false;
    } else if (a == "builtin" || a.starts_with("builtin:")) {
      if (a.size() > 8) {
        auto v = parse_int(a.substr(8));
        if (!v || *v < 0) return invalid();
        spec.builtin_size = static_cast<long>(*v);
      }
      spec.mode = SslSessionCache::Builtin;
      spec.builtin = true;
    } else if (a.starts_with("shared:")) {
      Result<SslSessionShm*> shm =
          shared_store<SslSessionShm, ssl_session_store_create>(cf, a, &http_ssl_module);
      if (!shm.ok()) return shm.status();
      spec.shared = *shm;
    } else {
      return invalid();
    }
  }
  conf.session_cache = spec;
  return {};
}

// The OCSP cache's zones are not the session cache's: one name cannot serve both (nginx's tags).
constexpr char kOcspZoneTag = 0;

// ssl_ocsp_cache off | shared:name:size.
Status set_ocsp_cache(ConfContext& cf, const ConfNode& n, SslSrvConf& conf) {
  if (conf.ocsp_cache.set) return Status::error("is duplicate");
  std::string_view a = n.args[1];
  if (a == "off") {
    conf.ocsp_cache = nullptr;
    return {};
  }
  if (!a.starts_with("shared:")) return cf.errorf("invalid OCSP cache \"%s\"", n.args[1].c_str());
  Result<SslOcspCacheShm*> shm =
      shared_store<SslOcspCacheShm, ssl_ocsp_cache_create>(cf, a, &kOcspZoneTag);
  if (!shm.ok()) return shm.status();
  conf.ocsp_cache = *shm;
  return {};
}

// --- configuration -----------------------------------------------------------------------------

ssl_ctx_st* select_server(Connection& c, std::string_view name, bool& reject);

std::string pem_name(ConfContext& cf, const std::string& name) {
  return ssl_pem_name(name, cf.cycle.conf_prefix);
}

// Certificates with variables: evaluated for this handshake in the server SNI chose, as nginx
// evaluates them (with a request made for it alone, so that connection variables such as
// $ssl_server_name have their values).
bool handshake_certificates(Connection& c, std::vector<std::pair<std::string, std::string>>& pairs,
                            const std::vector<std::string>*& passwords) {
  HttpConnection* hc = http_connection_of(c);
  if (hc == nullptr) return false;
  const SslSrvConf& conf = conf_of<SslSrvConf>(hc->conf_ctx->srv_conf);
  if (conf.cert_values == nullptr) return true;
  Request r;
  r.connection = &c;
  r.http_connection = hc;
  r.pool = &c.pool;
  r.main = &r;
  r.main_conf = hc->conf_ctx->main_conf;
  r.srv_conf = hc->conf_ctx->srv_conf;
  r.loc_conf = hc->conf_ctx->loc_conf;
  r.ctx = static_cast<void**>(c.pool.alloc_zeroed(sizeof(void*) * module_count(ModuleType::Http)));
  r.variables = new_variable_values(c.pool, core_main(r).variables.count());
  for (const auto& [cv, kv] : *conf.cert_values) {
    pairs.emplace_back(ssl_pem_name(cv.eval(r), conf.conf_prefix),
                       ssl_pem_name(kv.eval(r), conf.conf_prefix));
  }
  passwords = conf.passwords;
  return true;
}

// ALPN: the server SNI chose (or the address) speaks HTTP/2.
bool h2_allowed(Connection& c) {
  HttpConnection* hc = http_connection_of(c);
  return hc != nullptr && http2_allowed(*hc);
}

SslSrvConf* create_srv_conf(ConfContext& cf) {
  return cf.pool.make<SslSrvConf>();
}

Status merge_srv_conf(ConfContext& cf, const SslSrvConf& prev, SslSrvConf& conf) {
  conf.enable.merge(prev.enable, false);
  if (conf.certificates == nullptr) {
    conf.certificates = prev.certificates;
    conf.keys = prev.keys;
  }
  conf.protocols.merge(prev.protocols, kSslTlsV1 | kSslTlsV1_1 | kSslTlsV1_2 | kSslTlsV1_3);
  conf.ciphers.merge(prev.ciphers, "HIGH:!aNULL:!MD5");
  conf.ecdh_curve.merge(prev.ecdh_curve, "auto");
  conf.dhparam.merge(prev.dhparam, "");
  conf.prefer_server_ciphers.merge(prev.prefer_server_ciphers, false);
  conf.session_tickets.merge(prev.session_tickets, true);
  conf.session_cache.merge(prev.session_cache, SessionCacheSpec{});
  conf.session_timeout.merge(prev.session_timeout, 300);
  conf.buffer_size.merge(prev.buffer_size, 16384);
  conf.reject_handshake.merge(prev.reject_handshake, false);
  conf.stapling.merge(prev.stapling, false);
  conf.early_data.merge(prev.early_data, false);
  conf.stapling_verify.merge(prev.stapling_verify, false);
  conf.stapling_file.merge(prev.stapling_file, "");
  conf.stapling_responder.merge(prev.stapling_responder, "");
  conf.trusted_certificate.merge(prev.trusted_certificate, "");
  conf.verify_client.merge(prev.verify_client, 0);
  conf.verify_depth.merge(prev.verify_depth, 1);
  conf.client_certificate.merge(prev.client_certificate, "");
  conf.crl.merge(prev.crl, "");
  conf.ocsp.merge(prev.ocsp, SslOcspMode::Off);
  conf.ocsp_responder.merge(prev.ocsp_responder, "");
  conf.ocsp_cache.merge(prev.ocsp_cache, nullptr);
  if (conf.passwords == nullptr) conf.passwords = prev.passwords;
  if (conf.ticket_keys == nullptr) conf.ticket_keys = prev.ticket_keys;
  if (conf.conf_commands == nullptr) conf.conf_commands = prev.conf_commands;
  size_t ncert = conf.certificates != nullptr ? conf.certificates->size() : 0;
  size_t nkey = conf.keys != nullptr ? conf.keys->size() : 0;
  if (ncert == 0 && !*conf.reject_handshake) {
    if (*conf.enable) {
      return cf.error("no \"ssl_certificate\" is defined for the \"ssl\" directive");
    }
    return {};
  }
  if (nkey < ncert) {
    return Status::located("no \"ssl_certificate_key\" is defined for certificate \"" +
                           (*conf.certificates)[nkey] + "\"");
  }
  SslServerConf sc;
  bool dynamic = false;
  for (size_t i = 0; i < ncert; i++) {
    dynamic = dynamic || (*conf.certificates)[i].find('$') != std::string::npos ||
              (*conf.keys)[i].find('$') != std::string::npos;
  }
  if (dynamic) {
    // nginx: once one name has variables, every pair is loaded per handshake.
    conf.cert_values = cf.pool.make<std::vector<std::pair<ComplexValue, ComplexValue>>>(ncert);
    for (size_t i = 0; i < ncert; i++) {
      auto& [cv, kv] = (*conf.cert_values)[i];
      if (Status st = cv.compile(cf, (*conf.certificates)[i]); !st.ok()) return st;
      if (Status st = kv.compile(cf, (*conf.keys)[i]); !st.ok()) return st;
    }
    conf.conf_prefix = cf.cycle.conf_prefix;
  } else {
    for (size_t i = 0; i < ncert; i++) {
      sc.certificates.push_back(pem_name(cf, (*conf.certificates)[i]));
      sc.keys.push_back(pem_name(cf, (*conf.keys)[i]));
    }
  }
  if (conf.passwords != nullptr) sc.passwords = *conf.passwords;
  if (conf.ticket_keys != nullptr) sc.ticket_keys = *conf.ticket_keys;
  if (conf.conf_commands != nullptr) sc.conf_commands = *conf.conf_commands;
  sc.protocols = *conf.protocols;
  sc.ciphers = *conf.ciphers;
  sc.prefer_server_ciphers = *conf.prefer_server_ciphers;
  sc.ecdh_curve = *conf.ecdh_curve;
  sc.dhparam = conf.dhparam->empty() ? "" : cf.full_name(*conf.dhparam, true);
  sc.session_cache = conf.session_cache->mode;
  sc.builtin_size = conf.session_cache->builtin_size;
  sc.builtin = conf.session_cache->builtin;
  sc.shared = conf.session_cache->shared;
  sc.session_timeout = *conf.session_timeout;
  sc.session_tickets = *conf.session_tickets;
  if (*conf.verify_client != 0 && *conf.verify_client != 3 && conf.client_certificate->empty() &&
      conf.trusted_certificate->empty()) {
    return Status::located("no ssl_client_certificate for ssl_verify_client");
  }
  sc.verify_client = *conf.verify_client;
  sc.verify_depth = static_cast<int>(*conf.verify_depth);
  sc.client_certificate = *conf.client_certificate;
  sc.crl = *conf.crl;
  sc.trusted_certificate = *conf.trusted_certificate;
  sc.stapling = *conf.stapling;
  sc.stapling_file = *conf.stapling_file;
  sc.stapling_responder = *conf.stapling_responder;
  sc.stapling_verify = *conf.stapling_verify;
  // The server's resolver (the core module's configuration is merged first), as nginx gives it.
  const auto& clcf = conf_of<CoreLocConf>(cf.http->loc_conf);
  sc.resolver = clcf.resolver;
  sc.resolver_timeout = *clcf.resolver_timeout;
  sc.early_data = *conf.early_data;
  SslOcspConf ocsp;
  if (*conf.ocsp != SslOcspMode::Off) {
    if (*conf.verify_client == 3) {
      return Status::located(
          "\"ssl_ocsp\" is incompatible with \"ssl_verify_client optional_no_ca\"");
    }
    ocsp.mode = *conf.ocsp;
    ocsp.cache = *conf.ocsp_cache;
    ocsp.resolver = sc.resolver;
    ocsp.resolver_timeout = sc.resolver_timeout;
    if (!conf.ocsp_responder->empty()) {
      Result<OcspResponder> rs = parse_ocsp_responder(*conf.ocsp_responder, true);
      if (!rs.ok()) return Status::located(rs.status().message() + " in \"ssl_ocsp_responder\"");
      ocsp.responder = std::move(*rs);
    }
  }
  std::vector<std::string> warnings;
  Result<ssl_ctx_st*> ctx = ssl_server_context(sc, &warnings);
  ConfContext plain = cf;
  plain.node = nullptr;  // nginx's stapling warnings name no place
  for (const std::string& w : warnings) plain.warn(LogLevel::Warn, "%s", w.c_str());
  // nginx reports OpenSSL's failures without the directive's place.
  if (!ctx.ok()) return Status::located(ctx.status().message());
  conf.ctx = *ctx;
  keep_ssl_context(cf, *ctx);
  if (ocsp.mode != SslOcspMode::Off) ssl_setup_ocsp(*ctx, ocsp);
  ssl_on_server_name(*ctx, select_server);
  ssl_on_alpn(*ctx, h2_allowed);
  if (dynamic) ssl_on_certificates(*ctx, handshake_certificates);
  return {};
}

// SNI: the server of that name on the connection's address; its context when it has one. The
// connection's default server becomes that one, as nginx.
ssl_ctx_st* select_server(Connection& c, std::string_view name, bool& reject) {
  HttpConnection* hc = http_connection_of(c);
  if (hc == nullptr || hc->addr_conf == nullptr) return nullptr;
  CoreSrvConf* cscf = nullptr;
  std::string_view host = name;
  if (!host.empty() && validate_host(host, c.pool)) {
    cscf = hc->addr_conf->servers.find(nullptr, host);
  }
  if (cscf != nullptr) hc->conf_ctx = cscf->ctx;
  const SslSrvConf& conf = conf_of<SslSrvConf>(hc->conf_ctx->srv_conf);
  reject = *conf.reject_handshake;
  return conf.ctx;
}

// --- variables ---------------------------------------------------------------------------------

void var_ssl_protocol(Request& r, VariableValue& v, uintptr_t) {
  if (r.connection->ssl == nullptr) {
    v.not_found = true;
    return;
  }
  v.set(ssl_protocol(*r.connection));
}

void var_ssl_cipher(Request& r, VariableValue& v, uintptr_t) {
  if (r.connection->ssl == nullptr) {
    v.not_found = true;
    return;
  }
  v.set(ssl_cipher(*r.connection));
}

void var_ssl_server_name(Request& r, VariableValue& v, uintptr_t) {
  std::string_view name = ssl_server_name(*r.connection);
  if (name.empty()) {
    v.not_found = true;
    return;
  }
  v.set(name);
}

void var_ssl_session_reused(Request& r, VariableValue& v, uintptr_t) {
  if (r.connection->ssl == nullptr) {
    v.not_found = true;
    return;
  }
  v.set(ssl_session_reused(*r.connection) ? "r" : ".");
}

void var_ssl_client_verify(Request& r, VariableValue& v, uintptr_t) {
  if (r.connection->ssl == nullptr) {
    v.not_found = true;
    return;
  }
  long error = 0;
  switch (ssl_client_certificate(*r.connection, &error)) {
    case SslClientCert::None:
      v.set("NONE");
      return;
    case SslClientCert::Verified:
      if (const char* why = ssl_ocsp_failure(*r.connection)) {
        v.set(r.pool->dup(std::string("FAILED:") + why));
        return;
      }
      v.set("SUCCESS");
      return;
    case SslClientCert::Failed:
      v.set(r.pool->dup("FAILED:" + ssl_verify_error_text(error)));
      return;
  }
}

void var_ssl_client_field(Request& r, VariableValue& v, uintptr_t field) {
  if (r.connection->ssl == nullptr) {
    v.not_found = true;
    return;
  }
  std::string text = ssl_client_cert_field(*r.connection, static_cast<SslCertField>(field));
  if (text.empty()) {
    v.not_found = true;  // no certificate: "-" in logs, as nginx
    return;
  }
  v.set(r.pool->dup(text));
}

// $ssl_session_id, $ssl_curve, $ssl_curves, $ssl_ciphers: "-" in logs on a plain connection or
// when empty, as nginx.
template <std::string (*Get)(const Connection&)>
void var_ssl_text(Request& r, VariableValue& v, uintptr_t) {
  std::string text = Get(*r.connection);
  if (text.empty()) {
    v.not_found = true;
    return;
  }
  v.set(r.pool->dup(text));
}

// $ssl_early_data: "1" while the connection is still in TLS 1.3 early data (the request came
// before the handshake completed: it may be a replay), else empty ("-" in logs, as nginx's).
void var_ssl_early_data(Request& r, VariableValue& v, uintptr_t) {
  if (!ssl_in_early_data(*r.connection)) {
    v.not_found = true;
    return;
  }
  v.set("1");
}

constexpr VariableDef kVars[] = {
    {"ssl_client_verify", var_ssl_client_verify, nullptr, 0},
    {"ssl_client_s_dn", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::SDn)},
    {"ssl_client_i_dn", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::IDn)},
    {"ssl_client_serial", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::Serial)},
    {"ssl_client_fingerprint", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::Fingerprint)},
    {"ssl_client_raw_cert", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::RawCert)},
    {"ssl_client_cert", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::Cert)},
    {"ssl_client_escaped_cert", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::EscapedCert)},
    {"ssl_client_s_dn_legacy", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::SDnLegacy)},
    {"ssl_client_i_dn_legacy", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::IDnLegacy)},
    {"ssl_client_v_start", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::VStart)},
    {"ssl_client_v_end", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::VEnd)},
    {"ssl_client_v_remain", var_ssl_client_field, nullptr, 0,
     static_cast<uintptr_t>(SslCertField::VRemain)},
    {"ssl_protocol", var_ssl_protocol, nullptr, 0},
    {"ssl_alpn_protocol", var_ssl_text<ssl_alpn_protocol>, nullptr, 0},
    {"ssl_cipher", var_ssl_cipher, nullptr, 0},
    {"ssl_server_name", var_ssl_server_name, nullptr, 0},
    {"ssl_session_reused", var_ssl_session_reused, nullptr, 0},
    {"ssl_session_id", var_ssl_text<ssl_session_id>, nullptr, 0},
    {"ssl_curve", var_ssl_text<ssl_curve>, nullptr, 0},
    {"ssl_curves", var_ssl_text<ssl_client_curves>, nullptr, 0},
    {"ssl_ciphers", var_ssl_text<ssl_client_ciphers>, nullptr, 0},
    {"ssl_early_data", var_ssl_early_data, nullptr, 0},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

constexpr EnumName<int> kVerifyClient[] = {
    {"off", 0}, {"on", 1}, {"optional", 2}, {"optional_no_ca", 3}};

constexpr EnumName<SslOcspMode> kOcspModes[] = {
    {"off", SslOcspMode::Off}, {"on", SslOcspMode::Chain}, {"leaf", SslOcspMode::Leaf}};

constexpr uint32_t kWhere = kHttpMainSrv;
constexpr Directive kDirectives[] = {
    directive<ssl_on>("ssl", kWhere | kFlag),
    directive<add_certificate<&SslSrvConf::certificates>>("ssl_certificate", kWhere | kTake1),
    directive<add_certificate<&SslSrvConf::keys>>("ssl_certificate_key", kWhere | kTake1),
    directive<slot::bitmask<&SslSrvConf::protocols, kSslProtocolNames>>("ssl_protocols",
                                                                        kWhere | kOneMore),
    directive<slot::str<&SslSrvConf::ciphers>>("ssl_ciphers", kWhere | kTake1),
    directive<slot::str<&SslSrvConf::ecdh_curve>>("ssl_ecdh_curve", kWhere | kTake1),
    directive<slot::str<&SslSrvConf::dhparam>>("ssl_dhparam", kWhere | kTake1),
    directive<slot::flag<&SslSrvConf::prefer_server_ciphers>>("ssl_prefer_server_ciphers",
                                                              kWhere | kFlag),
    directive<set_session_cache>("ssl_session_cache", kWhere | kTake12),
    directive<slot::sec<&SslSrvConf::session_timeout>>("ssl_session_timeout", kWhere | kTake1),
    directive<slot::flag<&SslSrvConf::session_tickets>>("ssl_session_tickets", kWhere | kFlag),
    directive<slot::size<&SslSrvConf::buffer_size>>("ssl_buffer_size", kWhere | kTake1),
    directive<ssl_slot::password_file<&SslSrvConf::passwords>>("ssl_password_file",
                                                               kWhere | kTake1),
    directive<add_file<&SslSrvConf::ticket_keys>>("ssl_session_ticket_key", kWhere | kTake1),
    directive<ssl_slot::conf_command<&SslSrvConf::conf_commands>>("ssl_conf_command",
                                                                  kWhere | kTake2),
    directive<slot::flag<&SslSrvConf::reject_handshake>>("ssl_reject_handshake", kWhere | kFlag),
    directive<slot::enum_<&SslSrvConf::verify_client, kVerifyClient>>("ssl_verify_client",
                                                                      kWhere | kTake1),
    directive<slot::num<&SslSrvConf::verify_depth>>("ssl_verify_depth", kWhere | kTake1),
    directive<ssl_slot::path<&SslSrvConf::client_certificate>>("ssl_client_certificate",
                                                               kWhere | kTake1),
    directive<ssl_slot::path<&SslSrvConf::crl>>("ssl_crl", kWhere | kTake1),
    directive<ssl_slot::path<&SslSrvConf::trusted_certificate>>("ssl_trusted_certificate",
                                                                kWhere | kTake1),
    directive<slot::flag<&SslSrvConf::stapling>>("ssl_stapling", kWhere | kFlag),
    directive<ssl_slot::path<&SslSrvConf::stapling_file>>("ssl_stapling_file", kWhere | kTake1),
    directive<slot::str<&SslSrvConf::stapling_responder>>("ssl_stapling_responder",
                                                          kWhere | kTake1),
    directive<slot::flag<&SslSrvConf::stapling_verify>>("ssl_stapling_verify", kWhere | kFlag),
    directive<slot::enum_<&SslSrvConf::ocsp, kOcspModes>>("ssl_ocsp", kWhere | kTake1),
    directive<set_ocsp_cache>("ssl_ocsp_cache", kWhere | kTake1),
    directive<slot::str<&SslSrvConf::ocsp_responder>>("ssl_ocsp_responder", kWhere | kTake1),
    directive<slot::flag<&SslSrvConf::early_data>>("ssl_early_data", kWhere | kFlag),
};
static_assert(directives_of(kDirectives, &http_ssl_module));

}  // namespace

void keep_ssl_context(ConfContext& cf, ssl_ctx_st* ctx) {
  cf.pool.make<OwnedContext>()->ctx = ctx;
}

ssl_ctx_st* server_ssl_context(const CoreSrvConf& cscf) {
  return ssl_conf(cscf).ctx;
}

Code verify_client_certificate(Request& r) {
  Connection& c = *r.connection;
  if (c.ssl == nullptr) return Rc::Ok;
  int mode = *r.srv<SslSrvConf>().verify_client;
  if (mode == 0) return Rc::Ok;
  long error = 0;
  SslClientCert cert = ssl_client_certificate(c, &error);
  if (cert == SslClientCert::Failed && (mode != 3 || !ssl_verify_error_optional(error))) {
    log_error(LogLevel::Info, *c.log, 0, "client SSL certificate verify error: (%ld:%s)", error,
              ssl_verify_error_text(error).c_str());
    ssl_forget_session(c);
    return Code::status(495);
  }
  if (mode == 1 && cert == SslClientCert::None) {
    log_error(LogLevel::Info, *c.log, 0, "client sent no required SSL certificate");
    ssl_forget_session(c);
    return Code::status(496);
  }
  if (const char* why = ssl_ocsp_failure(c)) {
    log_error(LogLevel::Info, *c.log, 0, "client SSL certificate verify error: %s", why);
    ssl_forget_session(c);
    return Code::status(495);
  }
  return Rc::Ok;
}

bool server_ssl_enabled(const CoreSrvConf& cscf) {
  return *ssl_conf(cscf).enable;
}

size_t server_ssl_buffer_size(const CoreSrvConf& cscf) {
  return *ssl_conf(cscf).buffer_size;
}

Status check_ssl_address(ConfContext& cf, const HttpAddr& addr) {
  const CoreSrvConf& def = *addr.servers.default_server;
  if (server_ssl_context(def) == nullptr) {
    const ConfNode* node = def.node;
    std::string where = node != nullptr && node->file != nullptr
                            ? node->file->path + ":" + std::to_string(node->line)
                            : std::string("the command line");
    return Status::located(
        "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in " + where);
  }
  (void)cf;
  return {};
}

Module http_ssl_module{
    .name = "http_ssl",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_srv_conf = create_conf<create_srv_conf>,
    .merge_srv_conf = merge_conf<merge_srv_conf>,
};

}  // namespace weir::http
