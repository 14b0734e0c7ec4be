#include "event/ocsp_fetch.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

#include "core/base64.h"
#include "core/escape.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/connection.h"
#include "event/event_loop.h"
#include "event/peer_connection.h"
#include "event/resolver.h"
#include "event/ssl.h"

namespace weir {

namespace {

constexpr clock::msec_t kTimeout = 60000;  // nginx's, for connecting, sending and reading
constexpr size_t kMaxResponse = 16384;     // nginx's response buffer

time_t asn1_time(const ASN1_GENERALIZEDTIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return -1;
  return timegm(&tm);
}

}  // namespace

// Connects to the responder's addresses in turn (after resolving its name when asked to), sends
// the request, reads the answer to the end and checks it. Live fetches are listed, so that a
// worker that exits in the middle of one leaves nothing unaccounted for.
class OcspFetch {
 public:
  OcspFetch(OcspQuestion q, OcspDone done, void* owner, const Log& parent);
  ~OcspFetch();
  OcspFetch(const OcspFetch&) = delete;
  OcspFetch& operator=(const OcspFetch&) = delete;

  static void on_start(Event& ev) { static_cast<OcspFetch*>(ev.data)->begin(); }
  const Log* log() const { return &log_; }

  Event start;

 private:
  bool make_request();
  void begin();
  static void resolved(ResolveQuery& q);
  void connect();
  void on_write();
  void on_read();
  void next_address();
  OcspAnswer check_response();
  void finish(const OcspAnswer& answer);
  static char* log_handler(const Log& log, char* p, char* end);
  static OcspFetch& of(Event& ev) {
    return *static_cast<OcspFetch*>(static_cast<Connection*>(ev.data)->data);
  }

