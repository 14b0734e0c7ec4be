#include "upstream/upstream_headers.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "core/str.h"
#include "core/time_cache.h"
#include "http/headers_in.h"
#include "upstream/upstream_cache.h"

namespace weir::http {

namespace {

// How an upstream header reaches the client's response: copied (and kept in its HeadersOut slot
// when it has one), copied with its value parsed, or dropped.
// Upgrade goes to the client only with the 101 that switches its connection.
// Location is the response's redirect only when absolute: a relative one goes on as the upstream
// sent it (RFC 9110), not made absolute with this server's name.
// Cache-Control lines are chained for `expires`, which rewrites the first and drops the others.
enum class CopyHeader : uint8_t {
  Plain,
  LastModified,
  ContentType,
  Location,
  CacheControl,
  Upgrade,
  Drop
};

constexpr KnownHeader<HeadersOut, CopyHeader> kUpstreamHeaders[] = {
    // Framing and hop-by-hop fields: the client connection has its own.
    {"content-length", nullptr, CopyHeader::Drop},
    {"transfer-encoding", nullptr, CopyHeader::Drop},
    {"connection", nullptr, CopyHeader::Drop},
    {"keep-alive", nullptr, CopyHeader::Drop},
    {"trailer", nullptr, CopyHeader::Drop},
    {"te", nullptr, CopyHeader::Drop},
    {"upgrade", nullptr, CopyHeader::Upgrade},
    {"proxy-connection", nullptr, CopyHeader::Drop},
    {"content-type", nullptr, CopyHeader::ContentType},
    {"last-modified", &HeadersOut::last_modified, CopyHeader::LastModified},
    {"location", nullptr, CopyHeader::Location},
    {"cache-control", nullptr, CopyHeader::CacheControl},
    {"etag", &HeadersOut::etag, CopyHeader::Plain},
    {"server", &HeadersOut::server, CopyHeader::Plain},
    {"date", &HeadersOut::date, CopyHeader::Plain},
    {"content-encoding", &HeadersOut::content_encoding, CopyHeader::Plain},
    {"accept-ranges", &HeadersOut::accept_ranges, CopyHeader::Plain},
    {"expires", &HeadersOut::expires, CopyHeader::Plain},
    {"www-authenticate", &HeadersOut::www_authenticate, CopyHeader::Plain},
    {"refresh", &HeadersOut::refresh, CopyHeader::Plain},
    {"content-range", &HeadersOut::content_range, CopyHeader::Plain},
};
constexpr KnownHeaderIndex kUpstreamHeaderIndex(kUpstreamHeaders);

// The response's Content-Type from a header value (its type without parameters kept apart), and its
// charset parameter (unquoted) as the response's charset, for the charset filter.
void set_content_type_from(HeadersOut& out, std::string_view value) {
  out.content_type = value;
  size_t semi = value.find(';');
  out.content_type_len = semi == std::string_view::npos ? value.size() : semi;
  while (out.content_type_len > 0 && value[out.content_type_len - 1] == ' ') {
    out.content_type_len--;
  }
  for (size_t at = semi; at != std::string_view::npos; at = value.find(';', at + 1)) {
    std::string_view param = trim_ows(value.substr(at + 1));
    if (!istarts_with(param, "charset=")) continue;
    param.remove_prefix(8);
    param = param.substr(0, param.find(';'));
    if (param.size() >= 2 && param.front() == '"' && param.back() == '"') {
      param = param.substr(1, param.size() - 2);
    }
    out.charset = param;
    return;
  }
}

bool hidden(const Upstream& u, std::string_view lowcase) {
  return u.conf->hide_headers != nullptr && u.conf->hide_headers->find(lowcase) != nullptr;
}

// The upstream's headers an X-Accel-Redirect keeps for the response the redirect makes.
constexpr std::string_view kKeptOnRedirect[] = {
    "content-type",  "set-cookie", "content-disposition",
    "cache-control", "expires",    "accept-ranges",
};

}  // namespace

bool passes_with_interim(const Upstream& u, const Header& h) {
  uint32_t hash = header_name_hash(h.lowcase_key);
  const auto* k = kUpstreamHeaderIndex.find(hash, h.lowcase_key);
  bool hop = k != nullptr && (k->handler == CopyHeader::Drop || k->handler == CopyHeader::Upgrade);
  return !hop && !hidden(u, h.lowcase_key);
}

void copy_trailers(Request& r, Upstream& u) {
  if (!u.conf->pass_trailers) return;
  for (Header* h : u.headers_in.trailers) {
    if (!passes_with_interim(u, *h)) continue;
    Header* o = r.headers_out.trailers.push(*r.pool, h->key, h->value);
    o->lowcase_key = h->lowcase_key;
  }
}

namespace {

// An entry sent from its file, or a response the cache keeps.
bool from_cache(const Upstream& u) {
  return u.cache != nullptr && (sent_from_file(u.cache->status) || u.cache->store);
}

}  // namespace

// The header lines, except what is hidden (the protocol's defaults and proxy_hide_header, less
// proxy_pass_header) and the hop-by-hop fields; for an X-Accel-Redirect only the ones it keeps.
Code copy_header_lines(Request& r, Upstream& u, bool redirect) {
  HeadersOut& out = r.headers_out;
  for (Header* h : u.headers_in.headers) {
    uint32_t hash = header_name_hash(h->lowcase_key);
    if (hidden(u, h->lowcase_key)) continue;
    if (redirect && std::find(std::begin(kKeptOnRedirect), std::end(kKeptOnRedirect),
                              h->lowcase_key) == std::end(kKeptOnRedirect)) {
      continue;
    }
    const auto* k = kUpstreamHeaderIndex.find(hash, h->lowcase_key);
    CopyHeader how = k != nullptr ? k->handler : CopyHeader::Plain;
    if (how == CopyHeader::Upgrade) how = u.upgrade ? CopyHeader::Plain : CopyHeader::Drop;
    // With forced ranges the range filter speaks for the response; from the cache too, when the
    // upstream said it takes ranges (one range while the response is being read).
    if (h->lowcase_key == "accept-ranges" && (u.conf->force_ranges || from_cache(u))) {
      if (!u.conf->force_ranges) {
        r.allow_ranges = true;
        r.single_range = !sent_from_file(u.cache->status);
      }
      continue;
    }
    // With proxy_pass_trailers the Trailer field announces what the trailer section holds.
    if (how == CopyHeader::Drop && !(u.conf->pass_trailers && h->lowcase_key == "trailer")) {
      continue;
    }
    if (how == CopyHeader::ContentType) {
      set_content_type_from(out, h->value);
      continue;
    }
    Header* o = add_header_out(r, h->key, h->value);
    if (o == nullptr) return Code::status(500);
    o->lowcase_key = h->lowcase_key;
    o->line = h->line;  // written whole while key and value stay the upstream's (whole_line())
    if (k != nullptr && k->slot != nullptr) out.*(k->slot) = o;
    if (how == CopyHeader::Location && !h->value.starts_with('/')) out.location = o;
    if (how == CopyHeader::CacheControl) {
      Header** tail = &out.cache_control;
      while (*tail != nullptr) tail = &(*tail)->next_same;
      *tail = o;
    }
    if (how == CopyHeader::LastModified) {
      if (auto t = clock::parse_http_time(h->value)) out.last_modified_time = *t;
    }
  }
  return Rc::Ok;
}

Code copy_headers(Request& r, Upstream& u) {
  if (Code rc = copy_header_lines(r, u, false); rc != Rc::Ok) return rc;
  HeadersOut& out = r.headers_out;
  out.status = u.headers_in.status;
  out.status_line = u.headers_in.status_line;
  out.content_length_n = u.headers_in.chunked ? -1 : u.headers_in.content_length_n;
  // The upstream's answer is the answer: no conditional processing of our own, and ranges only
  // when proxy_force_ranges asks (one at most, as nginx). What the cache holds or is to hold is the
  // server's own: conditions are answered from it.
  r.disable_not_modified = !from_cache(u);
  if (u.conf->force_ranges) {
    r.allow_ranges = true;
    r.single_range = true;
  }
  return Rc::Ok;
}

// The X-Accel-* headers of the response. Of a header sent twice the first counts, as in nginx
// (X-Accel-Expires: the last, which nginx's cache validity ends with).
void find_accel_headers(Upstream& u) {
  UpstreamHeadersIn& in = u.headers_in;
  auto first = [](Header*& slot, Header* h) {
    if (slot == nullptr) slot = h;
  };
  for (Header* h : in.headers) {
    std::string_view k = h->lowcase_key;
    if (!k.starts_with("x-accel-")) continue;
    k.remove_prefix(8);
    if (k == "redirect") {
      first(in.x_accel_redirect, h);
    } else if (k == "buffering") {
      first(in.x_accel_buffering, h);
    } else if (k == "limit-rate") {
      first(in.x_accel_limit_rate, h);
    } else if (k == "charset") {
      first(in.x_accel_charset, h);
    } else if (k == "expires") {
      in.x_accel_expires = h;
    }
  }
}

// The X-Accel-* headers that change how this response is relayed.
void apply_accel_headers(Request& r, Upstream& u) {
  const UpstreamHeadersIn& in = u.headers_in;
  uint32_t ignore = u.conf->ignore_headers;
  if (Header* h = in.x_accel_buffering;
      h != nullptr && u.conf->change_buffering && !(ignore & kIgnoreXAccelBuffering)) {
    if (iequals(h->value, "no")) u.buffering = false;
    if (iequals(h->value, "yes")) u.buffering = true;
  }
  if (Header* h = in.x_accel_limit_rate; h != nullptr && !(ignore & kIgnoreXAccelLimitRate)) {
    if (auto n = parse_int(h->value); n && *n >= 0) {
      r.limit_rate = static_cast<off_t>(*n);
      r.limit_rate_set = true;
    }
  }
  if (Header* h = in.x_accel_charset; h != nullptr && !(ignore & kIgnoreXAccelCharset)) {
    if (!iequals(h->value, "default")) r.headers_out.override_charset = h->value;
  }
}

}  // namespace weir::http
