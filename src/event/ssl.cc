#include "event/ssl.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/escape.h"
#include "core/file.h"
#include "core/log.h"
#include "core/queue.h"
#include "core/rbtree.h"
#include "core/slab.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/connection.h"
#include "event/ssl_stapling.h"

namespace weir {

std::string ssl_build_text() {
  std::string out = "built with " OPENSSL_VERSION_TEXT;
  std::string_view running = OpenSSL_version(OPENSSL_VERSION);
  if (running != OPENSSL_VERSION_TEXT) out += " (running with " + std::string(running) + ")";
  return out + "\nTLS SNI support enabled\n";
}

// OpenSSL's queued errors as nginx prints them: " (SSL: error:...:reason)" for each.
std::string ssl_errors() {
  std::string out;
  unsigned long e;
  char text[256];
  const char* data = nullptr;
  int flags = 0;
  while ((e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    ERR_error_string_n(e, text, sizeof text);
    out += out.empty() ? " (SSL: " : " ";
    out += text;
    if ((flags & ERR_TXT_STRING) && data != nullptr && *data != '\0') {
      out += ':';
      out += data;
    }
  }
  if (!out.empty()) out += ")";
  return out;
}

Status ssl_error(const std::string& what) {
  return Status::error(what + ssl_errors());
}

namespace {

// The OpenSSL options that say which protocol versions are off.
long protocol_options(uint32_t protocols) {
  long opts = SSL_OP_NO_SSLv3;
  if (!(protocols & kSslTlsV1)) opts |= SSL_OP_NO_TLSv1;
  if (!(protocols & kSslTlsV1_1)) opts |= SSL_OP_NO_TLSv1_1;
  if (!(protocols & kSslTlsV1_2)) opts |= SSL_OP_NO_TLSv1_2;
  if (!(protocols & kSslTlsV1_3)) opts |= SSL_OP_NO_TLSv1_3;
  return opts;
}

Status load_dhparam(SSL_CTX* ctx, const std::string& file) {
  BIO* bio = BIO_new_file(file.c_str(), "r");
  if (bio == nullptr) return ssl_error("BIO_new_file(\"" + file + "\") failed");
  // The messages name the calls nginx 1.22 makes for the same steps (OpenSSL 1.x's DH API).
  EVP_PKEY* dh = PEM_read_bio_Parameters(bio, nullptr);
  BIO_free(bio);
  if (dh == nullptr) return ssl_error("PEM_read_bio_DHparams(\"" + file + "\") failed");
  if (SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
    EVP_PKEY_free(dh);
    return ssl_error("SSL_CTX_set_tmp_dh(\"" + file + "\") failed");
  }
  return {};
}

// --- the shared session cache ------------------------------------------------------------------

constexpr size_t kMaxSessionSize = 4096;  // a larger session (long certificate chains) is not kept
constexpr size_t kMaxSessionId = SSL_MAX_SSL_SESSION_ID_LENGTH;

struct SessionStore {
  RbTree tree;
  QueueNode lru;  // most recent first
};

struct SessionNode {
  RbNode node;  // key: a hash of the id
  QueueNode queue;
  time_t expire = 0;
  uint8_t id_len = 0;
  unsigned char id[kMaxSessionId];
  uint16_t len = 0;
  unsigned char der[1];  // len bytes (the node is allocated for them)
};

SessionNode* node_of(QueueNode* q) {
  return reinterpret_cast<SessionNode*>(reinterpret_cast<char*>(q) - offsetof(SessionNode, queue));
}

int compare_id(const SessionNode& n, uintptr_t key, const unsigned char* id, size_t len) {
  if (key != n.node.key) return key < n.node.key ? -1 : 1;
  if (len != n.id_len) return len < n.id_len ? -1 : 1;
  return std::memcmp(id, n.id, len);
}

bool less_id(const RbNode& a, const RbNode& b) {
  const auto& x = reinterpret_cast<const SessionNode&>(a);
  const auto& y = reinterpret_cast<const SessionNode&>(b);
  return compare_id(y, x.node.key, x.id, x.id_len) < 0;
}

uintptr_t id_hash(const unsigned char* id, size_t len) {
  return static_cast<uintptr_t>(hash_bytes({reinterpret_cast<const char*>(id), len}));
}

SessionNode* find_session(SessionStore& st, const unsigned char* id, size_t len) {
  uintptr_t key = id_hash(id, len);
  RbNode* n = st.tree.find([&](const RbNode& at) {
    return compare_id(reinterpret_cast<const SessionNode&>(at), key, id, len);
  });
  return reinterpret_cast<SessionNode*>(n);
}

void drop_session(SlabPool& slab, SessionStore& st, SessionNode* n) {
  st.tree.erase(&n->node);
  n->queue.unlink();
  slab.free_locked(n);
}

// Drops expired sessions from the old end, at most `count` (0 ... also one unexpired: room).
void expire_sessions(SlabPool& slab, SessionStore& st, time_t now, int count, bool force) {
  while (count-- > 0) {
    QueueNode* q = st.lru.back();
    if (q == nullptr) return;
    SessionNode* n = node_of(q);
    if (!force && n->expire > now) return;
    drop_session(slab, st, n);
    force = false;
  }
}

int g_shm_index = -1;

SslSessionShm* shm_of(SSL_CTX* ctx) {
  if (g_shm_index < 0) return nullptr;
  auto* shm = static_cast<SslSessionShm*>(SSL_CTX_get_ex_data(ctx, g_shm_index));
  return shm != nullptr && shm->store != nullptr ? shm : nullptr;
}

int new_session(SSL* ssl, SSL_SESSION* sess) {
  SslSessionShm* shm = shm_of(SSL_get_SSL_CTX(ssl));
  if (shm == nullptr) return 0;
  int len = i2d_SSL_SESSION(sess, nullptr);
  unsigned int id_len = 0;
  const unsigned char* id = SSL_SESSION_get_id(sess, &id_len);
  if (len <= 0 || static_cast<size_t>(len) > kMaxSessionSize || id_len > kMaxSessionId) return 0;
  unsigned char buf[kMaxSessionSize];
  unsigned char* p = buf;
  i2d_SSL_SESSION(sess, &p);
  SlabPool& slab = *shm->slab;
  auto& st = *static_cast<SessionStore*>(shm->store);
  time_t now = clock::now();
  size_t size = offsetof(SessionNode, der) + static_cast<size_t>(len);
  ShmLock lock(slab.mutex());
  expire_sessions(slab, st, now, 1, false);
  void* mem = slab.alloc_locked(size);
  if (mem == nullptr) {
    expire_sessions(slab, st, now, 1, true);  // the oldest makes room
    mem = slab.alloc_locked(size);
  }
  if (mem == nullptr) {
    auto* c = static_cast<Connection*>(SSL_get_app_data(ssl));
    if (c != nullptr) {
      log_error(LogLevel::Crit, *c->log, 0,
                "could not allocate new session in SSL session shared cache \"%s\"",
                shm->name.c_str());
    }
    return 0;
  }
  auto* n = new (mem) SessionNode;
  if (SessionNode* old = find_session(st, id, id_len)) drop_session(slab, st, old);
  n->node.key = id_hash(id, id_len);
  n->expire = now + SSL_SESSION_get_timeout(sess);
  n->id_len = static_cast<uint8_t>(id_len);
  std::memcpy(n->id, id, id_len);
  n->len = static_cast<uint16_t>(len);
  std::memcpy(n->der, buf, static_cast<size_t>(len));
  st.tree.insert(&n->node, less_id);
  st.lru.push_front(&n->queue);
  return 0;  // OpenSSL keeps its own reference
}

SSL_SESSION* get_session(SSL* ssl, const unsigned char* id, int len, int* copy) {
  *copy = 0;
  SslSessionShm* shm = shm_of(SSL_get_SSL_CTX(ssl));
  if (shm == nullptr || len <= 0 || static_cast<size_t>(len) > kMaxSessionId) return nullptr;
  SlabPool& slab = *shm->slab;
  auto& st = *static_cast<SessionStore*>(shm->store);
  unsigned char buf[kMaxSessionSize];
  size_t der_len = 0;
  {
    ShmLock lock(slab.mutex());
    SessionNode* n = find_session(st, id, static_cast<size_t>(len));
    if (n == nullptr) return nullptr;
    if (n->expire <= clock::now()) {
      drop_session(slab, st, n);
      return nullptr;
    }
    der_len = n->len;
    std::memcpy(buf, n->der, der_len);
  }
  const unsigned char* p = buf;
  return d2i_SSL_SESSION(nullptr, &p, static_cast<long>(der_len));
}

void remove_session(SSL_CTX* ctx, SSL_SESSION* sess) {
  SslSessionShm* shm = shm_of(ctx);
  if (shm == nullptr) return;
  unsigned int id_len = 0;
  const unsigned char* id = SSL_SESSION_get_id(sess, &id_len);
  SlabPool& slab = *shm->slab;
  auto& st = *static_cast<SessionStore*>(shm->store);
  ShmLock lock(slab.mutex());
  if (SessionNode* n = find_session(st, id, id_len)) drop_session(slab, st, n);
}

// A PEM certificate and the chain after it, as the current certificate of its key type.
// A PEM source: a file, or the PEM itself after "data:" (nginx 1.15.10's).
BIO* open_pem(const std::string& name) {
  if (name.starts_with("data:")) {
    return BIO_new_mem_buf(name.data() + 5, static_cast<int>(name.size() - 5));
  }
  return BIO_new_file(name.c_str(), "r");
}

// Where a certificate and its key go: a context (loaded at start) or one handshake's SSL
// (certificates with variables, loaded per connection).
struct CertTarget {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  int use_certificate(X509* x) const {
    return ctx != nullptr ? SSL_CTX_use_certificate(ctx, x) : SSL_use_certificate(ssl, x);
  }
  int add0_chain_cert(X509* x) const {
    return ctx != nullptr ? SSL_CTX_add0_chain_cert(ctx, x) : SSL_add0_chain_cert(ssl, x);
  }
  int use_private_key(EVP_PKEY* k) const {
    return ctx != nullptr ? SSL_CTX_use_PrivateKey(ctx, k) : SSL_use_PrivateKey(ssl, k);
  }
};

Status load_certificate(CertTarget to, const std::string& file) {
  std::string what = "cannot load certificate \"" + file + "\": ";
  BIO* bio = open_pem(file);
  if (bio == nullptr) return ssl_error(what + "BIO_new_file() failed");
  X509* x = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
  if (x == nullptr) {
    BIO_free(bio);
    return ssl_error(what + "PEM_read_bio_X509_AUX() failed");
  }
  int ok = to.use_certificate(x);
  X509_free(x);
  if (ok != 1) {
    BIO_free(bio);
    return ssl_error("SSL_CTX_use_certificate(\"" + file + "\") failed");
  }
  while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (to.add0_chain_cert(ca) != 1) {
      X509_free(ca);
      BIO_free(bio);
      return ssl_error("SSL_CTX_add0_chain_cert(\"" + file + "\") failed");
    }
  }
  ERR_clear_error();  // the end of the file
  BIO_free(bio);
  return {};
}

// A key's passphrase: the one being tried (never a prompt).
int give_password(char* buf, int size, int, void* userdata) {
  const auto* pw = static_cast<const std::string*>(userdata);
  if (pw == nullptr) return 0;
  int n = static_cast<int>(std::min<size_t>(pw->size(), static_cast<size_t>(size)));
  std::memcpy(buf, pw->data(), static_cast<size_t>(n));
  return n;
}

Status load_key(CertTarget to, const std::string& file, const std::vector<std::string>& passwords) {
  std::string what = "cannot load certificate key \"" + file + "\": ";
  BIO* bio = open_pem(file);
  if (bio == nullptr) return ssl_error(what + "BIO_new_file() failed");
  EVP_PKEY* key = nullptr;
  size_t tries = std::max<size_t>(passwords.size(), 1);
  for (size_t i = 0; i < tries && key == nullptr; i++) {
    if (i > 0) {
      (void)BIO_reset(bio);
      ERR_clear_error();
    }
    const std::string* pw = passwords.empty() ? nullptr : &passwords[i];
    key = PEM_read_bio_PrivateKey(bio, nullptr, give_password, const_cast<std::string*>(pw));
  }
  BIO_free(bio);
  if (key == nullptr) return ssl_error(what + "PEM_read_bio_PrivateKey() failed");
  int ok = to.use_private_key(key);
  EVP_PKEY_free(key);
  if (ok != 1) return ssl_error("SSL_CTX_use_PrivateKey(\"" + file + "\") failed");
  return {};
}

// ssl_session_ticket_key: nginx's 48-byte (AES-128) and 80-byte (AES-256) key files; the first
// encrypts new tickets, any decrypts.
struct TicketKey {
  size_t size = 0;
  unsigned char name[16];
  unsigned char aes_key[32];
  unsigned char hmac_key[32];
};

int g_ticket_index = -1;

Result<std::vector<TicketKey>*> load_ticket_keys(const std::vector<std::string>& files) {
  auto keys = std::make_unique<std::vector<TicketKey>>();
  for (const std::string& file : files) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::sys_error(errno, "open", file);
    unsigned char buf[80];
    struct stat st;
    ssize_t n = -1;
    bool sized = ::fstat(fd, &st) == 0 && (st.st_size == 48 || st.st_size == 80);
    if (sized) n = ::pread(fd, buf, static_cast<size_t>(st.st_size), 0);
    ::close(fd);
    if (!sized) return Status::error("\"" + file + "\" must be 48 or 80 bytes");
    if (n != st.st_size) return Status::sys_error(errno, "read", file);
    TicketKey k;
    k.size = static_cast<size_t>(n);
    std::memcpy(k.name, buf, 16);
    if (k.size == 48) {
      std::memcpy(k.aes_key, buf + 16, 16);
      std::memcpy(k.hmac_key, buf + 32, 16);
    } else {
      std::memcpy(k.hmac_key, buf + 16, 32);
      std::memcpy(k.aes_key, buf + 48, 32);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    keys->push_back(k);
  }
  return keys.release();
}

void free_ticket_keys(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::vector<TicketKey>*>(ptr);
}

int ticket_key_callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* ectx,
                        EVP_MAC_CTX* hctx, int enc) {
  auto* keys = static_cast<std::vector<TicketKey>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_ticket_index));
  if (keys == nullptr || keys->empty()) return -1;
  size_t i = 0;
  if (enc == 0) {
    while (i < keys->size() && std::memcmp(name, (*keys)[i].name, 16) != 0) i++;
    if (i == keys->size()) return 0;  // not ours: a full handshake
  }
  TicketKey& k = (*keys)[i];
  const EVP_CIPHER* cipher = k.size == 48 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
  size_t hmac_size = k.size == 48 ? 16 : 32;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac_key, hmac_size),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (enc == 1) {
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1 ||
        EVP_EncryptInit_ex(ectx, cipher, nullptr, k.aes_key, iv) != 1 ||
        EVP_MAC_CTX_set_params(hctx, params) != 1) {
      return -1;
    }
    std::memcpy(name, k.name, 16);
    return 1;
  }
  if (EVP_MAC_CTX_set_params(hctx, params) != 1 ||
      EVP_DecryptInit_ex(ectx, cipher, nullptr, k.aes_key, iv) != 1) {
    return -1;
  }
  // A ticket under an older key, or any in TLS 1.3, is renewed.
  return i != 0 || SSL_version(ssl) == TLS1_3_VERSION ? 2 : 1;
}

