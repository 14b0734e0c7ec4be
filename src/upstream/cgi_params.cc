#include "upstream/cgi_params.h"

#include "core/str.h"
#include "http/request.h"

namespace weir::http {

namespace {

// Whether a param names the field (HTTP_X_CUSTOM for X-Custom): nginx matches the names
// case-insensitively.
bool named_by_param(const CgiParams& params, std::string_view key) {
  for (const std::string& name : params.header_params) {
    if (name.size() != key.size() + 5) continue;
    bool same = true;
    for (size_t i = 0; i < key.size() && same; i++) {
      char c = key[i] == '-' ? '_' : to_upper(key[i]);
      same = to_upper(name[i + 5]) == c;
    }
    if (same) return true;
  }
  return false;
}

}  // namespace

Status add_cgi_param(ConfContext& cf, const ConfNode& n, CgiParams& params) {
  if (n.nargs() == 3 && n.args[3] != "if_not_empty") {
    return Status::errorf("invalid parameter \"%s\"", n.args[3].c_str());
  }
  if (params.written == nullptr) params.written = cf.pool.make<std::vector<CgiParam>>();
  CgiParam p;
  p.key = n.args[1];
  p.if_not_empty = n.nargs() == 3;
  if (Status s = p.value.compile(cf, n.args[2]); !s.ok()) return s;
  params.written->push_back(std::move(p));
  return {};
}

void merge_cgi_params(const CgiParams& prev, CgiParams& conf) {
  if (conf.written == nullptr) conf.written = prev.written;
  conf.header_params.clear();
  if (conf.written == nullptr) return;
  for (const CgiParam& p : *conf.written) {
    if (p.key.starts_with("HTTP_")) conf.header_params.push_back(p.key);
  }
}

char* CgiPair::put_key(char* p) const {
  if (!header) return put(p, key);
  p = put(p, "HTTP_");
  for (char c : key) *p++ = c == '-' ? '_' : to_upper(c);
  return p;
}

std::span<const CgiPair> cgi_pairs(Request& r, const CgiParams& params, bool pass_headers) {
  size_t count = params.written != nullptr ? params.written->size() : 0;
  if (pass_headers) {
    for ([[maybe_unused]] Header* h : r.headers_in.headers) count++;
  }
  auto* pairs =
      static_cast<CgiPair*>(r.pool->alloc(sizeof(CgiPair) * (count + 1), alignof(CgiPair)));
  size_t n = 0;
  if (params.written != nullptr) {
    for (const CgiParam& p : *params.written) {
      std::string_view v = p.value.eval(r);
      if (p.if_not_empty && v.empty()) continue;
      pairs[n++] = CgiPair{p.key, v, false};
    }
  }
  if (pass_headers) {
    for (Header* h : r.headers_in.headers) {
      if (h->hash == 0 || named_by_param(params, h->key)) continue;
      pairs[n++] = CgiPair{h->key, h->value, true};
    }
  }
  return {pairs, n};
}

}  // namespace weir::http
