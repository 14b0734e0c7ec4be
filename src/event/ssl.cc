#include "event/ssl.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/file.h"
#include "core/log.h"
#include "core/queue.h"
#include "core/rbtree.h"
#include "core/slab.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/connection.h"

namespace weir {

namespace {

// OpenSSL's queued errors as nginx prints them: " (SSL: error:...:reason)" for each.
std::string ssl_errors() {
  std::string out;
  unsigned long e;
  char text[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, text, sizeof text);
    out += out.empty() ? " (SSL: " : ":";
    out += text;
  }
  if (!out.empty()) out += ")";
  return out;
}

Status ssl_error(const std::string& what) {
  return Status::error(what + ssl_errors());
}

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
  EVP_PKEY* dh = PEM_read_bio_Parameters(bio, nullptr);
  BIO_free(bio);
  if (dh == nullptr) return ssl_error("PEM_read_bio_Parameters(\"" + file + "\") failed");
  if (SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
    EVP_PKEY_free(dh);
    return ssl_error("SSL_CTX_set0_tmp_dh_pkey(\"" + file + "\") failed");
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
Status load_certificate(SSL_CTX* ctx, const std::string& file) {
  std::string what = "cannot load certificate \"" + file + "\": ";
  BIO* bio = BIO_new_file(file.c_str(), "r");
  if (bio == nullptr) return ssl_error(what + "BIO_new_file() failed");
  X509* x = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
  if (x == nullptr) {
    BIO_free(bio);
    return ssl_error(what + "PEM_read_bio_X509_AUX() failed");
  }
  int ok = SSL_CTX_use_certificate(ctx, x);
  X509_free(x);
  if (ok != 1) {
    BIO_free(bio);
    return ssl_error("SSL_CTX_use_certificate(\"" + file + "\") failed");
  }
  while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      BIO_free(bio);
      return ssl_error("SSL_CTX_add0_chain_cert(\"" + file + "\") failed");
    }
  }
  ERR_clear_error();  // the end of the file
  BIO_free(bio);
  return {};
}

Status load_key(SSL_CTX* ctx, const std::string& file) {
  std::string what = "cannot load certificate key \"" + file + "\": ";
  BIO* bio = BIO_new_file(file.c_str(), "r");
  if (bio == nullptr) return ssl_error(what + "BIO_new_file() failed");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return ssl_error(what + "PEM_read_bio_PrivateKey() failed");
  int ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (ok != 1) return ssl_error("SSL_CTX_use_PrivateKey(\"" + file + "\") failed");
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
  for (size_t i = 0; i < conf.certificates.size(); i++) {
    if (Status s = load_certificate(ctx, conf.certificates[i]); !s.ok()) return s;
    if (Status s = load_key(ctx, conf.keys[i]); !s.ok()) return s;
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
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
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
  if (!conf.session_tickets) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    // TLS 1.3 resumes through tickets: stateful ones (a session id) when a cache keeps them.
    if (conf.session_cache != SslSessionCache::Builtin && conf.shared == nullptr) {
      SSL_CTX_set_num_tickets(ctx, 0);
    }
  }
  return {};
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
  log_error(LogLevel::Info, *c.log, err, "%s failed%s", call, why.c_str());
  c.ssl->no_shutdown = true;
}

}  // namespace

void* ssl_session_store_create(SlabPool& slab) {
  void* p = slab.calloc_locked(sizeof(SessionStore));
  return p != nullptr ? new (p) SessionStore : nullptr;
}

Result<ssl_ctx_st*> ssl_server_context(const SslServerConf& conf) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return ssl_error("SSL_CTX_new() failed");
  if (Status s = configure(ctx, conf); !s.ok()) {
    SSL_CTX_free(ctx);
    return s;
  }
  return ctx;
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
  SSL_set_app_data(ssl, &c);
  auto* s = new SslConnection;
  s->ssl = ssl;
  s->buffer_size = buffer_size;
  c.ssl = s;
  c.io.use_sendfile = false;  // file data goes through SSL_write
  return {};
}

Rc ssl_handshake(Connection& c) {
  SSL* ssl = c.ssl->ssl;
  ERR_clear_error();
  errno = 0;
  int n = SSL_do_handshake(ssl);
  if (n == 1) {
    c.ssl->handshaked = true;
    return Rc::Ok;
  }
  switch (outcome(ssl, n)) {
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
      log_failure(c, "SSL_do_handshake()");
      return Rc::Error;
  }
  return Rc::Error;
}

IoResult ssl_recv(Connection& c, char* buf, size_t size) {
  SSL* ssl = c.ssl->ssl;
  size_t got = 0;
  while (got < size) {
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(ssl, buf + got, static_cast<int>(std::min<size_t>(size - got, 1 << 30)));
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    switch (outcome(ssl, n)) {
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
        c.read.ready = false;
        c.read.error = true;
        log_failure(c, "SSL_read()");
        return {Rc::Error, 0};
    }
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
      int n = SSL_write(s.ssl, o.pos, static_cast<int>(o.last - o.pos));
      if (n > 0) {
        o.pos += n;
        c.io.sent += n;
        continue;
      }
      Outcome out = outcome(s.ssl, n);
      if (out == Outcome::WantWrite || out == Outcome::WantRead) {
        c.write.ready = false;
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

int server_name_callback(SSL* ssl, int*, void*) {
  auto* c = static_cast<Connection*>(SSL_get_app_data(ssl));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (c == nullptr || name == nullptr || g_server_name == nullptr) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* ctx = g_server_name(*c, name);
  if (ctx != nullptr && ctx != SSL_get_SSL_CTX(ssl)) {
    SSL_set_SSL_CTX(ssl, ctx);
    // The options that differ between servers (protocols, cipher preference) follow the server.
    SSL_clear_options(ssl, SSL_get_options(ssl) & ~SSL_CTX_get_options(ctx));
    SSL_set_options(ssl, SSL_CTX_get_options(ctx));
  }
  return SSL_TLSEXT_ERR_OK;
}
}  // namespace

void ssl_on_server_name(ssl_ctx_st* ctx, SslServerNameFn fn) {
  g_server_name = fn;
  SSL_CTX_set_tlsext_servername_callback(ctx, server_name_callback);
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

void ssl_shutdown(Connection& c) {
  SslConnection* s = c.ssl;
  if (s == nullptr) return;
  if (!s->no_shutdown && s->handshaked && !c.error && !c.read.error) {
    // close_notify, sent if the socket takes it now; the peer's is not waited for.
    SSL_set_quiet_shutdown(s->ssl, 0);
    ERR_clear_error();
    (void)SSL_shutdown(s->ssl);
  }
  c.ssl = nullptr;
  delete s;
}

SslConnection::~SslConnection() {
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

bool ssl_session_reused(const Connection& c) {
  return c.ssl != nullptr && SSL_session_reused(c.ssl->ssl) == 1;
}

}  // namespace weir
