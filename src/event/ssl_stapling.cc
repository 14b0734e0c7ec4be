#include "event/ssl_stapling.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>

#include "core/base64.h"
#include "core/escape.h"
#include "core/inet.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/connection.h"
#include "event/event_loop.h"
#include "event/peer_connection.h"

namespace weir {

namespace {

constexpr time_t kForever = std::numeric_limits<time_t>::max();
constexpr clock::msec_t kTimeout = 60000;  // nginx's, for connecting, sending and reading
constexpr size_t kMaxResponse = 16384;     // nginx's response buffer

// Where a certificate's status is asked: the responder's host (the Host header), the path the
// request goes under, and the host's addresses, resolved at load as nginx resolves them.
struct Responder {
  std::string host;
  std::string uri;
  std::vector<SockAddr> addrs;
};

// A certificate's staple: the DER response sent with it, and what fetching it takes.
struct Staple {
  X509* cert = nullptr;
  X509* issuer = nullptr;            // for the request's certificate id (fetched staples)
  STACK_OF(X509) * chain = nullptr;  // the certificates after the leaf: may sign the response
  std::string name;                  // the certificate's file, for logs
  Responder responder;               // no host: a stapling file's response, never fetched
  std::string response;
  time_t valid = kForever;  // the response is stapled until then
  time_t refresh = 0;       // and fetched again from then
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

// One fetch of one staple: connect to the responder's addresses in turn, send nginx's GET, read the
// answer to the end, check it, and keep it. Live fetches are listed, so that a worker that exits
// in the middle of one leaves nothing unaccounted for.
class OcspFetch {
 public:
  static void start(const StaplesRef& staples, Staple& st, const Log& parent);

 private:
  OcspFetch(const StaplesRef& staples, Staple& st, const Log& parent);
  ~OcspFetch();

  bool make_request();
  void connect();
  void on_write();
  void on_read();
  void next_address();
  Rc check_response(time_t& valid);
  void finish(bool ok, time_t valid = 0);
  static char* log_handler(const Log& log, char* p, char* end);
  static OcspFetch& of(Event& ev) {
    return *static_cast<OcspFetch*>(static_cast<Connection*>(ev.data)->data);
  }

  StaplesRef staples_;
  Staple& st_;
  Log log_;
  Event start_;
  PeerConnection pc_;
  size_t addr_ = 0;
  std::string peer_;  // the address being tried, for logs
  Connection* c_ = nullptr;
  bool connected_ = false;
  std::string request_;
  Buffer out_;
  std::string in_;
  OcspFetch* next_ = nullptr;
  OcspFetch** prev_ = nullptr;

