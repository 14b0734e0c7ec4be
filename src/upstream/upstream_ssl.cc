#include "upstream/upstream_ssl.h"

#include "event/ssl.h"

namespace weir::http {

namespace ssl_settings_detail {

Status set_name(ConfContext& cf, const ConfNode& n, UpstreamSsl& s) {
  if (s.name != nullptr) return Status::error("is duplicate");
  s.name = cf.pool.make<ComplexValue>();
  return s.name->compile(cf, n.args[1]);
}

}  // namespace ssl_settings_detail

Status merge_upstream_ssl(ConfContext& cf, std::string_view prefix, const UpstreamSsl& prev,
                          UpstreamSsl& conf, bool used, std::string_view alpn, UpstreamConf& out) {
  conf.server_name.merge(prev.server_name, false);
  conf.verify.merge(prev.verify, false);
  conf.session_reuse.merge(prev.session_reuse, true);
  conf.verify_depth.merge(prev.verify_depth, 1);
  conf.protocols.merge(prev.protocols, kSslTlsV1 | kSslTlsV1_1 | kSslTlsV1_2 | kSslTlsV1_3);
  conf.ciphers.merge(prev.ciphers, "DEFAULT");
  conf.trusted_certificate.merge(prev.trusted_certificate, "");
  conf.crl.merge(prev.crl, "");
  if (conf.certificate_value == nullptr) conf.certificate_value = prev.certificate_value;
  if (conf.certificate_key_value == nullptr)
    conf.certificate_key_value = prev.certificate_key_value;
  conf.certificate.merge(prev.certificate, "");
  conf.certificate_key.merge(prev.certificate_key, "");
  if (conf.name == nullptr) conf.name = prev.name;
  if (conf.passwords == nullptr) conf.passwords = prev.passwords;
  if (conf.conf_commands == nullptr) conf.conf_commands = prev.conf_commands;
  if (!used) return {};
  std::string p(prefix);
  if (*conf.verify && conf.trusted_certificate->empty()) {
    return cf.errorf("no %s_ssl_trusted_certificate for %s_ssl_verify", p.c_str(), p.c_str());
  }
  if (!conf.certificate->empty() && conf.certificate_key->empty()) {
    return cf.errorf("no \"%s_ssl_certificate_key\" is defined for certificate \"%s\"", p.c_str(),
                     conf.certificate->c_str());
  }
  SslClientConf sc;
  sc.protocols = *conf.protocols;
  sc.ciphers = *conf.ciphers;
  sc.trusted_certificate = *conf.trusted_certificate;
  sc.crl = *conf.crl;
  sc.verify_depth = static_cast<int>(*conf.verify_depth);
  bool per_connection = !conf.certificate->empty() && (!conf.certificate_value->is_static() ||
                                                       !conf.certificate_key_value->is_static());
  if (per_connection) {
    out.ssl_certificate = conf.certificate_value;
    out.ssl_certificate_key = conf.certificate_key_value;
    out.ssl_passwords = conf.passwords;
    out.ssl_conf_prefix = &cf.cycle.conf_prefix;
  } else {
    if (!conf.certificate->empty()) {
      sc.certificate = ssl_pem_name(*conf.certificate, cf.cycle.conf_prefix);
      sc.key = ssl_pem_name(*conf.certificate_key, cf.cycle.conf_prefix);
    }
  }
  if (conf.passwords != nullptr) sc.passwords = *conf.passwords;
  if (conf.conf_commands != nullptr) sc.conf_commands = *conf.conf_commands;
  sc.session_reuse = *conf.session_reuse;
  sc.alpn = alpn;
  Result<ssl_ctx_st*> ctx = ssl_client_context(sc);
  if (!ctx.ok()) return Status::located(ctx.status().message());
  keep_ssl_context(cf, *ctx);
  out.ssl = *ctx;
  out.ssl_server_name = *conf.server_name;
  out.ssl_verify = *conf.verify;
  out.ssl_session_reuse = *conf.session_reuse;
  return {};
}

}  // namespace weir::http
