#include "event/ssl_stapling.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

#include "core/log.h"
#include "core/time_cache.h"
#include "event/connection.h"
#include "event/ocsp_fetch.h"

namespace weir {

namespace {

// A certificate's staple: the DER response sent with it, and what fetching it takes.
struct Staple {
  X509* cert = nullptr;
  X509* issuer = nullptr;            // for the request's certificate id (fetched staples)
  STACK_OF(X509) * chain = nullptr;  // the certificates after the leaf: may sign the response
  std::string name;                  // the certificate's file, for logs
  OcspResponder responder;           // no host: a stapling file's response, never fetched
  std::string response;
  time_t valid = kOcspForever;  // the response is stapled until then
  time_t refresh = 0;           // and fetched again from then
  bool loading = false;
  Staple() = default;
  Staple(const Staple&) = delete;
  Staple& operator=(const Staple&) = delete;
  ~Staple() {
    X509_free(cert);
    X509_free(issuer);
    sk_X509_pop_free(chain, X509_free);
  }
};

// A context's staples. A fetch holds them too: a reload may free the context meanwhile.
struct Staples {
  X509_STORE* store = nullptr;  // the context's trusted certificates (ssl_stapling_verify)
  bool verify = false;
  Resolver* resolver = nullptr;  // the server's: responders named by host are resolved per fetch
  uint64_t resolver_timeout = 0;
  std::vector<std::unique_ptr<Staple>> list;
  Staples() = default;
  Staples(const Staples&) = delete;
  Staples& operator=(const Staples&) = delete;
  ~Staples() { X509_STORE_free(store); }
};
using StaplesRef = std::shared_ptr<Staples>;

int g_staples_index = -1;

void free_staples(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<StaplesRef*>(ptr);
}

// --- fetching -----------------------------------------------------------------------------------

struct StapleFetch {
  StaplesRef staples;
  Staple* staple;
};

// The staple is refreshed before the response expires, but not within five minutes and at least
// every hour; a failure is tried again in five minutes.
void staple_fetched(void* owner, const OcspAnswer& answer) {
  std::unique_ptr<StapleFetch> f(static_cast<StapleFetch*>(owner));
  Staple& st = *f->staple;
  time_t now = clock::now();
  st.loading = false;
  if (answer.ok) {
    st.response = answer.der;
    st.valid = answer.valid;
    time_t before_expiry = answer.valid == kOcspForever ? kOcspForever : answer.valid - 300;
    st.refresh = std::max(std::min(before_expiry, now + 3600), now + 300);
  } else {
    st.refresh = now + 300;
  }
}

// Called from OpenSSL's status callback: the fetch itself starts from the event loop, logged where
// the connection's server logs (not as the connection's, as nginx's).
void start_fetch(const StaplesRef& staples, Staple& st, const Log& parent) {
  st.loading = true;
  OcspQuestion q;
  q.cert = st.cert;
  q.issuer = st.issuer;
  q.chain = st.chain;
  q.store = staples->store;
  q.verify_flags = staples->verify ? OCSP_TRUSTOTHER : OCSP_NOVERIFY;
  q.responder = st.responder;
  q.name = st.name;
  q.good_only = true;
  q.resolver = staples->resolver;
  q.resolver_timeout = staples->resolver_timeout;
  Log log;
  log.sink = parent.sink;
  ocsp_fetch(std::move(q), staple_fetched, new StapleFetch{staples, &st}, log);
}

// --- the handshake ------------------------------------------------------------------------------

int status_callback(SSL* ssl, void*) {
  auto* ref = static_cast<StaplesRef*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_staples_index));
  X509* cert = SSL_get_certificate(ssl);
  if (ref == nullptr || cert == nullptr) return SSL_TLSEXT_ERR_NOACK;
  for (auto& st : (*ref)->list) {
    if (X509_cmp(st->cert, cert) != 0) continue;
    int rc = SSL_TLSEXT_ERR_NOACK;
    time_t now = clock::now();
    if (!st->response.empty() && st->valid >= now) {
      // OpenSSL takes ownership of its own copy.
      auto* p =
          static_cast<unsigned char*>(OPENSSL_memdup(st->response.data(), st->response.size()));
      if (p != nullptr) {
        SSL_set_tlsext_status_ocsp_resp(ssl, p, static_cast<long>(st->response.size()));
        rc = SSL_TLSEXT_ERR_OK;
      }
    }
    if (!st->responder.host.empty() && !st->loading && st->refresh < now) {
      const auto* c = static_cast<const Connection*>(SSL_get_app_data(ssl));
      static const Log no_log;
      start_fetch(*ref, *st, c != nullptr ? *c->log : no_log);
    }
    return rc;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// --- configuration ------------------------------------------------------------------------------

// The leaf and the chain after it in a PEM file (the caller frees them).
std::vector<X509*> read_chain(const std::string& file) {
  std::vector<X509*> out;
  BIO* bio = BIO_new_file(file.c_str(), "r");
  if (bio == nullptr) return out;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.push_back(x);
  ERR_clear_error();
  BIO_free(bio);
  return out;
}

// The leaf's issuer: in the chain after it, or among the trusted certificates (a new reference).
X509* find_issuer(SSL_CTX* ctx, const std::vector<X509*>& chain) {
  for (size_t i = 1; i < chain.size(); i++) {
    if (X509_check_issued(chain[i], chain[0]) == X509_V_OK) {
      X509_up_ref(chain[i]);
      return chain[i];
    }
  }
  X509_STORE_CTX* sctx = X509_STORE_CTX_new();
  if (sctx == nullptr) return nullptr;
  X509* issuer = nullptr;
  if (X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), nullptr, nullptr) != 1 ||
      X509_STORE_CTX_get1_issuer(&issuer, sctx, chain[0]) != 1) {
    issuer = nullptr;
  }
  X509_STORE_CTX_free(sctx);
  ERR_clear_error();
  return issuer;
}

