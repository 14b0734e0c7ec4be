// Host names as nginx's server_name and map's `hostnames` take them: exact names, "*.example.com"
// (matched by the longest suffix, with something in front) and "www.example.*" (the longest prefix,
// with something behind). Exact first, then the suffix forms, then the prefix forms; regexes are
// the caller's. nginx: src/core/ngx_hash.c (ngx_hash_add_key, ngx_hash_find_combined)
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir {

template <class T>
class HostNames {
 public:
  // Adds a name (lower case). False when it is there already (the caller warns; the first wins).
  bool add(const std::string& name, T value) {
    if (name.size() > 1 && name[0] == '*') return add_to(head_, name.substr(1), value);
    if (name.size() > 1 && name.back() == '*') {
      return add_to(tail_, name.substr(0, name.size() - 1), value);
    }
    return add_to(exact_, name, value);
  }
  // A name as configuration writes it (lower case), checked as nginx's hash keys are: one wildcard
  // at most, as a whole first or last label, no empty label; ".example.com" stands for the name and
  // every name under it. Anything else, "" included, is an exact name.
  enum class Added { Ok, Invalid, Conflict };
  Added add_configured(const std::string& name, T value) {
    if (std::count(name.begin(), name.end(), '*') > 1 || name.find("..") != std::string::npos ||
        name.find('\0') != std::string::npos) {
      return Added::Invalid;
    }
    std::string_view bare = name;
    bool dot = name.size() > 1 && name[0] == '.';
    if (dot) {
      bare.remove_prefix(1);
    } else if (name.size() > 2 && name.starts_with("*.")) {
      bare.remove_prefix(2);
    } else if (name.size() > 2 && name.ends_with(".*")) {
      bare.remove_suffix(2);
    }
    if (bare.find('*') != std::string_view::npos) return Added::Invalid;
    bool ok = dot ? add(name.substr(1), value) && add("*" + name, value) : add(name, value);
    return ok ? Added::Ok : Added::Conflict;
  }

  // Call once every name is added.
  void build() { std::sort(exact_.begin(), exact_.end()); }

  // The value for a host (lower case), or nullptr.
  const T* find(std::string_view host) const {
    auto it = std::lower_bound(exact_.begin(), exact_.end(), host,
                               [](const auto& e, std::string_view k) { return e.first < k; });
    if (it != exact_.end() && it->first == host) return &it->second;
    if (const T* v = longest(
            head_, host, [](std::string_view h, std::string_view s) { return h.ends_with(s); })) {
      return v;
    }
    return longest(tail_, host,
                   [](std::string_view h, std::string_view p) { return h.starts_with(p); });
  }

 private:
  using Entries = std::vector<std::pair<std::string, T>>;

  static bool add_to(Entries& list, std::string key, T value) {
    for (const auto& e : list) {
      if (e.first == key) return false;
    }
    list.emplace_back(std::move(key), value);
    return true;
  }
  template <class Match>
  static const T* longest(const Entries& list, std::string_view host, Match match) {
    const T* best = nullptr;
    size_t best_len = 0;
    for (const auto& [key, value] : list) {
      if (host.size() > key.size() && key.size() > best_len && match(host, key)) {
        best = &value;
        best_len = key.size();
      }
    }
    return best;
  }

  Entries exact_;
  Entries head_;  // "*.example.com" kept as ".example.com"
  Entries tail_;  // "www.example.*" kept as "www.example."
};

}  // namespace weir
