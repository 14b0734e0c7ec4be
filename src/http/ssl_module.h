// The HTTP side of TLS (ngx_http_ssl_module): the ssl_* directives of http{} and server{}, a
// server context per server{} that has certificates, the server an SNI name selects, the
// `listen ... ssl` check, and the $ssl_* variables. The record layer is event/ssl.
// nginx: src/http/modules/ngx_http_ssl_module.c
#pragma once

#include "conf/conf_context.h"
#include "conf/module.h"
#include "conf/setting.h"
#include "event/ssl.h"
#include "http/code.h"

namespace weir::http {

extern Module http_ssl_module;

struct CoreSrvConf;
struct Request;
struct HttpAddr;

// The names of ssl_protocols and its twins (proxy_ssl_protocols): SSLv2 and SSLv3 are taken, as
// nginx takes them, and add nothing: Debian's OpenSSL has neither.
inline constexpr EnumName<uint32_t> kSslProtocolNames[] = {
    {"SSLv2", 0},
    {"SSLv3", 0},
    {"TLSv1", kSslTlsV1},
    {"TLSv1.1", kSslTlsV1_1},
    {"TLSv1.2", kSslTlsV1_2},
    {"TLSv1.3", kSslTlsV1_3},
};
// A context made while loading the configuration, freed with it.
void keep_ssl_context(ConfContext& cf, ssl_ctx_st* ctx);

// Setters the ssl_* directives share with their upstream twins (proxy_ssl_*, and uwsgi's and grpc's
// to come): a file by the prefix, a password file read at load, a conf command kept in order.
namespace ssl_slot {

template <auto M>
Status path(ConfContext& cf, const ConfNode& n, slot::owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  f = cf.full_name(n.args[1], true);  // nginx: by the configuration's directory
  return {};
}

template <auto M>
Status password_file(ConfContext& cf, const ConfNode& n, slot::owner_of<M>& conf) {
  auto& list = conf.*M;
  if (list != nullptr) return Status::error("is duplicate");
  Result<std::vector<std::string>> lines = ssl_read_password_file(cf.full_name(n.args[1], true));
  if (!lines.ok()) return cf.error(lines.status().message());  // nginx names no directive
  list = cf.pool.make<std::vector<std::string>>(std::move(*lines));
  return {};
}

template <auto M>
Status conf_command(ConfContext& cf, const ConfNode& n, slot::owner_of<M>& conf) {
  auto& list = conf.*M;
  if (list == nullptr) list = cf.pool.make<std::vector<std::pair<std::string, std::string>>>();
  list->emplace_back(n.args[1], n.args[2]);
  return {};
}

}  // namespace ssl_slot

// The server context of a server{} (nullptr when it has no certificate).
ssl_ctx_st* server_ssl_context(const CoreSrvConf& cscf);
// ssl_verify_client: Ok, or 495 (the certificate failed verification) / 496 (none was sent), with
// nginx's log line.
Code verify_client_certificate(Request& r);
// `ssl on` in a server{} (deprecated): its connections are TLS whatever the listen says.
bool server_ssl_enabled(const CoreSrvConf& cscf);
// ssl_buffer_size of a server{}.
size_t server_ssl_buffer_size(const CoreSrvConf& cscf);
// An address with `listen ... ssl`: its default server must have a certificate (nginx's message
// otherwise); the SNI lookup is installed on every context of its servers.
Status check_ssl_address(ConfContext& cf, const HttpAddr& addr);

}  // namespace weir::http
