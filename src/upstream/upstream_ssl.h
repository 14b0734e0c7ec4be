// The TLS settings every upstream protocol that speaks TLS to its peer has under its own prefix -
// proxy_ssl_verify, grpc_ssl_certificate ... - made once: their values, their directives (named
// from the prefix at compile time), and their merge into a client context on the UpstreamConf.
// nginx: the ssl part of ngx_http_proxy_module.c and ngx_http_grpc_module.c
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conf/setting.h"
#include "http/script.h"
#include "http/ssl_module.h"
#include "upstream/upstream.h"
#include "upstream/upstream_settings.h"

namespace weir::http {

struct UpstreamSsl {
  ComplexValue* name = nullptr;  // *_ssl_name (default: the host of *_pass)
  Setting<bool> server_name, verify, session_reuse;
  Setting<int64_t> verify_depth;
  Setting<uint32_t> protocols;
  Setting<std::string> ciphers, trusted_certificate, crl, certificate, certificate_key;
  // *_ssl_certificate and _key as written (nginx 1.21.0 takes variables in them): with a variable
  // in either, both are evaluated for each connection to the peer.
  ComplexValue* certificate_value = nullptr;
  ComplexValue* certificate_key_value = nullptr;
  std::vector<std::string>* passwords = nullptr;
  std::vector<std::pair<std::string, std::string>>* conf_commands = nullptr;
};

// Merges conf with prev (nginx's defaults) and, where the location may speak TLS to its peer
// (used), makes the client context on out, offering alpn when not empty. prefix names the
// directives in messages ("proxy").
Status merge_upstream_ssl(ConfContext& cf, std::string_view prefix, const UpstreamSsl& prev,
                          UpstreamSsl& conf, bool used, std::string_view alpn, UpstreamConf& out);

namespace ssl_settings_detail {

Status set_name(ConfContext& cf, const ConfNode& n, UpstreamSsl& s);
// A client certificate or its key: a file (by the configuration's directory), "data:" and the
// PEM itself, or a name with variables, made for each connection. nginx: ngx_http_proxy_module's
// ngx_http_set_complex_value_zero_slot, ngx_ssl_load_certificate
template <Setting<std::string> UpstreamSsl::*M, ComplexValue* UpstreamSsl::*V>
Status set_pem(ConfContext& cf, const ConfNode& n, UpstreamSsl& s) {
  if (s.*V != nullptr) return Status::error("is duplicate");
  s.*V = cf.pool.make<ComplexValue>();
  if (Status st = (s.*V)->compile(cf, n.args[1]); !st.ok()) return st;
  s.*M = n.args[1];  // as written: messages name it so
  return {};
}

template <class Conf, UpstreamSsl Conf::*Ssl, auto Fn>
Status on_ssl(ConfContext& cf, const ConfNode& n, Conf& conf) {
  return Fn(cf, n, conf.*Ssl);
}

template <class Conf, UpstreamSsl Conf::*Ssl, settings_detail::Name Prefix,
          settings_detail::Name Suffix, auto Fn>
consteval Directive row(uint32_t type) {
  return directive<on_ssl<Conf, Ssl, Fn>>(settings_detail::Joined<Prefix, Suffix>::view, type);
}

}  // namespace ssl_settings_detail

// The *_ssl_* directives of a protocol whose location configuration Conf keeps them in Ssl.
template <class Conf, UpstreamSsl Conf::*Ssl, settings_detail::Name Prefix>
consteval auto upstream_ssl_directives() {
  using namespace ssl_settings_detail;
  using S = UpstreamSsl;
  constexpr uint32_t kWhere = kHttpMainSrvLoc;
  return std::array{
      row<Conf, Ssl, Prefix, "_ssl_session_reuse", slot::flag<&S::session_reuse>>(kWhere | kFlag),
      row<Conf, Ssl, Prefix, "_ssl_protocols",
          slot::bitmask<&UpstreamSsl::protocols, kSslProtocolNames>>(kWhere | kOneMore),
      row<Conf, Ssl, Prefix, "_ssl_ciphers", slot::str<&S::ciphers>>(kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_name", set_name>(kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_server_name", slot::flag<&S::server_name>>(kWhere | kFlag),
      row<Conf, Ssl, Prefix, "_ssl_verify", slot::flag<&S::verify>>(kWhere | kFlag),
      row<Conf, Ssl, Prefix, "_ssl_verify_depth", slot::num<&S::verify_depth>>(kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_trusted_certificate", ssl_slot::path<&S::trusted_certificate>>(
          kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_crl", ssl_slot::path<&S::crl>>(kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_certificate", set_pem<&S::certificate, &S::certificate_value>>(
          kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_certificate_key",
          set_pem<&S::certificate_key, &S::certificate_key_value>>(kWhere | kTake1),
      row<Conf, Ssl, Prefix, "_ssl_password_file", ssl_slot::password_file<&S::passwords>>(kWhere |
                                                                                           kTake1),
      row<Conf, Ssl, Prefix, "_ssl_conf_command", ssl_slot::conf_command<&S::conf_commands>>(
          kWhere | kTake2),
  };
}

}  // namespace weir::http