Status use_ticket_keys(SSL_CTX* ctx, const std::vector<std::string>& files) {
  Result<std::vector<TicketKey>*> keys = load_ticket_keys(files);
  if (!keys.ok()) return keys.status();
  if (g_ticket_index < 0) {
    g_ticket_index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ticket_keys);
  }
  SSL_CTX_set_ex_data(ctx, g_ticket_index, *keys);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_callback);
  return {};
}

// ssl_conf_command: OpenSSL's own configuration commands, after everything else.
Status apply_conf_commands(SSL_CTX* ctx,
                           const std::vector<std::pair<std::string, std::string>>& commands) {
  if (commands.empty()) return {};
  SSL_CONF_CTX* cctx = SSL_CONF_CTX_new();
  if (cctx == nullptr) return ssl_error("SSL_CONF_CTX_new() failed");
  SSL_CONF_CTX_set_flags(cctx, SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_SERVER |
                                   SSL_CONF_FLAG_CERTIFICATE | SSL_CONF_FLAG_SHOW_ERRORS);
  SSL_CONF_CTX_set_ssl_ctx(cctx, ctx);
  for (const auto& [name, value] : commands) {
    if (SSL_CONF_cmd(cctx, name.c_str(), value.c_str()) <= 0) {
      SSL_CONF_CTX_free(cctx);
      std::string what = "SSL_CONF_cmd(\"";
      what += name;
      what += "\", \"";
      what += value;
      what += "\") failed";
      return ssl_error(what);
    }
  }
  int ok = SSL_CONF_CTX_finish(cctx);
  SSL_CONF_CTX_free(cctx);
  if (ok != 1) return ssl_error("SSL_CONF_finish() failed");
  return {};
}