  static OcspFetch* live_;
};

OcspFetch* OcspFetch::live_ = nullptr;

OcspFetch::OcspFetch(const StaplesRef& staples, Staple& st, const Log& parent)
    : staples_(staples), st_(st) {
  log_.sink = parent.sink;
  log_.action = "requesting certificate status";
  log_.handler = log_handler;
  log_.data = this;
  next_ = live_;
  if (next_ != nullptr) next_->prev_ = &next_;
  prev_ = &live_;
  live_ = this;
}

OcspFetch::~OcspFetch() {
  if (start_.posted) delete_posted_event(start_);
  if (c_ != nullptr) close_connection(*c_);
  *prev_ = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
}

// ", responder: ..., peer: ..., certificate: ..." after nginx's "while requesting certificate
// status".
char* OcspFetch::log_handler(const Log& log, char* p, char* end) {
  const auto& f = *static_cast<const OcspFetch*>(log.data);
  int n = std::snprintf(p, end - p, " while %s, responder: %s", log.action,
                        f.st_.responder.host.c_str());
  p += std::min<ptrdiff_t>(n, end - p - 1);
  if (!f.peer_.empty()) {
    n = std::snprintf(p, end - p, ", peer: %s", f.peer_.c_str());
    p += std::min<ptrdiff_t>(n, end - p - 1);
  }
  n = std::snprintf(p, end - p, ", certificate: \"%s\"", f.st_.name.c_str());
  p += std::min<ptrdiff_t>(n, end - p - 1);
  return p;
}

// Called from OpenSSL's status callback: the fetch itself starts from the event loop.
void OcspFetch::start(const StaplesRef& staples, Staple& st, const Log& parent) {
  st.loading = true;
  auto* f = new OcspFetch(staples, st, parent);
  if (!f->make_request()) {
    f->finish(false);
    return;
  }
  f->start_.data = f;
  f->start_.log = &f->log_;
  f->start_.handler = [](Event& ev) { static_cast<OcspFetch*>(ev.data)->connect(); };
  post_event(f->start_);
}

// nginx's request: GET <uri>/<the DER request in base64, escaped> HTTP/1.0.
bool OcspFetch::make_request() {
  OCSP_REQUEST* req = OCSP_REQUEST_new();
  if (req == nullptr) {
    log_error(LogLevel::Crit, log_, 0, "OCSP_REQUEST_new() failed%s", ssl_errors().c_str());
    return false;
  }
  OCSP_CERTID* id = OCSP_cert_to_id(nullptr, st_.cert, st_.issuer);
  if (id == nullptr || OCSP_request_add0_id(req, id) == nullptr) {
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    log_error(LogLevel::Crit, log_, 0, "OCSP_cert_to_id() failed%s", ssl_errors().c_str());
    return false;
  }
  unsigned char* der = nullptr;
  int len = i2d_OCSP_REQUEST(req, &der);
  OCSP_REQUEST_free(req);
  if (len <= 0) {
    log_error(LogLevel::Crit, log_, 0, "i2d_OCSP_REQUEST() failed%s", ssl_errors().c_str());
    return false;
  }
  std::string b64(base64_encoded_length(static_cast<size_t>(len)), '\0');
  b64.resize(base64_encode(b64.data(), {der, static_cast<size_t>(len)}));
  OPENSSL_free(der);
  std::string escaped(escape_uri(nullptr, b64, Escape::UriComponent), '\0');
  escape_uri(escaped.data(), b64, Escape::UriComponent);
  const Responder& rs = st_.responder;
  request_ = "GET " + rs.uri;
  if (!rs.uri.ends_with('/')) request_ += '/';
  request_ += escaped;
  request_ += " HTTP/1.0\r\nHost: " + rs.host + "\r\n\r\n";
  return true;
}

void OcspFetch::connect() {
  if (addr_ >= st_.responder.addrs.size()) {
    finish(false);
    return;
  }
  const SockAddr& addr = st_.responder.addrs[addr_];
  peer_ = addr.to_string();
  pc_ = PeerConnection{};
  pc_.sockaddr = &addr;
  pc_.name = peer_;
  pc_.log = &log_;
  Rc rc = open_peer(pc_);
  if (rc == Rc::Declined) {
    next_address();
    return;
  }
  if (rc != Rc::Ok && rc != Rc::Again) {
    finish(false);
    return;
  }
  c_ = pc_.connection;
  c_->data = this;
  c_->read.handler = [](Event& ev) { of(ev).on_read(); };
  c_->write.handler = [](Event& ev) { of(ev).on_write(); };
  // A worker that is shutting down does not wait for a staple: it closes idle connections.
  c_->idle = true;
  c_->read.cancelable = c_->write.cancelable = true;
  out_ = Buffer{};
  out_.start = out_.pos = request_.data();
  out_.last = out_.end = request_.data() + request_.size();
  out_.temporary = true;
  in_.clear();
  connected_ = rc == Rc::Ok;
  add_timer(c_->write, kTimeout);
  if (rc == Rc::Ok) on_write();
}

void OcspFetch::next_address() {
  if (c_ != nullptr) {
    close_connection(*c_);
    c_ = nullptr;
  }
  addr_++;
  connect();
}

void OcspFetch::on_write() {
  if (c_->close) {
    finish(false);
    return;
  }
  if (c_->write.timedout) {
    log_error(LogLevel::Error, log_, ETIMEDOUT, "OCSP responder timed out");
    next_address();
    return;
  }
  if (!connected_) {
    if (int err = connect_error(*c_); err != 0) {
      log_error(LogLevel::Error, log_, err, "connect() failed");
      next_address();
      return;
    }
    connected_ = true;
  }
  if (out_.pos == out_.last) return;
  ChainLink cl{&out_, nullptr};
  SendResult sent = c_->send_chain(&cl, 0);
  if (sent.rc == Rc::Error) {
    next_address();
    return;
  }
  if (out_.pos != out_.last) return;  // the write event comes back
  del_timer(c_->write);
  add_timer(c_->read, kTimeout);
  if (c_->read.ready) on_read();
}

void OcspFetch::on_read() {
  if (c_->close) {
    finish(false);
    return;
  }
  if (c_->read.timedout) {
    log_error(LogLevel::Error, log_, ETIMEDOUT, "OCSP responder timed out");
    next_address();
    return;
  }
  char buf[4096];
  for (;;) {
    IoResult res = c_->recv(buf, sizeof buf);
    if (res.rc == Rc::Again) return;
    if (res.rc == Rc::Error) {
      next_address();
      return;
    }
    if (res.rc == Rc::Done) break;
    if (in_.size() + res.n > kMaxResponse) {
      log_error(LogLevel::Error, log_, 0, "OCSP responder sent too long response");
      next_address();
      return;
    }
    in_.append(buf, res.n);
  }
  time_t valid = 0;
  Rc rc = check_response(valid);
  if (rc == Rc::Again) {
    log_error(LogLevel::Error, log_, 0, "OCSP responder prematurely closed connection");
    next_address();
    return;
  }
  finish(rc == Rc::Ok, valid);
}

time_t asn1_time(const ASN1_GENERALIZEDTIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return -1;
  return timegm(&tm);
}

// The whole answer: its HTTP header (200, nginx's Content-Type rule) and the OCSP response in its
// body, checked as nginx checks it. Again: the header is not complete.
Rc OcspFetch::check_response(time_t& valid) {
  std::string_view text = in_;
  size_t end = text.find("\r\n\r\n");
  size_t body_at = end + 4;
  if (end == std::string_view::npos) {
    end = text.find("\n\n");
    if (end == std::string_view::npos) return Rc::Again;
    body_at = end + 2;
  }
  std::string_view head = text.substr(0, end);
  size_t eol = head.find('\n');
  std::string_view status_line = head.substr(0, eol);
  if (status_line.ends_with('\r')) status_line.remove_suffix(1);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    log_error(LogLevel::Error, log_, 0, "OCSP responder sent invalid response");
    return Rc::Error;
  }
  std::string_view code = status_line.substr(9, 3);
  if (code != "200") {
    log_error(LogLevel::Error, log_, 0, "OCSP responder sent status %.*s",
              static_cast<int>(code.size()), code.data());
    return Rc::Error;
  }
  for (std::string_view rest = eol == std::string_view::npos ? "" : head.substr(eol + 1);
       !rest.empty();) {
    size_t n = rest.find('\n');
    std::string_view line = rest.substr(0, n);
    rest = n == std::string_view::npos ? "" : rest.substr(n + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !iequals(line.substr(0, colon), "Content-Type")) {
      continue;
    }
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!iequals(value, "application/ocsp-response")) {
      log_error(LogLevel::Error, log_, 0,
                "OCSP responder sent invalid \"Content-Type\" header: \"%.*s\"",
                static_cast<int>(value.size()), value.data());
      return Rc::Error;
    }
  }
  std::string_view body = text.substr(body_at);
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  OCSP_RESPONSE* ocsp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(body.size()));
  OCSP_BASICRESP* basic = nullptr;
  OCSP_CERTID* id = nullptr;
  Rc rc = Rc::Error;
  int status = V_OCSP_CERTSTATUS_UNKNOWN;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (ocsp == nullptr) {
    log_error(LogLevel::Error, log_, 0, "d2i_OCSP_RESPONSE() failed%s", ssl_errors().c_str());
  } else if (int n = OCSP_response_status(ocsp); n != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    log_error(LogLevel::Error, log_, 0, "OCSP response not successful (%d: %s)", n,
              OCSP_response_status_str(n));
  } else if (basic = OCSP_response_get1_basic(ocsp); basic == nullptr) {
    log_error(LogLevel::Error, log_, 0, "OCSP_response_get1_basic() failed%s",
              ssl_errors().c_str());
  } else if (OCSP_basic_verify(basic, st_.chain, staples_->store,
                               staples_->verify ? OCSP_TRUSTOTHER : OCSP_NOVERIFY) != 1) {
    log_error(LogLevel::Error, log_, 0, "OCSP_basic_verify() failed%s", ssl_errors().c_str());
  } else if (id = OCSP_cert_to_id(nullptr, st_.cert, st_.issuer); id == nullptr) {
    log_error(LogLevel::Crit, log_, 0, "OCSP_cert_to_id() failed%s", ssl_errors().c_str());
  } else if (OCSP_resp_find_status(basic, id, &status, nullptr, nullptr, &this_update,
                                   &next_update) != 1) {
    log_error(LogLevel::Error, log_, 0, "certificate status not found in the OCSP response");
  } else if (OCSP_check_validity(this_update, next_update, 300, -1) != 1) {
    log_error(LogLevel::Error, log_, 0, "OCSP_check_validity() failed%s", ssl_errors().c_str());
  } else if (valid = next_update != nullptr ? asn1_time(next_update) : kForever; valid == -1) {
    log_error(LogLevel::Error, log_, 0, "invalid nextUpdate time in certificate status");
  } else if (status != V_OCSP_CERTSTATUS_GOOD) {
    log_error(LogLevel::Error, log_, 0, "certificate status \"%s\" in the OCSP response",
              OCSP_cert_status_str(status));
  } else {
    st_.response.assign(body);
    rc = Rc::Ok;
  }
  OCSP_CERTID_free(id);
  OCSP_BASICRESP_free(basic);
  OCSP_RESPONSE_free(ocsp);
  return rc;
}

