// The HTTP side of TLS (ngx_http_ssl_module): the ssl_* directives of http{} and server{}, a
// server context per server{} that has certificates, the server an SNI name selects, the
// `listen ... ssl` check, and the $ssl_* variables. The record layer is event/ssl.
// nginx: src/http/modules/ngx_http_ssl_module.c
#pragma once

#include "conf/conf_context.h"
#include "conf/module.h"
#include "event/ssl.h"
#include "http/code.h"

namespace weir::http {

extern Module http_ssl_module;

struct CoreSrvConf;
struct Request;
struct HttpAddr;

// ssl_protocols and its twins (proxy_ssl_protocols): the kSslTlsV* bits the arguments name.
Status parse_ssl_protocols(const ConfNode& n, uint32_t& mask);
// A context made while loading the configuration, freed with it.
void keep_ssl_context(ConfContext& cf, ssl_ctx_st* ctx);

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