Status configure(SSL_CTX* ctx, const SslServerConf& conf) {
  SSL_CTX_set_options(ctx, protocol_options(conf.protocols) | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  // TLS 1.0 and 1.1 are off at OpenSSL 3's default security level; asked for, they work as in
  // nginx built with the same library (the cipher list's @SECLEVEL decides).
  SSL_CTX_set_min_proto_version(ctx, 0);
  if (conf.prefer_server_ciphers) SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  // A record (and what follows it) in one read(), not its 5-byte header first (as nginx).
  SSL_CTX_set_read_ahead(ctx, 1);
  for (size_t i = 0; i < conf.certificates.size(); i++) {
    if (Status s = load_certificate({.ctx = ctx}, conf.certificates[i]); !s.ok()) return s;
    if (Status s = load_key({.ctx = ctx}, conf.keys[i], conf.passwords); !s.ok()) return s;
  }
  if (SSL_CTX_set_cipher_list(ctx, conf.ciphers.c_str()) != 1) {
    return ssl_error("SSL_CTX_set_cipher_list(\"" + conf.ciphers + "\") failed");
  }
  if (conf.ecdh_curve != "auto" && SSL_CTX_set1_groups_list(ctx, conf.ecdh_curve.c_str()) != 1) {
    return ssl_error("SSL_CTX_set1_curves_list(\"" + conf.ecdh_curve + "\") failed");
  }
  if (!conf.dhparam.empty()) {
    if (Status s = load_dhparam(ctx, conf.dhparam); !s.ok()) return s;
  }
  // Sessions: resumed only within the context they were made in.
  static const unsigned char kContext[] = "weir";
  SSL_CTX_set_session_id_context(ctx, kContext, sizeof kContext - 1);
  switch (conf.session_cache) {
    case SslSessionCache::Off:
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      break;
    case SslSessionCache::None:
      // nginx's "none": the server says it resumes but keeps nothing (OpenSSL's anti-replay check
      // of TLS 1.3 early data needs the lookup this mode leaves on).
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR |
                                              SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_cache_size(ctx, 1);
      break;
    case SslSessionCache::Builtin:
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_sess_set_cache_size(ctx, conf.builtin_size);
      break;
  }
  if (conf.shared != nullptr && conf.session_cache != SslSessionCache::Off) {
    if (g_shm_index < 0)
      g_shm_index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    SSL_CTX_set_ex_data(ctx, g_shm_index, conf.shared);
    long mode = SSL_SESS_CACHE_SERVER;
    if (!conf.builtin) mode |= SSL_SESS_CACHE_NO_INTERNAL;
    SSL_CTX_set_session_cache_mode(ctx, mode);
    if (conf.builtin) SSL_CTX_sess_set_cache_size(ctx, conf.builtin_size);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    SSL_CTX_sess_set_get_cb(ctx, get_session);
    SSL_CTX_sess_set_remove_cb(ctx, remove_session);
  }
  SSL_CTX_set_timeout(ctx, static_cast<long>(conf.session_timeout));
  if (conf.session_tickets && !conf.ticket_keys.empty()) {
    if (Status st = use_ticket_keys(ctx, conf.ticket_keys); !st.ok()) return st;
  }
  if (!conf.session_tickets) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    // TLS 1.3 resumes through tickets: stateful ones (a session id) when a cache keeps them.
    if (conf.session_cache != SslSessionCache::Builtin && conf.shared == nullptr) {
      SSL_CTX_set_num_tickets(ctx, 0);
    }
  }
  // ssl_early_data: as much 0-RTT data as nginx takes (a record's worth). Replays are the
  // application's to refuse ($ssl_early_data, 425), as in nginx, which turns OpenSSL's anti-replay
  // off: tickets stay stateless and any worker resumes them.
  if (conf.early_data) {
    SSL_CTX_set_max_early_data(ctx, 16384);
    SSL_CTX_set_options(ctx, SSL_OP_NO_ANTI_REPLAY);
  }
  return apply_conf_commands(ctx, conf.conf_commands);
}

