#include "event/ssl_ocsp.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <new>

#include "core/log.h"
#include "core/queue.h"
#include "core/rbtree.h"
#include "core/slab.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/connection.h"
#include "event/ssl.h"

namespace weir {

// --- the shared cache ---------------------------------------------------------------------------

namespace {

// nginx's key: SHA-1 of the issuer's name, SHA-1 of its public key, the serial number (at most 20
// bytes, zero-padded).
constexpr size_t kKeyLen = 60;
using CacheKey = unsigned char[kKeyLen];

struct CacheStore {
  RbTree tree;
  QueueNode lru;  // newest first
};

struct CacheNode {
  RbNode node;  // key: a hash of the key
  QueueNode queue;
  time_t valid = 0;
  int status = 0;
  unsigned char key[kKeyLen];
};

CacheNode* node_of(QueueNode* q) {
  return reinterpret_cast<CacheNode*>(reinterpret_cast<char*>(q) - offsetof(CacheNode, queue));
}

uintptr_t key_hash(const CacheKey& key) {
  return static_cast<uintptr_t>(hash_bytes({reinterpret_cast<const char*>(key), kKeyLen}));
}

int compare_key(const CacheNode& n, uintptr_t hash, const CacheKey& key) {
  if (hash != n.node.key) return hash < n.node.key ? -1 : 1;
  return std::memcmp(key, n.key, kKeyLen);
}

bool less_key(const RbNode& a, const RbNode& b) {
  const auto& x = reinterpret_cast<const CacheNode&>(a);
  const auto& y = reinterpret_cast<const CacheNode&>(b);
  return compare_key(y, x.node.key, x.key) < 0;
}

bool make_key(X509* cert, X509* issuer, CacheKey& key) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  if (serial->length > 20) return false;
  if (X509_NAME_digest(X509_get_subject_name(issuer), EVP_sha1(), key, nullptr) != 1 ||
      X509_pubkey_digest(issuer, EVP_sha1(), key + 20, nullptr) != 1) {
    ERR_clear_error();
    return false;
  }
  std::memset(key + 40, 0, 20);
  std::memcpy(key + 40, serial->data, static_cast<size_t>(serial->length));
  return true;
}

void drop(SlabPool& slab, CacheStore& st, CacheNode* n) {
  st.tree.erase(&n->node);
  n->queue.unlink();
  slab.free_locked(n);
}

// A fresh answer's status, or -1. An expired one goes.
int cache_lookup(SslOcspCacheShm& shm, const CacheKey& key) {
  auto& st = *static_cast<CacheStore*>(shm.store);
  uintptr_t hash = key_hash(key);
  ShmLock lock(shm.slab->mutex());
  auto* n = reinterpret_cast<CacheNode*>(st.tree.find([&](const RbNode& at) {
    return compare_key(reinterpret_cast<const CacheNode&>(at), hash, key);
  }));
  if (n == nullptr) return -1;
  if (n->valid > clock::now()) return n->status;
  drop(*shm.slab, st, n);
  return -1;
}

// Kept until valid (an hour when the answer has no nextUpdate); the oldest entry makes room.
void cache_store(SslOcspCacheShm& shm, const CacheKey& key, int status, time_t valid,
                 const Log& log) {
  time_t now = clock::now();
  if (valid < now) return;
  if (valid == kOcspForever) valid = now + 3600;
  auto& st = *static_cast<CacheStore*>(shm.store);
  SlabPool& slab = *shm.slab;
  ShmLock lock(slab.mutex());
  void* mem = slab.alloc_locked(sizeof(CacheNode));
  if (mem == nullptr && !st.lru.empty()) {
    drop(slab, st, node_of(st.lru.back()));
    mem = slab.alloc_locked(sizeof(CacheNode));
  }
  if (mem == nullptr) {
    log_error(LogLevel::Alert, log, 0, "could not allocate new entry in OCSP cache \"%s\"",
              shm.name.c_str());
    return;
  }
  auto* n = new (mem) CacheNode;
  std::memcpy(n->key, key, kKeyLen);
  n->node.key = key_hash(key);
  n->status = status;
  n->valid = valid;
  st.tree.insert(&n->node, less_key);
  st.lru.push_front(&n->queue);
}

}  // namespace

