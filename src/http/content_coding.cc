#include "http/content_coding.h"

#include <algorithm>

#include "core/str.h"
#include "core/time_cache.h"

namespace weir::http {

namespace {

// A q-value "0", "1", "0.5", "1.000" as thousandths; -1 when malformed.
int parse_quality(std::string_view q) {
  if (q.empty() || (q[0] != '0' && q[0] != '1')) return -1;
  int value = (q[0] - '0') * 1000;
  if (q.size() == 1) return value;
  if (q[1] != '.' || q.size() > 5) return -1;
  int scale = 100;
  for (char c : q.substr(2)) {
    if (c < '0' || c > '9') return -1;
    value += (c - '0') * scale;
    scale /= 10;
  }
  return value <= 1000 ? value : -1;
}

// Whether a Cache-Control line of the response names the token.
bool cache_control_has(const Header* cc, std::string_view token) {
  for (; cc != nullptr; cc = cc->next_same) {
    if (cc->hash == 0) continue;
    std::string_view v = cc->value;
    for (size_t at = ifind(v, token); at != std::string_view::npos; at = ifind(v, token, at + 1)) {
      bool starts = at == 0 || v[at - 1] == ',' || v[at - 1] == ' ';
      size_t end = at + token.size();
      bool ends = end == v.size() || v[end] == ',' || v[end] == ' ' || v[end] == ';';
      if (starts && ends) return true;
    }
  }
  return false;
}

// A request through a proxy (it has Via): gzip_proxied says which responses may be gzipped.
bool proxied_ok(const Request& r, uint32_t p) {
  if (p & kGzipProxiedOff) return false;
  if (p & kGzipProxiedAny) return true;
  if (r.headers_in.authorization != nullptr && (p & kGzipProxiedAuth)) return true;
  const HeadersOut& out = r.headers_out;
  if (const Header* e = out.expires) {
    if (!(p & kGzipProxiedExpired)) return false;
    auto expires = clock::parse_http_time(e->value);
    if (!expires) return false;
    time_t date = clock::now();
    if (out.date != nullptr) {
      auto d = clock::parse_http_time(out.date->value);
      if (!d) return false;
      date = *d;
    }
    return *expires < date;
  }
  if (const Header* cc = out.cache_control) {
    return ((p & kGzipProxiedNoCache) && cache_control_has(cc, "no-cache")) ||
           ((p & kGzipProxiedNoStore) && cache_control_has(cc, "no-store")) ||
           ((p & kGzipProxiedPrivate) && cache_control_has(cc, "private"));
  }
  if ((p & kGzipProxiedNoLastModified) && out.last_modified != nullptr) return false;
  if ((p & kGzipProxiedNoEtag) && out.etag != nullptr) return false;
  return true;
}

}  // namespace

int coding_quality(std::string_view ae, std::string_view token) {
  int named = -1;
  int any = -1;
  while (!ae.empty()) {
    size_t comma = ae.find(',');
    std::string_view item = ae.substr(0, comma);
    ae = comma == std::string_view::npos ? std::string_view() : ae.substr(comma + 1);
    std::string_view params;
    if (size_t semi = item.find(';'); semi != std::string_view::npos) {
      params = trim_ows(item.substr(semi + 1));
      item = item.substr(0, semi);
    }
    item = trim_ows(item);
    int q = 1000;
    if (!params.empty()) {
      // Only a q parameter is known; a malformed one refuses the coding.
      if (params.size() < 2 || (params[0] != 'q' && params[0] != 'Q')) continue;
      params = trim_ows(params.substr(1));
      if (params.empty() || params[0] != '=') continue;
      q = parse_quality(trim_ows(params.substr(1)));
      if (q < 0) q = 0;
    }
    if (iequals(item, token)) {
      named = std::max(named, q);
    } else if (item == "*") {
      any = std::max(any, q);
    }
  }
  return named >= 0 ? named : any;
}

namespace {

constexpr std::string_view kTokens[] = {"", "br", "zstd", "gzip"};  // by Coding

}  // namespace

std::string_view coding_token(Coding coding) {
  return kTokens[static_cast<int>(coding)];
}

bool take_coding(Request& r, Coding coding, bool compressible) {
  if (!compressible) return false;
  r.gzip_vary = true;
  r.vary_coding = true;
  const Header* ae = r.headers_in.accept_encoding;
  return ae != nullptr && coding_quality(ae->value, coding_token(coding)) > 0 &&
         compression_allowed(r) && coding_chosen(r, coding);
}

bool coding_preferred(std::string_view ae, Coding coding) {
  int mine = coding_quality(ae, kTokens[static_cast<int>(coding)]);
  if (mine <= 0) return false;
  for (int other = 1; other < static_cast<int>(std::size(kTokens)); other++) {
    if (other == static_cast<int>(coding)) continue;
    int q = coding_quality(ae, kTokens[other]);
    if (q > mine || (q == mine && other < static_cast<int>(coding))) return false;
  }
  return true;
}

bool compressible(const Request& r, bool enable, off_t min_length,
                  const std::vector<std::string>& types) {
  const HeadersOut& out = r.headers_out;
  int status = out.status;
  return enable && (status == 200 || status == 403 || status == 404) &&
         (out.content_encoding == nullptr || out.content_encoding->value.empty()) &&
         (out.content_length_n == -1 || out.content_length_n >= min_length) && !r.header_only &&
         content_type_in(r, types);
}

bool compression_allowed(Request& r) {
  if (!r.is_main()) return false;
  const CoreLocConf& clcf = core_loc(r);
  if (r.http_version < *clcf.gzip_http_version) return false;
  if (r.headers_in.via != nullptr && !proxied_ok(r, *clcf.gzip_proxied)) return false;
  if (clcf.gzip_disable != nullptr && r.headers_in.user_agent != nullptr) {
    for (const auto& re : *clcf.gzip_disable) {
      if (re->match(r.headers_in.user_agent->value, nullptr, 0)) return false;
    }
  }
  return true;
}

void offer_coding(ConfContext& cf, Coding coding, bool (*eligible)(Request& r)) {
  auto& offers = core_main_conf(cf).codings;
  offers.push_back({static_cast<uint8_t>(coding), eligible});
  std::sort(offers.begin(), offers.end(),
            [](const CodingOffer& a, const CodingOffer& b) { return a.coding < b.coding; });
}

bool coding_chosen(Request& r, Coding coding) {
  const auto& offers = core_main(r).codings;
  if (offers.size() <= 1) return true;  // nothing to choose between: the filter's own rule
  if (!r.coding_tested) {
    r.coding_tested = true;
    r.coding = static_cast<uint8_t>(Coding::None);
    const Header* ae = r.headers_in.accept_encoding;
    if (ae == nullptr) return false;
    int best = 0;
    for (const CodingOffer& o : offers) {
      if (!o.eligible(r)) continue;
      int q = coding_quality(ae->value, kTokens[o.coding]);
      if (q > best) {
        best = q;
        r.coding = o.coding;
      }
    }
  }
  return r.coding == static_cast<uint8_t>(coding);
}

void set_encoded_headers(Request& r, std::string_view token) {
  r.headers_out.content_encoding = add_header_out(r, "Content-Encoding", token);
  r.main_filter_need_in_memory = true;
  clear_content_length(r);
  clear_accept_ranges(r);
  weak_etag(r);
}

void ratio_variable(Request& r, VariableValue& v, uint64_t in, uint64_t out) {
  if (out == 0) {
    v.set_not_found();
    return;
  }
  uint64_t whole = in / out;
  uint64_t frac = in * 100 / out % 100;
  if (in * 1000 / out % 10 > 4) {
    if (++frac > 99) {
      whole++;
      frac = 0;
    }
  }
  char* p = r.pool->alloc_bytes(32);
  char* e = put_uint(p, whole);
  *e++ = '.';
  e = put_uint_pad(e, frac, 2);
  v.set({p, static_cast<size_t>(e - p)});
}

}  // namespace weir::http