// The staple is refreshed before the response expires, but not within five minutes and at least
// every hour; a failure is tried again in five minutes. The fetch is over.
void OcspFetch::finish(bool ok, time_t valid) {
  time_t now = clock::now();
  st_.loading = false;
  if (ok) {
    st_.valid = valid;
    time_t before_expiry = valid == kForever ? kForever : valid - 300;
    st_.refresh = std::max(std::min(before_expiry, now + 3600), now + 300);
  } else {
    st_.refresh = now + 300;
  }
  delete this;
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
      OcspFetch::start(*ref, *st, c != nullptr ? *c->log : no_log);
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

// The responder URL taken apart as nginx's: "http://host[:port][/uri]", the host resolved now.
// The error is nginx's reason, for its "ssl_stapling ignored" warning.
Result<Responder> parse_responder(std::string_view url, const std::string& file) {
  std::string where = "\" in the certificate \"" + file + "\"";
  if (url.size() <= 7 || !iequals(url.substr(0, 7), "http://")) {
    return Status::error("invalid URL prefix in OCSP responder \"" + std::string(url) + where);
  }
  url.remove_prefix(7);
  size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  Responder rs;
  rs.uri = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  std::string_view host = hostport;
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  rs.host = host;
  Result<std::vector<SockAddr>> addrs = parse_addresses(hostport, 80, false);
  if (!addrs.ok() || hostport.empty()) {
    std::string why = hostport.empty() ? "no host" : addrs.status().message();
    return Status::error(why + " in OCSP responder \"" + std::string(url) + where);
  }
  rs.addrs = std::move(*addrs);
  return rs;
}

}  // namespace

// Each certificate's staple: a stapling file's response, or a responder to fetch it from. Where
// there is neither (no issuer, no responder URL), nginx warns and staples nothing, and so does
// weir.
Status setup_stapling(SSL_CTX* ctx, const SslServerConf& conf, std::vector<std::string>* warnings) {
  auto staples = std::make_shared<Staples>();
  staples->verify = conf.stapling_verify;
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
    Result<Responder> rs = parse_responder(url, file);
    if (!rs.ok()) {
      warn(rs.status().message());
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