  OcspQuestion q_;
  OcspDone done_;
  void* owner_;
  Log log_;
  ResolveQuery* query_ = nullptr;
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

OcspFetch::OcspFetch(OcspQuestion q, OcspDone done, void* owner, const Log& parent)
    : q_(std::move(q)), done_(done), owner_(owner) {
  log_.sink = parent.sink;
  log_.connection = parent.connection;
  log_.debug = parent.debug;
  log_.action = "requesting certificate status";
  log_.handler = log_handler;
  log_.data = this;
  next_ = live_;
  if (next_ != nullptr) next_->prev_ = &next_;
  prev_ = &live_;
  live_ = this;
}

OcspFetch::~OcspFetch() {
  if (start.posted) delete_posted_event(start);
  if (query_ != nullptr) Resolver::cancel(query_);
  if (c_ != nullptr) close_connection(*c_);
  *prev_ = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
}

// ", responder: ..., peer: ..., certificate: ..." after nginx's "while requesting certificate
// status".
char* OcspFetch::log_handler(const Log& log, char* p, char* end) {
  const auto& f = *static_cast<const OcspFetch*>(log.data);
  int n = std::snprintf(p, end - p, " while %s, responder: %s", log.action,
                        f.q_.responder.host.c_str());
  p += std::min<ptrdiff_t>(n, end - p - 1);
  if (!f.peer_.empty()) {
    n = std::snprintf(p, end - p, ", peer: %s", f.peer_.c_str());
    p += std::min<ptrdiff_t>(n, end - p - 1);
  }
  if (!f.q_.name.empty()) {
    n = std::snprintf(p, end - p, ", certificate: \"%s\"", f.q_.name.c_str());
    p += std::min<ptrdiff_t>(n, end - p - 1);
  }
  return p;
}

// nginx's request: GET <uri>/<the DER request in base64, escaped> HTTP/1.0.
bool OcspFetch::make_request() {
  OCSP_REQUEST* req = OCSP_REQUEST_new();
  if (req == nullptr) {
    log_error(LogLevel::Crit, log_, 0, "OCSP_REQUEST_new() failed%s", ssl_errors().c_str());
    return false;
  }
  OCSP_CERTID* id = OCSP_cert_to_id(nullptr, q_.cert, q_.issuer);
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
  const OcspResponder& rs = q_.responder;
  request_ = "GET " + rs.uri;
  if (!rs.uri.ends_with('/')) request_ += '/';
  request_ += escaped;
  request_ += " HTTP/1.0\r\nHost: " + rs.host + "\r\n\r\n";
  return true;
}

// From the event loop: the request, the responder's addresses, then the first connection. A literal
// address needs no resolver; a name does, when the question says so (nginx's ngx_ssl_ocsp_request).
void OcspFetch::begin() {
  if (!make_request()) {
    finish({});
    return;
  }
  OcspResponder& rs = q_.responder;
  SockAddr literal;
  if (parse_addr_port(rs.host, literal)) {
    connect();
    return;
  }
  if (q_.resolver == nullptr) {
    if (rs.addrs.empty()) {
      log_error(LogLevel::Error, log_, 0, "no resolver defined to resolve %s", rs.host.c_str());
      finish({});
      return;
    }
    log_error(LogLevel::Warn, log_, 0, "no resolver defined to resolve %s", rs.host.c_str());
    connect();
    return;
  }
  query_ = q_.resolver->resolve(rs.host, q_.resolver_timeout, resolved, this, log_);
  if (query_ == nullptr) finish({});
}

void OcspFetch::resolved(ResolveQuery& q) {
  auto* f = static_cast<OcspFetch*>(q.data);
  f->query_ = nullptr;
  if (q.status != 0) {
    log_error(LogLevel::Error, f->log_, 0, "%s could not be resolved (%d: %s)", q.name.c_str(),
              q.status, q.error_text());
    f->finish({});
    return;
  }
  f->q_.responder.addrs = q.addrs;
  for (SockAddr& a : f->q_.responder.addrs) a.set_port(f->q_.responder.port);
  f->connect();
}

void OcspFetch::connect() {
  const std::vector<SockAddr>& addrs = q_.responder.addrs;
  if (addr_ >= addrs.size()) {
    finish({});
    return;
  }
  const SockAddr& addr = addrs[addr_];
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
    finish({});
    return;
  }
  c_ = pc_.connection;
  c_->data = this;
  c_->read.handler = [](Event& ev) { of(ev).on_read(); };
  c_->write.handler = [](Event& ev) { of(ev).on_write(); };
  // A worker that is shutting down does not wait for an answer: it closes idle connections.
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
    finish({});
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
    finish({});
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
    if (res.rc != Rc::Ok) break;  // a failed read ends the answer too (logged), as nginx's
    if (in_.size() + res.n > kMaxResponse) {
      log_error(LogLevel::Error, log_, 0, "OCSP responder sent too long response");
      next_address();
      return;
    }
    in_.append(buf, res.n);
  }
  if (in_.find("\r\n\r\n") == std::string::npos && in_.find("\n\n") == std::string::npos) {
    log_error(LogLevel::Error, log_, 0, "OCSP responder prematurely closed connection");
    next_address();
    return;
  }
  finish(check_response());
}