// --- client certificates -----------------------------------------------------------------------

// The handshake goes on whatever the verification says; the request is answered by it.
int accept_any(int, X509_STORE_CTX*) {
  return 1;
}

// ssl_crl, proxy_ssl_crl: revocation lists checked for the whole chain ("" none).
Status load_crl(SSL_CTX* ctx, const std::string& file) {
  if (file.empty()) return {};
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
  if (lookup == nullptr || X509_LOOKUP_load_file(lookup, file.c_str(), X509_FILETYPE_PEM) != 1) {
    return ssl_error("X509_LOOKUP_load_file(\"" + file + "\") failed");
  }
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  return {};
}

Status setup_client_verify(SSL_CTX* ctx, const SslServerConf& conf) {
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
  SSL_CTX_set_verify_depth(ctx, conf.verify_depth);
  if (!conf.client_certificate.empty()) {
    const std::string& file = conf.client_certificate;
    if (SSL_CTX_load_verify_locations(ctx, file.c_str(), nullptr) != 1) {
      return ssl_error("SSL_CTX_load_verify_locations(\"" + file + "\") failed");
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(file.c_str());
    if (names == nullptr) return ssl_error("SSL_load_client_CA_file(\"" + file + "\") failed");
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  return load_crl(ctx, conf.crl);
}

// After an SSL_* call that returned n <= 0: what it means for the connection.
enum class Outcome { WantRead, WantWrite, Closed, Failed };

Outcome outcome(SSL* ssl, int n) {
  switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
      return Outcome::WantRead;
    case SSL_ERROR_WANT_WRITE:
      return Outcome::WantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return Outcome::Closed;
    case SSL_ERROR_SYSCALL:
      // The peer closed without close_notify (errno 0), or the socket failed.
      if (ERR_peek_error() == 0 && errno == 0) return Outcome::Closed;
      return Outcome::Failed;
    default:
      return Outcome::Failed;
  }
}

// A failure of the client's making (bad records, a reset, unexpected EOF) is logged at info, as
// nginx's "SSL_read() failed"; anything else at crit.
void log_failure(Connection& c, const char* call) {
  int err = errno;
  std::string why = ssl_errors();
  log_error(c.outbound ? LogLevel::Error : LogLevel::Info, *c.log, err, "%s failed%s", call,
            why.c_str());
  c.ssl->no_shutdown = true;
}

}  // namespace

void* ssl_session_store_create(SlabPool& slab) {
  void* p = slab.calloc_locked(sizeof(SessionStore));
  return p != nullptr ? new (p) SessionStore : nullptr;
}

Result<ssl_ctx_st*> ssl_server_context(const SslServerConf& conf,
                                       std::vector<std::string>* warnings) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return ssl_error("SSL_CTX_new() failed");
  Status s = configure(ctx, conf);
  if (s.ok() && !conf.trusted_certificate.empty() &&
      SSL_CTX_load_verify_locations(ctx, conf.trusted_certificate.c_str(), nullptr) != 1) {
    s = ssl_error("SSL_CTX_load_verify_locations(\"" + conf.trusted_certificate + "\") failed");
  }
  if (s.ok() && conf.verify_client != 0) s = setup_client_verify(ctx, conf);
  // ssl_crl is read whether or not clients are verified, as nginx reads it: a wrong one fails
  // the load.
  if (s.ok() && conf.verify_client == 0) s = load_crl(ctx, conf.crl);
  if (s.ok() && conf.stapling) s = setup_stapling(ctx, conf, warnings);
  if (!s.ok()) {
    SSL_CTX_free(ctx);
    return s;
  }
  return ctx;
}

Result<ssl_ctx_st*> ssl_client_context(const SslClientConf& conf) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return ssl_error("SSL_CTX_new() failed");
  auto fail = [&](Status st) -> Result<ssl_ctx_st*> {
    SSL_CTX_free(ctx);
    return st;
  };
  SSL_CTX_set_options(ctx, protocol_options(conf.protocols) | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx, 0);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(ctx, 1);
  if (SSL_CTX_set_cipher_list(ctx, conf.ciphers.c_str()) != 1) {
    return fail(ssl_error("SSL_CTX_set_cipher_list(\"" + conf.ciphers + "\") failed"));
  }
  // Verification is checked after the handshake (ssl_verify_peer), as nginx: never abort it.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_verify_depth(ctx, conf.verify_depth);
  if (!conf.trusted_certificate.empty() &&
      SSL_CTX_load_verify_locations(ctx, conf.trusted_certificate.c_str(), nullptr) != 1) {
    return fail(
        ssl_error("SSL_CTX_load_verify_locations(\"" + conf.trusted_certificate + "\") failed"));
  }
  if (Status st = load_crl(ctx, conf.crl); !st.ok()) return fail(st);
  if (!conf.certificate.empty()) {
    if (Status st = load_certificate({.ctx = ctx}, conf.certificate); !st.ok()) return fail(st);
    if (Status st = load_key({.ctx = ctx}, conf.key, conf.passwords); !st.ok()) return fail(st);
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  if (!conf.session_reuse) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (!conf.alpn.empty()) {
    std::string wire(1, static_cast<char>(conf.alpn.size()));
    wire += conf.alpn;
    if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size())) != 0) {
      return fail(ssl_error("SSL_CTX_set_alpn_protos() failed"));
    }
  }
  if (Status st = apply_conf_commands(ctx, conf.conf_commands); !st.ok()) return fail(st);
  return ctx;
}