void* ssl_ocsp_cache_create(SlabPool& slab) {
  void* p = slab.calloc_locked(sizeof(CacheStore));
  return p != nullptr ? new (p) CacheStore : nullptr;
}

// --- the check ----------------------------------------------------------------------------------

namespace {

int g_conf_index = -1;

void free_conf(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<SslOcspConf*>(ptr);
}

const SslOcspConf* conf_of(SSL_CTX* ctx) {
  if (g_conf_index < 0) return nullptr;
  return static_cast<const SslOcspConf*>(SSL_CTX_get_ex_data(ctx, g_conf_index));
}

}  // namespace

struct OcspCheck {
  enum class State : uint8_t { Checking, Done, Failed };

  Connection* c = nullptr;
  const SslOcspConf* conf = nullptr;
  STACK_OF(X509) * certs = nullptr;  // the verified chain, the leaf first
  int next = 0;                      // the certificate asked about next
  CacheKey key{};                    // of the one being fetched (with a cache)
  OcspFetch* fetch = nullptr;
  SslOcspDone done = nullptr;
  State state = State::Checking;
  int cert_status = V_OCSP_CERTSTATUS_GOOD;
  bool waiting = false;  // validate answered Again: done runs at the end

  ~OcspCheck() {
    if (fetch != nullptr) ocsp_fetch_cancel(fetch);
    sk_X509_pop_free(certs, X509_free);
  }
};

namespace {

// The verified chain, leaf first: OpenSSL's, or made again for a resumed session (which has none).
STACK_OF(X509) * verified_chain(Connection& c, X509* cert) {
  SSL* ssl = c.ssl->ssl;
  if (STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl)) return X509_chain_up_ref(chain);
  X509_STORE_CTX* sctx = X509_STORE_CTX_new();
  if (sctx == nullptr) {
    log_error(LogLevel::Error, *c.log, 0, "X509_STORE_CTX_new() failed%s", ssl_errors().c_str());
    return nullptr;
  }
  STACK_OF(X509)* out = nullptr;
  if (X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), cert,
                          SSL_get_peer_cert_chain(ssl)) != 1) {
    log_error(LogLevel::Error, *c.log, 0, "X509_STORE_CTX_init() failed%s", ssl_errors().c_str());
  } else if (X509_verify_cert(sctx) <= 0) {
    log_error(LogLevel::Error, *c.log, 0, "X509_verify_cert() failed%s", ssl_errors().c_str());
  } else if (out = X509_STORE_CTX_get1_chain(sctx); out == nullptr) {
    log_error(LogLevel::Error, *c.log, 0, "X509_STORE_CTX_get1_chain() failed%s",
              ssl_errors().c_str());
  }
  X509_STORE_CTX_free(sctx);
  return out;
}

// The certificate's own responder, from its Authority Information Access (nginx's words when it
// has none fit to ask).
bool certificate_responder(const Connection& c, X509* cert, OcspResponder& out) {
  STACK_OF(OPENSSL_STRING)* aia = X509_get1_ocsp(cert);
  const char* url = aia != nullptr ? sk_OPENSSL_STRING_value(aia, 0) : nullptr;
  if (url == nullptr) {
    X509_email_free(aia);
    log_error(LogLevel::Error, *c.log, 0, "no OCSP responder URL in certificate");
    return false;
  }
  Result<OcspResponder> rs = parse_ocsp_responder(url, false);
  X509_email_free(aia);
  if (!rs.ok()) {
    log_error(LogLevel::Error, *c.log, 0, "%s in certificate", rs.status().message().c_str());
    return false;
  }
  out = std::move(*rs);
  return true;
}

void fetched(void* owner, const OcspAnswer& answer);

// Over: the connection goes on when it waited.
void finish(OcspCheck& check, OcspCheck::State state) {
  check.state = state;
  if (check.waiting) check.done(*check.c);
}