// The whole answer: its HTTP header (200, nginx's Content-Type rule) and the OCSP response in its
// body, checked as nginx checks it.
OcspAnswer OcspFetch::check_response() {
  OcspAnswer answer;
  std::string_view text = in_;
  size_t end = text.find("\r\n\r\n");
  size_t body_at = end + 4;
  if (end == std::string_view::npos) {
    end = text.find("\n\n");
    body_at = end + 2;
  }
  std::string_view head = text.substr(0, end);
  size_t eol = head.find('\n');
  std::string_view status_line = head.substr(0, eol);
  if (status_line.ends_with('\r')) status_line.remove_suffix(1);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    log_error(LogLevel::Error, log_, 0, "OCSP responder sent invalid response");
    return answer;
  }
  std::string_view code = status_line.substr(9, 3);
  if (code != "200") {
    log_error(LogLevel::Error, log_, 0, "OCSP responder sent status %.*s",
              static_cast<int>(code.size()), code.data());
    return answer;
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
      return answer;
    }
  }
  std::string_view body = text.substr(body_at);
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  OCSP_RESPONSE* ocsp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(body.size()));
  OCSP_BASICRESP* basic = nullptr;
  OCSP_CERTID* id = nullptr;
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
  } else if (OCSP_basic_verify(basic, q_.chain, q_.store, q_.verify_flags) != 1) {
    log_error(LogLevel::Error, log_, 0, "OCSP_basic_verify() failed%s", ssl_errors().c_str());
  } else if (id = OCSP_cert_to_id(nullptr, q_.cert, q_.issuer); id == nullptr) {
    log_error(LogLevel::Crit, log_, 0, "OCSP_cert_to_id() failed%s", ssl_errors().c_str());
  } else if (OCSP_resp_find_status(basic, id, &status, nullptr, nullptr, &this_update,
                                   &next_update) != 1) {
    log_error(LogLevel::Error, log_, 0, "certificate status not found in the OCSP response");
  } else if (OCSP_check_validity(this_update, next_update, 300, -1) != 1) {
    log_error(LogLevel::Error, log_, 0, "OCSP_check_validity() failed%s", ssl_errors().c_str());
  } else if (answer.valid = next_update != nullptr ? asn1_time(next_update) : kOcspForever;
             answer.valid == -1) {
    log_error(LogLevel::Error, log_, 0, "invalid nextUpdate time in certificate status");
  } else if (q_.good_only && status != V_OCSP_CERTSTATUS_GOOD) {
    log_error(LogLevel::Error, log_, 0, "certificate status \"%s\" in the OCSP response",
              OCSP_cert_status_str(status));
  } else {
    answer.ok = true;
    answer.status = status;
    answer.der.assign(body);
  }
  OCSP_CERTID_free(id);
  OCSP_BASICRESP_free(basic);
  OCSP_RESPONSE_free(ocsp);
  return answer;
}

// The owner is told last: it may start another fetch, or close what it belongs to.
void OcspFetch::finish(const OcspAnswer& answer) {
  OcspDone done = done_;
  void* owner = owner_;
  delete this;
  done(owner, answer);
}

Result<OcspResponder> parse_ocsp_responder(std::string_view url, bool resolve) {
  auto fail = [](std::string_view why, std::string_view shown) {
    return Status::error(std::string(why) + " in OCSP responder \"" + std::string(shown) + "\"");
  };
  if (url.size() <= 7 || !iequals(url.substr(0, 7), "http://")) {
    return fail("invalid URL prefix", url);
  }
  url.remove_prefix(7);
  size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  OcspResponder rs;
  if (slash != std::string_view::npos) rs.uri = url.substr(slash);
  std::string_view host = hostport;
  std::string_view port;
  bool has_port = false;
  if (host.starts_with('[')) {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return fail("invalid host", url);
    std::string_view after = host.substr(close + 1);
    host = host.substr(0, close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("invalid host", url);
      port = after.substr(1);
      has_port = true;
    }
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    has_port = true;
  }
  if (host.empty()) return fail("no host", url);
  if (has_port) {
    auto n = parse_int(port);
    if (!n || *n < 1 || *n > 65535) return fail("invalid port", url);
    rs.port = static_cast<uint16_t>(*n);
  }
  rs.host = host;
  if (resolve) {
    Result<std::vector<SockAddr>> addrs = parse_addresses(hostport, rs.port, false);
    if (!addrs.ok()) return fail(addrs.status().message(), url);
    rs.addrs = std::move(*addrs);
  } else if (SockAddr a; parse_addr_port(hostport, a)) {
    if (a.port() == 0) a.set_port(rs.port);
    rs.addrs.push_back(a);
  }
  return rs;
}

OcspFetch* ocsp_fetch(OcspQuestion q, OcspDone done, void* owner, const Log& parent) {
  auto* f = new OcspFetch(std::move(q), done, owner, parent);
  f->start.data = f;
  f->start.log = f->log();
  f->start.handler = OcspFetch::on_start;
  post_event(f->start);
  return f;
}

void ocsp_fetch_cancel(OcspFetch* f) {
  delete f;
}

}  // namespace weir
