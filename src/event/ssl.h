// TLS on a connection, with OpenSSL 3: a server context per set of certificates (protocols,
// ciphers, curves, session cache and tickets as the ssl_* directives say), and per connection the
// handshake and the record layer behind Connection's recv / recv_chain / send_chain, so that
// everything above reads and writes as on a plain socket. Output is gathered into records of
// ssl_buffer_size (16k): what SSL_write could not send yet stays in that buffer
// (Connection::buffered's kSslBuffered) and goes first on the next send. nginx:
// src/event/ngx_event_openssl.c
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "core/status.h"
#include "os/send_chain.h"
#include "os/socket.h"

struct ssl_st;
struct ssl_ctx_st;

namespace weir {

struct Connection;
class Resolver;

// ssl_protocols (bits).
enum : uint32_t {
  kSslTlsV1 = 0x1,
  kSslTlsV1_1 = 0x2,
  kSslTlsV1_2 = 0x4,
  kSslTlsV1_3 = 0x8,
};

// Bit of Connection::buffered: TLS output waits in the connection's record buffer.
inline constexpr uint8_t kSslBuffered = 0x01;

enum class SslSessionCache : uint8_t {
  Off,      // no session reuse at all
  None,     // nginx's "none": clients are told sessions may be reused, none are kept
  Builtin,  // OpenSSL's cache, per worker
};

class SlabPool;

// ssl_session_cache shared:NAME:SIZE: sessions kept in a shared zone's slab, found by every worker
// (a tree by session id, expired and evicted oldest first). The zone is mapped after the
// configuration is read: its owner fills slab and store then.
struct SslSessionShm {
  static constexpr const char* kKind = "session cache";
  std::string name;
  SlabPool* slab = nullptr;
  void* store = nullptr;
};
// The store's root, made in a newly mapped zone's slab (nullptr: the zone is too small).
void* ssl_session_store_create(SlabPool& slab);

struct SslServerConf {
  std::vector<std::string> certificates;  // PEM files or "data:" PEM (the chain after the leaf)
  std::vector<std::string> keys;          // their keys, pairwise
  uint32_t protocols = kSslTlsV1_2 | kSslTlsV1_3;
  std::string ciphers = "HIGH:!aNULL:!MD5";
  bool prefer_server_ciphers = false;
  std::string ecdh_curve = "auto";
  std::string dhparam;  // a PEM file of DH parameters ("" none)
  SslSessionCache session_cache = SslSessionCache::None;
  long builtin_size = 20480;  // sessions in the builtin cache
  bool builtin = false;       // "builtin" beside "shared:"
  SslSessionShm* shared = nullptr;
  std::vector<std::string> ticket_keys;  // ssl_session_ticket_key files: the first encrypts
  std::vector<std::string> passwords;    // ssl_password_file's lines, tried in turn for each key
  std::vector<std::pair<std::string, std::string>> conf_commands;  // ssl_conf_command
  uint64_t session_timeout = 300;                                  // seconds
  bool session_tickets = true;
  std::string trusted_certificate;  // ssl_trusted_certificate: CAs for verification, never sent
  bool stapling = false;            // ssl_stapling
  std::string stapling_file;        // a DER OCSP response stapled as it is
  std::string stapling_responder;   // ssl_stapling_responder
  bool stapling_verify = false;     // ssl_stapling_verify: fetched responses are verified
  Resolver* resolver = nullptr;     // the server's, for a responder named by host (nullptr: none)
  uint64_t resolver_timeout = 30000;
  bool early_data = false;  // ssl_early_data: TLS 1.3 0-RTT data accepted
  // ssl_verify_client: 0 off, 1 on, 2 optional, 3 optional_no_ca; the handshake never fails for
  // it: the request is answered 495/496 (nginx's way, so error_page can tell the user).
  int verify_client = 0;
  std::string client_certificate;  // CAs sent to clients and trusted for their certificates
  int verify_depth = 1;
  std::string crl;
};

// The client's certificate, after the handshake (ssl_verify_client).
enum class SslClientCert : uint8_t { None, Verified, Failed };
SslClientCert ssl_client_certificate(const Connection& c, long* verify_error);
// The client's certificate failed: its session leaves the cache, so that the client's next
// connection makes a full handshake (nginx's ngx_ssl_remove_cached_session).
void ssl_forget_session(Connection& c);
// Whether a verification error is one optional_no_ca lets through (an unknown CA).
bool ssl_verify_error_optional(long error);
std::string ssl_verify_error_text(long error);
// The $ssl_client_* values of the client's certificate ("" when none): s_dn, i_dn (RFC 2253),
// serial (hex), fingerprint (SHA-1 hex), raw_cert (PEM), v_start, v_end (nginx's date format),
// v_remain (days).
// The client certificate's parts the $ssl_client_* variables give: Cert is the PEM with a tab after
// each inner line break (nginx's deprecated $ssl_client_cert, fit for a header), EscapedCert the
// PEM %-escaped as a URI component, the *Legacy names in OpenSSL's old one-line form
// ("/C=../CN=..").
enum class SslCertField : uint8_t {
  SDn,
  IDn,
  SDnLegacy,
  IDnLegacy,
  Serial,
  Fingerprint,
  RawCert,
  Cert,
  EscapedCert,
  VStart,
  VEnd,
  VRemain
};
std::string ssl_client_cert_field(const Connection& c, SslCertField field);

// What -V says of the TLS library, as nginx: "built with OpenSSL 3.0.x ... (running with ...)\nTLS
// SNI support enabled\n".
std::string ssl_build_text();

// OpenSSL's queued errors as nginx prints them (" (SSL: error:...:reason)"), taken off the queue;
// and a Status of what failed with them.
std::string ssl_errors();
Status ssl_error(const std::string& what);

// ssl_password_file: its lines (the error in nginx's words).
Result<std::vector<std::string>> ssl_read_password_file(const std::string& file);

// A server context (SSL_CTX) made from conf; the error names the file and OpenSSL's reason, in
// nginx's words. Freed with ssl_free_context. warnings gets nginx's load-time warnings
// (ssl_stapling ignored ...).
Result<ssl_ctx_st*> ssl_server_context(const SslServerConf& conf,
                                       std::vector<std::string>* warnings = nullptr);
void ssl_free_context(ssl_ctx_st* ctx);

// SNI: fn gets the name the client sent ("" when none) and answers the context of the server that
// has it (nullptr: the current one stays); reject set: the handshake ends with an
// unrecognized_name alert (ssl_reject_handshake).
using SslServerNameFn = ssl_ctx_st* (*)(Connection& c, std::string_view name, bool& reject);
void ssl_on_server_name(ssl_ctx_st* ctx, SslServerNameFn fn);
// Certificates named by variables: fn gives this handshake's (certificate, key) pairs - files or
// "data:" PEM - and the passphrases to try; false fails the handshake.
using SslCertificatesFn = bool (*)(Connection& c,
                                   std::vector<std::pair<std::string, std::string>>& pairs,
                                   const std::vector<std::string>*& passwords);
void ssl_on_certificates(ssl_ctx_st* ctx, SslCertificatesFn fn);
// ALPN on a server context: h2 is chosen when the client offers it and h2_allowed(c) says the
// connection's server speaks it, else HTTP/1.x; a client offering neither is refused.
using SslAlpnFn = bool (*)(Connection& c);
void ssl_on_alpn(ssl_ctx_st* ctx, SslAlpnFn h2_allowed);
// The protocol ALPN chose ("" without one).
std::string_view ssl_alpn(const Connection& c);

// An upstream TLS context (proxy_ssl_*): the client side.
struct SslClientConf {
  uint32_t protocols = kSslTlsV1_2 | kSslTlsV1_3;
  std::string ciphers = "DEFAULT";
  std::string trusted_certificate;  // CA file for verification ("" none)
  std::string crl;                  // revocation lists the peer's chain is checked against
  int verify_depth = 1;
  std::string certificate, key;  // a client certificate ("" none)
  std::vector<std::string> passwords;
  bool session_reuse = true;
  std::vector<std::pair<std::string, std::string>> conf_commands;
  std::string alpn;  // the protocol offered by ALPN ("h2" for gRPC; "" none)
};
Result<ssl_ctx_st*> ssl_client_context(const SslClientConf& conf);

// Starts TLS on an outbound connection c: server_name goes as SNI when not empty; a session to
// resume (or nullptr). Error: logged.
Status ssl_create_client_connection(Connection& c, ssl_ctx_st* ctx, const std::string& server_name,
                                    void* session);
// A certificate or key as OpenSSL is given it: "data:" and the PEM as written, an absolute file
// name as it is, a relative one under conf_prefix (the configuration's directory), as nginx names
// them.
std::string ssl_pem_name(std::string_view name, std::string_view conf_prefix);
// A client certificate (and the chain after it) and its key for this connection alone: a file or
// "data:" and the PEM. An error says what could not be loaded, in nginx's words.
Status ssl_use_certificate(Connection& c, const std::string& certificate, const std::string& key,
                           const std::vector<std::string>& passwords);
// After a client handshake: the peer's certificate checked against the trusted CAs and name (an
// empty string, or nginx's error text); the session kept for the next connection (freed with
// ssl_free_session).
std::string ssl_verify_peer(Connection& c, std::string_view name);
void* ssl_get_session(Connection& c);
void ssl_free_session(void* session);

struct OcspCheck;  // event/ssl_ocsp.h
void ssl_ocsp_free(OcspCheck* check);

// Per connection, outside its pool (an idle keep-alive connection's pool is reset); released by
// close_connection.
struct SslConnection {
  ssl_st* ssl = nullptr;
  Buffer out;                  // gathered output not yet taken by SSL_write (no memory when idle)
  size_t buffer_size = 16384;  // ssl_buffer_size
  bool handshaked = false;
  bool socket_drained = false;      // the last read() under the record layer came short
  bool no_shutdown = false;         // the peer failed: no close_notify
  bool handshake_rejected = false;  // ssl_reject_handshake refused it
  // TLS 1.3 early data (ssl_early_data): tried once at the handshake; while in_early the request's
  // bytes come from SSL_read_early_data (the first one read by the handshake is early_byte) and
  // the answer goes with SSL_write_early_data.
  bool try_early_data = false;
  bool in_early = false;
  bool early_preread = false;
  char early_byte = 0;
  OcspCheck* ocsp = nullptr;          // ssl_ocsp's check of the client's certificate
  ssl_ctx_st* session_ctx = nullptr;  // the context sessions are cached under (SNI may change it)
  ~SslConnection();
};

// Starts TLS (the server side) on c with ctx. Error: logged.
Status ssl_create_connection(Connection& c, ssl_ctx_st* ctx, size_t buffer_size);
// Runs the handshake: Ok when done, Again while it waits for the socket (read.ready or
// write.ready cleared accordingly), Error when it failed (logged at info for a client's fault, as
// nginx's "SSL_do_handshake() failed").
Rc ssl_handshake(Connection& c);
// The record layer behind Connection (same answers as the plain functions).
IoResult ssl_recv(Connection& c, char* buf, size_t size);
IoResult ssl_recv_chain(Connection& c, ChainLink* chain, off_t limit);
SendResult ssl_send_chain(Connection& c, ChainLink* in, off_t limit);
// Whether decrypted or raw bytes wait to be read: 1 yes, 0 the peer closed, -1 nothing yet (or an
// error: errno).
int ssl_peek(Connection& c);
// The record layer as a connection's ops (set by ssl_create_connection).
struct ConnectionOps;
extern const ConnectionOps kSslOps;
// Sends close_notify (best effort, never waits) and frees the TLS state.
void ssl_shutdown(Connection& c);
// An idle connection gives back its record buffer when nothing waits in it (nginx's
// ngx_ssl_free_buffer).
void ssl_free_buffer(Connection& c);

// What the $ssl_* variables show.
std::string_view ssl_protocol(const Connection& c);
std::string_view ssl_cipher(const Connection& c);
std::string_view ssl_server_name(const Connection& c);
bool ssl_session_reused(const Connection& c);
// Whether the handshake is still in early data ($ssl_early_data).
bool ssl_in_early_data(const Connection& c);
// $ssl_session_id (hex), $ssl_curve (the negotiated group), $ssl_curves and $ssl_ciphers (the
// client's offer, ':'-separated, unknown ones in hex as nginx prints them).
std::string ssl_session_id(const Connection& c);
// The protocol ALPN chose ("h2", "http/1.1"); empty when none was.
std::string ssl_alpn_protocol(const Connection& c);
std::string ssl_curve(const Connection& c);
std::string ssl_client_curves(const Connection& c);
std::string ssl_client_ciphers(const Connection& c);

}  // namespace weir