namespace {

// Watches the socket's reads under the record layer: a read that came short (or would block)
// leaves the socket empty, so that ssl_recv need not call read() once more only to be told
// EAGAIN, as a plain connection's recv knows from a short read.
long watch_socket_reads(BIO* b, int oper, const char* /*argp*/, size_t len, int /*argi*/,
                        long /*argl*/, int ret, size_t* processed) {
  if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
    auto* s = reinterpret_cast<SslConnection*>(BIO_get_callback_arg(b));
    s->socket_drained = ret <= 0 || (processed != nullptr && *processed < len);
  }
  return ret;
}

// The connection's TLS state, with its socket's reads watched.
SslConnection* attach(Connection& c, SSL* ssl) {
  auto* s = new SslConnection;
  s->ssl = ssl;
  BIO* rbio = SSL_get_rbio(ssl);
  BIO_set_callback_ex(rbio, watch_socket_reads);
  BIO_set_callback_arg(rbio, reinterpret_cast<char*>(s));
  SSL_set_app_data(ssl, &c);
  c.ssl = s;
  c.ops = &kSslOps;
  c.io.use_sendfile = false;  // file data goes through SSL_write
  return s;
}

}  // namespace

Status ssl_create_client_connection(Connection& c, ssl_ctx_st* ctx, const std::string& server_name,
                                    void* session) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return ssl_error("SSL_new() failed");
  if (SSL_set_fd(ssl, c.fd) != 1 ||
      (!server_name.empty() && SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1)) {
    SSL_free(ssl);
    return ssl_error("SSL_set_fd() failed");
  }
  if (session != nullptr) SSL_set_session(ssl, static_cast<SSL_SESSION*>(session));
  SSL_set_connect_state(ssl);
  attach(c, ssl);
  return {};
}

std::string ssl_pem_name(std::string_view name, std::string_view conf_prefix) {
  if (name.starts_with("data:") || name.starts_with('/')) return std::string(name);
  return std::string(conf_prefix) + std::string(name);
}

Status ssl_use_certificate(Connection& c, const std::string& certificate, const std::string& key,
                           const std::vector<std::string>& passwords) {
  CertTarget to{.ssl = c.ssl->ssl};
  if (Status st = load_certificate(to, certificate); !st.ok()) return st;
  return load_key(to, key, passwords);
}

std::string ssl_verify_peer(Connection& c, std::string_view name) {
  SSL* ssl = c.ssl->ssl;
  long rc = SSL_get_verify_result(ssl);
  if (rc != X509_V_OK) {
    return "upstream SSL certificate verify error: (" + std::to_string(rc) + ":" +
           X509_verify_cert_error_string(rc) + ")";
  }
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return "upstream sent no required SSL certificate";
  std::string host(name);
  if (X509_check_host(cert, host.data(), host.size(), 0, nullptr) != 1 &&
      X509_check_ip_asc(cert, host.c_str(), 0) != 1) {
    return "upstream SSL certificate does not match \"" + host + "\"";
  }
  return {};
}

void* ssl_get_session(Connection& c) {
  return c.ssl != nullptr ? SSL_get1_session(c.ssl->ssl) : nullptr;
}

void ssl_free_session(void* session) {
  SSL_SESSION_free(static_cast<SSL_SESSION*>(session));
}

void ssl_free_context(ssl_ctx_st* ctx) {
  SSL_CTX_free(ctx);
}

Status ssl_create_connection(Connection& c, ssl_ctx_st* ctx, size_t buffer_size) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return ssl_error("SSL_new() failed");
  if (SSL_set_fd(ssl, c.fd) != 1) {
    SSL_free(ssl);
    return ssl_error("SSL_set_fd() failed");
  }
  SSL_set_accept_state(ssl);
  SslConnection* s = attach(c, ssl);
  s->session_ctx = ctx;  // the connection's SSL holds it as its own session context
  s->buffer_size = buffer_size;
  s->try_early_data = SSL_CTX_get_max_early_data(ctx) > 0;
  return {};
}

namespace {

// A handshake step that did not finish: wait for the socket, or the failure logged as nginx logs
// it.
Rc handshake_stopped(Connection& c, Outcome out, const char* call) {
  switch (out) {
    case Outcome::WantRead:
      c.read.ready = false;
      return Rc::Again;
    case Outcome::WantWrite:
      c.write.ready = false;
      return Rc::Again;
    case Outcome::Closed:
      c.ssl->no_shutdown = true;
      log_error(LogLevel::Info, *c.log, 0, "peer closed connection in SSL handshake");
      return Rc::Error;
    case Outcome::Failed:
      break;
  }
  if (c.ssl->handshake_rejected) {
    ERR_clear_error();
    c.ssl->no_shutdown = true;
    log_error(LogLevel::Info, *c.log, 0, "handshake rejected");
    return Rc::Error;
  }
  log_failure(c, call);
  return Rc::Error;
}

// A read that stopped with got bytes taken: what the caller is told, and the event's flags.
IoResult read_stopped(Connection& c, Outcome out, size_t got, const char* call) {
  switch (out) {
    case Outcome::WantRead:
    case Outcome::WantWrite:  // a key update's answer waits for the socket: read on later
      c.read.ready = false;
      if (got > 0) return {Rc::Ok, got, true};
      return {Rc::Again, 0, true};
    case Outcome::Closed:
      if (got > 0) return {Rc::Ok, got, false};  // the end comes with the next call
      c.read.ready = false;
      c.read.eof = true;
      return {Rc::Done, 0};
    case Outcome::Failed:
      break;
  }
  c.read.ready = false;
  c.read.error = true;
  log_failure(c, call);
  return {Rc::Error, 0};
}

// ssl_early_data: the handshake reads the client's first byte of early data, if it sent any; then
// the request is read while the handshake is still to finish (nginx's ngx_ssl_try_early_data).
Rc try_early_data(Connection& c) {
  SslConnection& s = *c.ssl;
  ERR_clear_error();
  errno = 0;
  size_t got = 0;
  int n = SSL_read_early_data(s.ssl, &s.early_byte, 1, &got);
  if (n == SSL_READ_EARLY_DATA_FINISH) {
    s.try_early_data = false;
    return ssl_handshake(c);
  }
  if (n == SSL_READ_EARLY_DATA_SUCCESS) {
    s.try_early_data = false;
    s.early_preread = got == 1;
    s.in_early = true;
    s.handshaked = true;
    c.read.ready = true;
    c.write.ready = true;
    return Rc::Ok;
  }
  return handshake_stopped(c, outcome(s.ssl, n), "SSL_read_early_data()");
}

// The request's bytes while in early data: the byte the handshake read, then what
// SSL_read_early_data gives, then (its FINISH: the early data is over) SSL_read's.
IoResult recv_early(Connection& c, char* buf, size_t size) {
  SslConnection& s = *c.ssl;
  size_t got = 0;
  if (s.early_preread && size > 0) {
    buf[got++] = s.early_byte;
    s.early_preread = false;
  }
  while (got < size) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int rc = SSL_read_early_data(s.ssl, buf + got, size - got, &n);
    if (rc == SSL_READ_EARLY_DATA_SUCCESS) {
      got += n;
      continue;
    }
    if (rc == SSL_READ_EARLY_DATA_FINISH) {
      got += n;
      s.in_early = false;
      if (got > 0) return {Rc::Ok, got, false};
      return ssl_recv(c, buf, size);
    }
    return read_stopped(c, outcome(s.ssl, rc), got, "SSL_read_early_data()");
  }
  return {Rc::Ok, got, false};
}

}  // namespace

