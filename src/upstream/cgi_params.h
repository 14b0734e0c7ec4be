// fastcgi_param, uwsgi_param (and scgi_param to come): the variables a CGI-like protocol sends its
// application, with nginx's rules: if_not_empty leaves out an empty value, a level with any line of
// its own inherits none of the outer ones, and the client's header fields follow as HTTP_* names
// (upper case, '-' as '_') unless a param names them. Each protocol encodes the pairs its own way.
// nginx: the params parts of ngx_http_{fastcgi,uwsgi,scgi}_module.c
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conf/conf_context.h"
#include "http/parse.h"
#include "http/script.h"
#include "upstream/upstream.h"

namespace weir::http {

struct UpstreamSsl;

struct CgiParam {
  std::string key;
  ComplexValue value;
  bool if_not_empty = false;
};

struct CgiParams {
  std::vector<CgiParam>* written = nullptr;  // at this level; nullptr: the outer level's
  std::vector<std::string> header_params;    // the HTTP_* names the params set (merged)
};

// One `*_param name value [if_not_empty]` line.
Status add_cgi_param(ConfContext& cf, const ConfNode& n, CgiParams& params);
void merge_cgi_params(const CgiParams& prev, CgiParams& conf);

// fastcgi_pass, uwsgi_pass, scgi_pass: the group (or, with variables, the value naming it at
// request time). A location without one inherits the outer level's values (for `if` blocks), not
// the handler.
struct CgiPass {
  bool set = false;
  UpstreamGroup* group = nullptr;
  ComplexValue* value = nullptr;
  bool ssl = false;      // the ssl scheme named it (suwsgi://)
  std::string ssl_host;  // the host it names: the default *_ssl_name
};
// The schemes a pass's address may begin with: plain ("uwsgi://") and over TLS ("suwsgi://").
struct CgiSchemes {
  std::string_view plain;
  std::string_view ssl;
};
// The directive: handler becomes the location's; a scheme may prefix the address.
Status set_cgi_pass(ConfContext& cf, const ConfNode& n, CgiPass& pass, Code (*handler)(Request&),
                    CgiSchemes schemes = {});
void merge_cgi_pass(const CgiPass& prev, CgiPass& conf);
// At request time, a pass with variables names u's peer (or the request fails with 500), and
// whether it speaks TLS; the host is the default *_ssl_name.
Code cgi_pass_peer(Request& r, Upstream& u, const CgiPass& pass, CgiSchemes schemes,
                   std::string_view& host);

// What a CGI-like protocol's content handler does once its context is set: the upstream made with
// the protocol and its settings, the peer named, and the body read (streamed with stream_body)
// before the upstream starts.
struct CgiStart {
  const UpstreamConf* conf;
  const UpstreamProtocol* protocol;
  std::string_view schema;           // in log lines: "fastcgi://"
  CgiSchemes pass_schemes;           // a variable pass's value may begin with one
  const UpstreamSsl* ssl = nullptr;  // *_ssl_* (uwsgi's), for a pass over TLS
};
Code start_cgi_upstream(Request& r, const CgiStart& start, const CgiPass& pass, bool stream_body);

// The response fields a CGI-like protocol never passes on unless *_pass_header names them (nginx's
// ngx_http_{fastcgi,uwsgi,scgi}_hide_headers).
inline constexpr const char* kCgiHiddenHeaders[] = {
    "status",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
};

// A name and value to send; a header field's name is written as HTTP_ + its name in upper case.
struct CgiPair {
  std::string_view key;
  std::string_view value;
  bool header = false;

  size_t key_size() const { return key.size() + (header ? 5 : 0); }
  char* put_key(char* p) const;
};

// The request's pairs, in the request's pool: the params' values, then (pass_headers) the client's
// fields.
std::span<const CgiPair> cgi_pairs(Request& r, const CgiParams& params, bool pass_headers);

// A CGI answer's header (FastCGI's stdout, SCGI's): one parsed field kept in the pool with Status
// and Location read from it (Ok), or Invalid with nginx's line logged. protocol names it in debug
// lines.
HeaderResult cgi_header_field(Request& r, const HeaderLineState& hs, const char* protocol);
// The header ended: without Status, 302 when there is a Location, else 200 (as nginx).
void cgi_header_done(Upstream& u);

}  // namespace weir::http