// The DER response in an ssl_stapling_file.
Result<std::string> read_ocsp_file(const std::string& file) {
  BIO* bio = BIO_new_file(file.c_str(), "rb");
  if (bio == nullptr) return ssl_error("BIO_new_file(\"" + file + "\") failed");
  OCSP_RESPONSE* rsp = d2i_OCSP_RESPONSE_bio(bio, nullptr);
  BIO_free(bio);
  if (rsp == nullptr) return ssl_error("d2i_OCSP_RESPONSE_bio(\"" + file + "\") failed");
  unsigned char* der = nullptr;
  int len = i2d_OCSP_RESPONSE(rsp, &der);
  OCSP_RESPONSE_free(rsp);
  if (len <= 0) return ssl_error("i2d_OCSP_RESPONSE() failed");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

// Each certificate's staple: a stapling file's response, or a responder to fetch it from. Where
// there is neither (no issuer, no responder URL), nginx warns and staples nothing, and so does
// weir.
Status setup_stapling(SSL_CTX* ctx, const SslServerConf& conf, std::vector<std::string>* warnings) {
  auto staples = std::make_shared<Staples>();
  staples->verify = conf.stapling_verify;
  staples->resolver = conf.resolver;
  staples->resolver_timeout = conf.resolver_timeout;
  staples->store = SSL_CTX_get_cert_store(ctx);
  if (staples->store != nullptr) X509_STORE_up_ref(staples->store);
  std::string response;
  if (!conf.stapling_file.empty()) {
    Result<std::string> r = read_ocsp_file(conf.stapling_file);
    if (!r.ok()) return r.status();
    response = std::move(*r);
  }
  auto warn = [&](const std::string& text) {
    if (warnings != nullptr) warnings->push_back("\"ssl_stapling\" ignored, " + text);
  };
  for (const std::string& file : conf.certificates) {
    std::vector<X509*> chain = read_chain(file);
    if (chain.empty()) continue;
    auto st = std::make_unique<Staple>();
    st->name = file;
    st->cert = chain[0];
    st->chain = sk_X509_new_null();
    for (size_t i = 1; i < chain.size(); i++) {
      if (st->chain == nullptr || sk_X509_push(st->chain, chain[i]) == 0) X509_free(chain[i]);
    }
    if (!response.empty()) {
      st->response = response;
      staples->list.push_back(std::move(st));
      continue;
    }
    st->issuer = find_issuer(ctx, chain);
    if (st->issuer == nullptr) {
      warn("issuer certificate not found for certificate \"" + file + "\"");
      continue;
    }
    std::string url = conf.stapling_responder;
    if (url.empty()) {
      STACK_OF(OPENSSL_STRING)* aia = X509_get1_ocsp(st->cert);
      if (aia != nullptr && sk_OPENSSL_STRING_num(aia) > 0) url = sk_OPENSSL_STRING_value(aia, 0);
      X509_email_free(aia);
    }
    if (url.empty()) {
      warn("no OCSP responder URL in the certificate \"" + file + "\"");
      continue;
    }
    Result<OcspResponder> rs = parse_ocsp_responder(url, true);
    if (!rs.ok()) {
      warn(rs.status().message() + " in the certificate \"" + file + "\"");
      continue;
    }
    st->responder = std::move(*rs);
    staples->list.push_back(std::move(st));
  }
  if (g_staples_index < 0) {
    g_staples_index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_staples);
  }
  SSL_CTX_set_ex_data(ctx, g_staples_index, new StaplesRef(std::move(staples)));
  SSL_CTX_set_tlsext_status_cb(ctx, status_callback);
  return {};
}

}  // namespace weir