bool ssl_in_early_data(const Connection& c) {
  return c.ssl != nullptr && SSL_is_init_finished(c.ssl->ssl) == 0;
}

Rc ssl_handshake(Connection& c) {
  SSL* ssl = c.ssl->ssl;
  if (c.ssl->try_early_data) return try_early_data(c);
  ERR_clear_error();
  errno = 0;
  int n = SSL_do_handshake(ssl);
  if (n == 1) {
    c.ssl->handshaked = true;
    return Rc::Ok;
  }
  return handshake_stopped(c, outcome(ssl, n), "SSL_do_handshake()");
}

IoResult ssl_recv(Connection& c, char* buf, size_t size) {
  SSL* ssl = c.ssl->ssl;
  if (c.ssl->in_early) return recv_early(c, buf, size);
  size_t got = 0;
  c.ssl->socket_drained = false;  // only this call's reads say
  while (got < size) {
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(ssl, buf + got, static_cast<int>(std::min<size_t>(size - got, 1 << 30)));
    if (n > 0) {
      got += static_cast<size_t>(n);
      if (got < size && c.ssl->socket_drained && SSL_has_pending(ssl) == 0 && !c.read.pending_eof) {
        // All the socket held is read and decrypted: wait for more, without a read() for EAGAIN
        // (unless the peer's close is pending: the next read() says so, and no event will, as
        // a plain connection's after_read knows).
        c.read.ready = false;
        return {Rc::Ok, got, true};
      }
      continue;
    }
    return read_stopped(c, outcome(ssl, n), got, "SSL_read()");
  }
  return {Rc::Ok, got, false};  // more may be buffered: the caller reads again
}

IoResult ssl_recv_chain(Connection& c, ChainLink* chain, off_t limit) {
  size_t total = 0;
  for (ChainLink* cl = chain; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    size_t room = static_cast<size_t>(b.end - b.last);
    if (limit > 0) room = std::min(room, static_cast<size_t>(limit) - total);
    if (room == 0) {
      if (limit > 0 && total == static_cast<size_t>(limit)) break;
      continue;
    }
    IoResult r = ssl_recv(c, b.last, room);
    if (r.rc != Rc::Ok) {
      if (total > 0 && r.rc != Rc::Error) return {Rc::Ok, total, r.rc == Rc::Again};
      return r;
    }
    b.last += r.n;
    total += r.n;
    if (r.n < room) return {Rc::Ok, total, r.drained};
  }
  if (total == 0) return {Rc::Again, 0};
  return {Rc::Ok, total, false};
}

SendResult ssl_send_chain(Connection& c, ChainLink* in, off_t limit) {
  SslConnection& s = *c.ssl;
  Buffer& o = s.out;
  if (o.start == nullptr) {
    o.start = o.pos = o.last = new char[s.buffer_size];
    o.end = o.start + s.buffer_size;
    o.temporary = true;
  }
  off_t taken = 0;
  for (;;) {
    // What is gathered goes first, a record at a time.
    while (o.pos < o.last) {
      ERR_clear_error();
      errno = 0;
      int n;
      if (s.in_early) {
        // Still in early data: the answer goes as 0.5-RTT data.
        size_t written = 0;
        n = SSL_write_early_data(s.ssl, o.pos, static_cast<size_t>(o.last - o.pos), &written);
        if (n > 0) n = static_cast<int>(written);
      } else {
        n = SSL_write(s.ssl, o.pos, static_cast<int>(o.last - o.pos));
      }
      if (n > 0) {
        o.pos += n;
        c.io.sent += n;
        continue;
      }
      Outcome out = outcome(s.ssl, n);
      if (out == Outcome::WantWrite || out == Outcome::WantRead) {
        c.write.ready = false;
        // Waiting for the peer's bytes (the rest of its early data, its Finished): its next read
        // readiness runs the write again.
        c.write_waits_for_read = out == Outcome::WantRead;
        c.buffered |= kSslBuffered;
        return {Rc::Again, in};
      }
      c.error = true;
      log_failure(c, "SSL_write()");
      return {Rc::Error, in};
    }
    o.pos = o.last = o.start;
    c.buffered &= ~kSslBuffered;
    // Gather the next buffers' bytes, up to a record's worth (and the limit).
    while (in != nullptr && o.last < o.end && (limit == 0 || taken < limit)) {
      Buffer& b = *in->buf;
      size_t room = static_cast<size_t>(o.end - o.last);
      if (limit > 0) room = std::min(room, static_cast<size_t>(limit - taken));
      size_t n = std::min(room, static_cast<size_t>(b.size()));
      if (b.in_memory()) {
        std::memcpy(o.last, b.pos, n);
        b.pos += n;
        if (b.in_file) b.file_pos += static_cast<off_t>(n);
      } else if (b.in_file && n > 0) {
        ssize_t got = read_file(*b.file, o.last, n, b.file_pos);
        if (got <= 0) {
          log_error(LogLevel::Crit, *c.log, errno, "pread() \"%.*s\" failed",
                    static_cast<int>(b.file->name.size()), b.file->name.data());
          c.error = true;
          return {Rc::Error, in};
        }
        n = static_cast<size_t>(got);
        b.file_pos += got;
      }
      o.last += n;
      taken += static_cast<off_t>(n);
      if (b.size() != 0) break;  // the record buffer is full, or the limit is reached
      in = in->next;
    }
    if (o.pos == o.last) return {in == nullptr ? Rc::Ok : Rc::Again, in};
  }
}

