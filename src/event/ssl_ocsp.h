// Client certificates checked with OCSP (ssl_ocsp): after a handshake whose client certificate
// verified, the leaf (ssl_ocsp leaf) or every certificate of its chain below the root (ssl_ocsp
// on) is asked about at its OCSP responder - the certificate's own, or ssl_ocsp_responder - unless
// ssl_ocsp_cache's shared zone holds a fresh answer, before the connection reads its first request.
// A request on a connection whose certificate is revoked, unknown to the responder, or could not be
// checked is answered 400 and $ssl_client_verify says why, as nginx's.
// nginx: src/event/ngx_event_openssl_stapling.c (ngx_ssl_ocsp_validate, ngx_ssl_ocsp_cache_*)
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "event/ocsp_fetch.h"

struct ssl_ctx_st;

namespace weir {

struct Connection;
class SlabPool;

enum class SslOcspMode : uint8_t { Off, Chain, Leaf };

// ssl_ocsp_cache shared:NAME:SIZE: answers kept by certificate (its issuer's name and key, its
// serial number) until their nextUpdate, an hour when they have none; the oldest go first when
// the zone is full. The zone's owner fills slab and store when it is mapped.
struct SslOcspCacheShm {
  static constexpr const char* kKind = "OCSP cache";
  std::string name;
  SlabPool* slab = nullptr;
  void* store = nullptr;
};
// The store's root, made in a newly mapped zone's slab (nullptr: the zone is too small).
void* ssl_ocsp_cache_create(SlabPool& slab);

struct SslOcspConf {
  SslOcspMode mode = SslOcspMode::Off;
  OcspResponder responder;  // ssl_ocsp_responder; no host: each certificate's own
  SslOcspCacheShm* cache = nullptr;
  Resolver* resolver = nullptr;  // the server's, for responders named by host (nullptr: none)
  uint64_t resolver_timeout = 30000;
};
// Client certificates of ctx's handshakes are checked as conf says.
void ssl_setup_ocsp(ssl_ctx_st* ctx, const SslOcspConf& conf);

using SslOcspDone = void (*)(Connection& c);
// After the handshake. Ok: nothing to wait for (no check here, no verified certificate, or every
// answer was in the cache); Again: answers are being fetched, and done(c) runs once they are in
// (not when the connection closes first); Error: the chain could not be made (logged).
Rc ssl_ocsp_validate(Connection& c, SslOcspDone done);
// Why the client's certificate failed its check, in nginx's words, or nullptr.
const char* ssl_ocsp_failure(const Connection& c);

// A connection's check, freed with its TLS state.
struct OcspCheck;
void ssl_ocsp_free(OcspCheck* check);

}  // namespace weir
