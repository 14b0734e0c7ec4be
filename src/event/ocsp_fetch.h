// One OCSP question over HTTP/1.0, as nginx asks it, for ssl_stapling's staples and ssl_ocsp's
// client certificate checks: GET <uri>/<the DER request in base64, escaped>, to the responder's
// addresses in turn until one answers; the answer is checked as nginx checks it (HTTP status and
// type, the response's signature, its validity) and the certificate's status taken from it. The
// fetch runs from the event loop and tells its owner once, unless the owner cancels it first.
// nginx: src/event/ngx_event_openssl_stapling.c (ngx_ssl_ocsp_request and what follows)
#pragma once

#include <cstdint>
#include <ctime>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/inet.h"
#include "core/log.h"
#include "core/status.h"

struct x509_st;
struct x509_store_st;
struct stack_st_X509;

namespace weir {

class Resolver;

// Where a certificate's status is asked: the responder's host (the Host header, the name to
// resolve), its port, the path the request goes under, and its addresses.
struct OcspResponder {
  std::string host;
  uint16_t port = 80;
  std::string uri = "/";
  std::vector<SockAddr> addrs;
};

// "http://host[:port][/uri]" taken apart as nginx's; resolve: the host's addresses now (a literal
// address is always taken). The error is nginx's reason and the URL after its scheme ("host not
// found in OCSP responder \"ocsp.example:80/\""); the caller says where the URL came from.
Result<OcspResponder> parse_ocsp_responder(std::string_view url, bool resolve);

inline constexpr time_t kOcspForever = std::numeric_limits<time_t>::max();

// What is asked and how the answer is checked. The certificates and the store are the owner's: they
// live until the fetch is over or cancelled.
struct OcspQuestion {
  x509_st* cert = nullptr;
  x509_st* issuer = nullptr;
  stack_st_X509* chain = nullptr;  // certificates that may sign the response
  x509_store_st* store = nullptr;  // the trusted ones
  unsigned long verify_flags = 0;  // OCSP_basic_verify's
  OcspResponder responder;
  std::string name;        // the certificate's file, for logs ("" none)
  bool good_only = false;  // any status but good is an error (logged), as for a staple
  // A host name is resolved when asked, as nginx's ngx_ssl_ocsp_request: with the resolver, or
  // (nullptr: none is configured) the addresses found at load are used, with a warning.
  Resolver* resolver = nullptr;
  uint64_t resolver_timeout = 30000;
};

struct OcspAnswer {
  bool ok = false;  // a checked response came: status and valid are its (errors are logged)
  int status = 0;   // V_OCSP_CERTSTATUS_*
  time_t valid = kOcspForever;  // its nextUpdate
  std::string der;              // the response
};

class OcspFetch;
using OcspDone = void (*)(void* owner, const OcspAnswer& answer);

// Asks q's responder from the next turn of the event loop; done(owner, answer) runs once, when it
// is over. Lines are logged to parent's destinations, with its connection number.
OcspFetch* ocsp_fetch(OcspQuestion q, OcspDone done, void* owner, const Log& parent);
// The owner no longer waits: done will not run.
void ocsp_fetch_cancel(OcspFetch* f);

}  // namespace weir