namespace {
SslServerNameFn g_server_name = nullptr;

int server_name_callback(SSL* ssl, int* alert, void*) {
  auto* c = static_cast<Connection*>(SSL_get_app_data(ssl));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (c == nullptr || g_server_name == nullptr) return SSL_TLSEXT_ERR_OK;
  bool reject = false;
  SSL_CTX* ctx = g_server_name(*c, name != nullptr ? name : "", reject);
  if (reject) {
    c->ssl->handshake_rejected = true;
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (ctx != nullptr && ctx != SSL_get_SSL_CTX(ssl)) {
    SSL_set_SSL_CTX(ssl, ctx);
    // The options that differ between servers (protocols, cipher preference) follow the server.
    SSL_clear_options(ssl, SSL_get_options(ssl) & ~SSL_CTX_get_options(ctx));
    SSL_set_options(ssl, SSL_CTX_get_options(ctx));
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
    SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
  }
  return SSL_TLSEXT_ERR_OK;
}
}  // namespace

namespace {
SslCertificatesFn g_certificates = nullptr;

// Certificates with variables: their names are made for this handshake (after SNI) and loaded onto
// it; one that cannot be loaded fails the handshake, logged as nginx logs it.
int certificate_callback(SSL* ssl, void*) {
  auto* c = static_cast<Connection*>(SSL_get_app_data(ssl));
  if (c == nullptr || g_certificates == nullptr) return 1;
  const std::vector<std::string>* passwords = nullptr;
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!g_certificates(*c, pairs, passwords)) return 0;
  static const std::vector<std::string> kNone;
  for (const auto& [cert, key] : pairs) {
    Status st = load_certificate({.ssl = ssl}, cert);
    if (st.ok()) st = load_key({.ssl = ssl}, key, passwords != nullptr ? *passwords : kNone);
    if (!st.ok()) {
      log_error(LogLevel::Error, *c->log, 0, "%s", st.message().c_str());
      return 0;
    }
  }
  return 1;
}
}  // namespace

void ssl_on_certificates(ssl_ctx_st* ctx, SslCertificatesFn fn) {
  g_certificates = fn;
  SSL_CTX_set_cert_cb(ctx, certificate_callback, nullptr);
}

void ssl_on_server_name(ssl_ctx_st* ctx, SslServerNameFn fn) {
  g_server_name = fn;
  SSL_CTX_set_tlsext_servername_callback(ctx, server_name_callback);
}

namespace {
SslAlpnFn g_h2_allowed = nullptr;

// The server's preference: h2 where the connection's server allows it, then HTTP/1.x; a client
// that offers none of them is refused (no_application_protocol), as nginx.
int alpn_select_callback(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void*) {
  auto* c = static_cast<Connection*>(SSL_get_app_data(ssl));
  static constexpr unsigned char kWithH2[] = "\x02h2\x08http/1.1\x08http/1.0\x08http/0.9";
  static constexpr unsigned char kWithoutH2[] = "\x08http/1.1\x08http/1.0\x08http/0.9";
  bool h2 = c != nullptr && g_h2_allowed != nullptr && g_h2_allowed(*c);
  const unsigned char* ours = h2 ? kWithH2 : kWithoutH2;
  unsigned int ours_len = h2 ? sizeof kWithH2 - 1 : sizeof kWithoutH2 - 1;
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}
}  // namespace

void ssl_on_alpn(ssl_ctx_st* ctx, SslAlpnFn h2_allowed) {
  g_h2_allowed = h2_allowed;
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_callback, nullptr);
}

std::string_view ssl_alpn(const Connection& c) {
  if (c.ssl == nullptr) return {};
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(c.ssl->ssl, &p, &n);
  return {reinterpret_cast<const char*>(p), n};
}

Result<std::vector<std::string>> ssl_read_password_file(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::sys_error(errno, "open", file);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  int err = errno;
  ::close(fd);
  if (n < 0) return Status::sys_error(err, "read", file);
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (!line.empty()) out.push_back(std::move(line));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  OPENSSL_cleanse(text.data(), text.size());
  return out;
}

int ssl_peek(Connection& c) {
  SSL* ssl = c.ssl->ssl;
  char byte;
  ERR_clear_error();
  errno = 0;
  int n = SSL_peek(ssl, &byte, 1);
  if (n > 0) return 1;
  switch (outcome(ssl, n)) {
    case Outcome::WantRead:
    case Outcome::WantWrite:
      errno = EAGAIN;
      return -1;
    case Outcome::Closed:
      return 0;
    case Outcome::Failed:
      ERR_clear_error();
      if (errno == 0) errno = EPROTO;
      return -1;
  }
  return -1;
}

const ConnectionOps kSslOps{ssl_recv, ssl_recv_chain, ssl_send_chain, ssl_peek};

void ssl_shutdown(Connection& c) {
  SslConnection* s = c.ssl;
  if (s == nullptr) return;
  if (!s->no_shutdown && s->handshaked && !c.error && !c.read.error) {
    // close_notify, sent if the socket takes it now; the peer's is not waited for.
    SSL_set_quiet_shutdown(s->ssl, 0);
    ERR_clear_error();
    (void)SSL_shutdown(s->ssl);
  } else {
    // Closed without close_notify, as nginx closes then: the session stays resumable (OpenSSL
    // would drop it from the cache as a bad one - a stateful ticket's too).
    SSL_set_shutdown(s->ssl, SSL_RECEIVED_SHUTDOWN | SSL_SENT_SHUTDOWN);
  }
  c.ssl = nullptr;
  c.ops = nullptr;
  delete s;
}

SslConnection::~SslConnection() {
  ssl_ocsp_free(ocsp);  // before the SSL whose context and chain it uses
  ERR_clear_error();
  if (ssl != nullptr) SSL_free(ssl);
  delete[] out.start;
}

void ssl_free_buffer(Connection& c) {
  SslConnection* s = c.ssl;
  if (s == nullptr || s->out.pos != s->out.last) return;
  delete[] s->out.start;
  s->out = Buffer{};
}

SslClientCert ssl_client_certificate(const Connection& c, long* verify_error) {
  if (c.ssl == nullptr) return SslClientCert::None;
  X509* cert = SSL_get0_peer_certificate(c.ssl->ssl);
  if (cert == nullptr) return SslClientCert::None;
  long rc = SSL_get_verify_result(c.ssl->ssl);
  if (verify_error != nullptr) *verify_error = rc;
  return rc == X509_V_OK ? SslClientCert::Verified : SslClientCert::Failed;
}

void ssl_forget_session(Connection& c) {
  if (c.ssl == nullptr || c.ssl->session_ctx == nullptr) return;
  if (SSL_SESSION* sess = SSL_get0_session(c.ssl->ssl))
    SSL_CTX_remove_session(c.ssl->session_ctx, sess);
}