// The next certificates in turn, from the cache while it knows them, until one must be fetched
// (the check waits), one is not good, or all are (nginx's ngx_ssl_ocsp_validate_next).
void check_next(OcspCheck& check) {
  const SslOcspConf& conf = *check.conf;
  int n = sk_X509_num(check.certs);
  for (;;) {
    if (check.next >= n - 1 || (conf.mode == SslOcspMode::Leaf && check.next == 1)) {
      finish(check, OcspCheck::State::Done);
      return;
    }
    X509* cert = sk_X509_value(check.certs, check.next);
    X509* issuer = sk_X509_value(check.certs, check.next + 1);
    OcspQuestion q;
    if (!conf.responder.host.empty()) {
      q.responder = conf.responder;
    } else if (!certificate_responder(*check.c, cert, q.responder)) {
      finish(check, OcspCheck::State::Failed);
      return;
    }
    check.next++;
    if (conf.cache != nullptr && conf.cache->store != nullptr) {
      if (!make_key(cert, issuer, check.key)) {
        finish(check, OcspCheck::State::Failed);
        return;
      }
      if (int status = cache_lookup(*conf.cache, check.key); status >= 0) {
        if (status == V_OCSP_CERTSTATUS_GOOD) continue;
        check.cert_status = status;
        finish(check, OcspCheck::State::Done);
        return;
      }
    }
    q.cert = cert;
    q.issuer = issuer;
    q.chain = check.certs;
    q.store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(check.c->ssl->ssl));
    q.resolver = conf.resolver;
    q.resolver_timeout = conf.resolver_timeout;
    check.fetch = ocsp_fetch(std::move(q), fetched, &check, *check.c->log);
    return;
  }
}

void fetched(void* owner, const OcspAnswer& answer) {
  auto& check = *static_cast<OcspCheck*>(owner);
  check.fetch = nullptr;
  if (!answer.ok) {
    finish(check, OcspCheck::State::Failed);
    return;
  }
  const SslOcspConf& conf = *check.conf;
  if (conf.cache != nullptr && conf.cache->store != nullptr) {
    cache_store(*conf.cache, check.key, answer.status, answer.valid, *check.c->log);
  }
  if (answer.status != V_OCSP_CERTSTATUS_GOOD) {
    check.cert_status = answer.status;
    finish(check, OcspCheck::State::Done);
    return;
  }
  check_next(check);
}

}  // namespace

void ssl_setup_ocsp(SSL_CTX* ctx, const SslOcspConf& conf) {
  if (g_conf_index < 0) {
    g_conf_index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_conf);
  }
  SSL_CTX_set_ex_data(ctx, g_conf_index, new SslOcspConf(conf));
}

Rc ssl_ocsp_validate(Connection& c, SslOcspDone done) {
  SslConnection* s = c.ssl;
  if (s == nullptr || s->ocsp != nullptr) return Rc::Ok;
  const SslOcspConf* conf = conf_of(SSL_get_SSL_CTX(s->ssl));
  if (conf == nullptr || conf->mode == SslOcspMode::Off) return Rc::Ok;
  if (SSL_get_verify_result(s->ssl) != X509_V_OK) return Rc::Ok;
  X509* cert = SSL_get0_peer_certificate(s->ssl);
  if (cert == nullptr) return Rc::Ok;
  auto* check = new OcspCheck;
  s->ocsp = check;
  check->c = &c;
  check->conf = conf;
  check->done = done;
  check->certs = verified_chain(c, cert);
  if (check->certs == nullptr) return Rc::Error;
  check_next(*check);
  if (check->state != OcspCheck::State::Checking) return Rc::Ok;
  check->waiting = true;
  return Rc::Again;
}

const char* ssl_ocsp_failure(const Connection& c) {
  const OcspCheck* check = c.ssl != nullptr ? c.ssl->ocsp : nullptr;
  if (check == nullptr) return nullptr;
  if (check->state == OcspCheck::State::Failed) return "certificate status request failed";
  switch (check->cert_status) {
    case V_OCSP_CERTSTATUS_GOOD:
      return nullptr;
    case V_OCSP_CERTSTATUS_REVOKED:
      return "certificate revoked";
    default:
      return "certificate status unknown";
  }
}

void ssl_ocsp_free(OcspCheck* check) {
  delete check;
}

}  // namespace weir