bool ssl_verify_error_optional(long error) {
  return error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
         error == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
         error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
         error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
         error == X509_V_ERR_CERT_UNTRUSTED || error == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

std::string ssl_verify_error_text(long error) {
  return X509_verify_cert_error_string(error);
}

namespace {

// What print writes into a memory BIO, as a string.
template <class Print>
std::string printed(Print print) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  print(bio);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string name_text(const X509_NAME* name) {
  return printed([&](BIO* bio) { X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253); });
}

// nginx's certificate dates: "Dec  5 10:00:00 2026 GMT" (ASN1_TIME_print's).
std::string time_text(const ASN1_TIME* t) {
  return printed([&](BIO* bio) { ASN1_TIME_print(bio, t); });
}

}  // namespace

std::string ssl_client_cert_field(const Connection& c, SslCertField field) {
  if (c.ssl == nullptr) return {};
  X509* cert = SSL_get0_peer_certificate(c.ssl->ssl);
  if (cert == nullptr) return {};
  auto pem = [&] { return printed([&](BIO* bio) { PEM_write_bio_X509(bio, cert); }); };
  switch (field) {
    case SslCertField::SDn:
      return name_text(X509_get_subject_name(cert));
    case SslCertField::IDn:
      return name_text(X509_get_issuer_name(cert));
    case SslCertField::SDnLegacy:
    case SslCertField::IDnLegacy: {
      X509_NAME* name = field == SslCertField::SDnLegacy ? X509_get_subject_name(cert)
                                                         : X509_get_issuer_name(cert);
      char* line = X509_NAME_oneline(name, nullptr, 0);
      std::string out = line != nullptr ? line : "";
      OPENSSL_free(line);
      return out;
    }
    case SslCertField::Serial: {
      BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
      char* hex = bn != nullptr ? BN_bn2hex(bn) : nullptr;
      std::string out = hex != nullptr ? hex : "";
      OPENSSL_free(hex);
      BN_free(bn);
      return out;
    }
    case SslCertField::Fingerprint: {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (X509_digest(cert, EVP_sha1(), md, &len) != 1) return {};
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out;
      for (unsigned int i = 0; i < len; i++) {
        out += kHex[md[i] >> 4];
        out += kHex[md[i] & 0xf];
      }
      return out;
    }
    case SslCertField::RawCert:  // the PEM as it is, its last line break too (nginx's)
      return pem();
    case SslCertField::Cert: {
      std::string text = pem();
      if (!text.empty()) text.pop_back();  // the last line break
      std::string out;
      out.reserve(text.size() + text.size() / 64 + 1);
      for (char ch : text) {
        out += ch;
        if (ch == '\n') out += '\t';
      }
      return out;
    }
    case SslCertField::EscapedCert: {
      std::string text = pem();
      std::string out(escape_uri(nullptr, text, Escape::UriComponent), '\0');
      escape_uri(out.data(), text, Escape::UriComponent);
      return out;
    }
    case SslCertField::VStart:
      return time_text(X509_get0_notBefore(cert));
    case SslCertField::VEnd:
      return time_text(X509_get0_notAfter(cert));
    case SslCertField::VRemain: {
      int days = 0;
      int secs = 0;
      if (ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)) != 1) return {};
      int64_t left = int64_t{days} * 86400 + secs;  // whole days left, as nginx counts them
      return std::to_string(left < 86400 ? 0 : left / 86400);
    }
  }
  return {};
}

std::string_view ssl_protocol(const Connection& c) {
  return c.ssl != nullptr ? SSL_get_version(c.ssl->ssl) : "";
}

std::string_view ssl_cipher(const Connection& c) {
  if (c.ssl == nullptr) return "";
  const char* name = SSL_get_cipher_name(c.ssl->ssl);
  return name != nullptr ? name : "";
}

std::string_view ssl_server_name(const Connection& c) {
  if (c.ssl == nullptr) return "";
  const char* name = SSL_get_servername(c.ssl->ssl, TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

namespace {

std::string hex_of(const unsigned char* p, size_t n, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; i++) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 0xf];
  }
  return out;
}

std::string group_name(int nid) {
  if (nid & TLSEXT_nid_unknown) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%04x", nid & 0xffff);
    return buf;
  }
  const char* name = OBJ_nid2sn(nid);
  return name != nullptr ? name : std::to_string(nid);
}

}  // namespace

std::string ssl_alpn_protocol(const Connection& c) {
  if (c.ssl == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(c.ssl->ssl, &data, &len);
  if (len == 0) return {};
  return {reinterpret_cast<const char*>(data), len};
}

std::string ssl_session_id(const Connection& c) {
  if (c.ssl == nullptr) return {};
  SSL_SESSION* sess = SSL_get0_session(c.ssl->ssl);
  if (sess == nullptr) return {};
  unsigned int len = 0;
  const unsigned char* id = SSL_SESSION_get_id(sess, &len);
  return hex_of(id, len, false);
}

std::string ssl_curve(const Connection& c) {
  if (c.ssl == nullptr) return {};
  int nid = SSL_get_negotiated_group(c.ssl->ssl);
  return nid != 0 ? group_name(nid) : std::string();
}

std::string ssl_client_curves(const Connection& c) {
  if (c.ssl == nullptr) return {};
  int n = SSL_get1_curves(c.ssl->ssl, nullptr);
  if (n <= 0) return {};
  std::vector<int> groups(static_cast<size_t>(n));
  SSL_get1_curves(c.ssl->ssl, groups.data());
  std::string out;
  for (int nid : groups) {
    if (!out.empty()) out += ':';
    out += group_name(nid);  // OpenSSL's short names, as nginx prints them
  }
  return out;
}

std::string ssl_client_ciphers(const Connection& c) {
  if (c.ssl == nullptr) return {};
  // The raw list, signalling values included, unknown ones in hex (as nginx prints it).
  const unsigned char* raw = nullptr;
  size_t len = SSL_get0_raw_cipherlist(c.ssl->ssl, &raw);
  std::string out;
  for (size_t i = 0; raw != nullptr && i + 1 < len; i += 2) {
    if (!out.empty()) out += ':';
    const SSL_CIPHER* cipher = SSL_CIPHER_find(c.ssl->ssl, raw + i);
    if (cipher != nullptr) {
      out += SSL_CIPHER_get_name(cipher);
    } else {
      out += "0x" + hex_of(raw + i, 2, false);
    }
  }
  return out;
}

bool ssl_session_reused(const Connection& c) {
  return c.ssl != nullptr && SSL_session_reused(c.ssl->ssl) == 1;
}

}  // namespace weir
