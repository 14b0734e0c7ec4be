// Setting<T>: a configuration value that knows whether it was set, so that merging from http to
// server to location works as nginx's NGX_CONF_UNSET and ngx_conf_merge_*_value do; and the typed
// directive setters (slot::flag, slot::size, slot::msec, slot::bufs, slot::str, slot::enum_ ...)
// that fill them. nginx: src/core/ngx_conf_file.c (ngx_conf_set_*_slot), ngx_conf_merge_* macros
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "conf/conf_context.h"
#include "conf/conf_file.h"
#include "core/file.h"
#include "core/str.h"

namespace weir {

template <class T>
struct Setting {
  T value{};
  bool set = false;

  const T& operator*() const { return value; }
  const T* operator->() const { return &value; }
  Setting& operator=(const T& v) {
    value = v;
    set = true;
    return *this;
  }
  // Unset: take the parent's value, or the default when the parent has none either.
  void merge(const Setting& parent, const T& def) {
    if (set) return;
    value = parent.set ? parent.value : def;
    set = true;
  }
  void merge(const Setting& parent) {
    if (set || !parent.set) return;
    value = parent.value;
    set = true;
  }
};

template <class T>
struct EnumName {
  std::string_view name;
  T value;
};

// The bits that the arguments from `first` on name in table, added to mask (names case-blind, as
// nginx's bitmask slot, with which a directive that repeats in a block adds to what it said); a bit
// named again is warned about when warn_to is given; an unknown name is an error:
// `invalid <what> "name"`.
template <class T, size_t N>
Status parse_bitmask(const ConfContext* warn_to, const ConfNode& n, const EnumName<T> (&table)[N],
                     T& mask, size_t first = 1, const char* what = "value") {
  for (size_t i = first; i < n.args.size(); i++) {
    const EnumName<T>* found = nullptr;
    for (const EnumName<T>& e : table) {
      if (iequals(e.name, n.args[i])) found = &e;
    }
    if (found == nullptr) {
      // nginx's bitmask slot says this without naming the directive.
      return Status::located(
          conf_error_at(n.file, n.line, std::string("invalid ") + what + " \"" + n.args[i] + "\""));
    }
    if (warn_to != nullptr && (mask & found->value) != 0) {
      warn_to->warn(LogLevel::Warn, "duplicate value \"%s\"", n.args[i].c_str());
    }
    mask |= found->value;
  }
  return {};
}

// nginx's bitmask slot: the names' bits are added to what the directive said before in the block
// (an unset setting starts from none).
template <class T, size_t N>
Status add_bits(const ConfContext& cf, const ConfNode& n, const EnumName<T> (&table)[N],
                Setting<T>& setting) {
  T mask = setting.set ? *setting : T{};
  if (Status s = parse_bitmask(&cf, n, table, mask); !s.ok()) return s;
  setting = mask;
  return {};
}

namespace slot {

template <class M>
struct member;
template <class C, class V>
struct member<V C::*> {
  using owner = C;
  using type = V;
};

// The struct a member pointer belongs to: a slot's setter writes into it.
template <auto M>
using owner_of = typename member<decltype(M)>::owner;

Status parse_flag(ConfContext& cf, const ConfNode& n, bool& out);
// A file mode from "user:rw group:r all:r" (user:rw unless the user is named). nginx:
// ngx_conf_set_access_slot
Status parse_access(ConfContext& cf, const ConfNode& n, uint32_t& out);

// dav_access, *_store_access: a mode, as parse_access reads it.
template <auto M>
Status access(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  uint32_t mode;
  if (Status s = parse_access(cf, n, mode); !s.ok()) return s;
  f = mode;
  return {};
}

template <auto M>
Status flag(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  bool v;
  if (Status s = parse_flag(cf, n, v); !s.ok()) return s;
  f = v;
  return {};
}

// A directive of names, each a bit of kTable (keepalive_disable, gzip_proxied, ssl_protocols ...).
template <auto M, const auto& kTable>
Status bitmask(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  return add_bits(cf, n, kTable, conf.*M);
}

template <auto M>
Status size(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_size(n.args[1]);
  if (!v) return Status::error("invalid value");
  f = static_cast<std::remove_cvref_t<decltype(f.value)>>(*v);
  return {};
}

// send_lowat, proxy_send_lowat, fastcgi_send_lowat: a size that Linux cannot apply
// (setsockopt(SO_SNDLOWAT) fails with ENOPROTOOPT). nginx built for Linux takes it, warns, and
// keeps 0. nginx: ngx_http_core_lowat_check
template <auto M>
Status send_lowat(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  if (Status s = size<M>(cf, n, conf); !s.ok()) return s;
  cf.warn(LogLevel::Warn, "\"%s\" is not supported, ignored", n.name().c_str());
  (conf.*M).value = 0;
  return {};
}

template <auto M>
Status offset(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_offset(n.args[1]);
  if (!v) return Status::error("invalid value");
  f = static_cast<std::remove_cvref_t<decltype(f.value)>>(*v);
  return {};
}

// A memory pool's size (connection_pool_size, request_pool_size, http2_pool_size): weir's pools
// are its own, so it is only checked as nginx checks it. nginx: ngx_http_core_pool_size
template <auto M>
Status pool_size(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  if (Status s = size<M>(cf, n, conf); !s.ok()) return s;
  constexpr size_t kMinPoolSize = 112, kPoolAlignment = 16;  // nginx's on 64-bit systems
  size_t v = (conf.*M).value;
  if (v < kMinPoolSize) return cf.errorf("the pool size must be no less than %zu", kMinPoolSize);
  if (v % kPoolAlignment != 0) {
    return cf.errorf("the pool size must be a multiple of %zu", kPoolAlignment);
  }
  return {};
}

template <auto M>
Status msec(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_time(n.args[1], false);
  if (!v) return Status::error("invalid value");
  f = static_cast<std::remove_cvref_t<decltype(f.value)>>(*v);
  return {};
}

template <auto M>
Status sec(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_time(n.args[1], true);
  if (!v) return Status::error("invalid value");
  f = static_cast<std::remove_cvref_t<decltype(f.value)>>(*v);
  return {};
}

template <auto M>
Status num(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  f = static_cast<std::remove_cvref_t<decltype(f.value)>>(*v);
  return {};
}

template <auto M>
Status str(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  f = n.args[1];
  return {};
}

// Appends each use's argument (directives that may repeat).
template <auto M>
Status str_array(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  f.value.push_back(n.args[1]);
  f.set = true;
  return {};
}

// MIME types (gzip_types, charset_types, ssi_types ...), as nginx's types slot takes them:
// text/html always (xslt_types: text/xml), then each argument in lower case; the directive may
// repeat, adding to the list (a type named twice is warned about); "*" stands for any type and ends
// the list.
inline constexpr char kTextHtml[] = "text/html";
template <auto M, const char* Always = kTextHtml>
Status mime_types(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  std::vector<std::string>& types = f.value;
  if (!f.set) {
    types = {Always};
    f.set = true;
  } else if (types.size() == 1 && types[0] == "*") {
    return {};
  }
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string type = lowercased(n.args[i]);
    if (type == "*") {
      types = {"*"};
      return {};
    }
    if (std::find(types.begin(), types.end(), type) != types.end()) {
      cf.warn(LogLevel::Warn, "duplicate MIME type \"%s\"", type.c_str());
      continue;
    }
    types.push_back(std::move(type));
  }
  return {};
}

Status parse_bufs(const ConfNode& n, Bufs& out);

template <auto M>
Status bufs(ConfContext&, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  Bufs b;
  if (Status s = parse_bufs(n, b); !s.ok()) return s;
  f = b;
  return {};
}

// One of a fixed set of words.
template <auto M, const auto& Table>
Status enum_(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  for (const auto& e : Table) {
    if (iequals(e.name, n.args[1])) {
      f = e.value;
      return {};
    }
  }
  return cf.errorf("invalid value \"%s\"", n.args[1].c_str());  // nginx's enum slot's words
}

// An HTTP status a limit answers with (limit_req_status, limit_conn_status): 400 to 599.
template <auto M>
Status status_code(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  if (*v < 400 || *v > 599) return cf.error("value must be between 400 and 599");
  f = static_cast<int>(*v);
  return {};
}

// The levels limit_req_log_level and limit_conn_log_level take.
inline constexpr EnumName<LogLevel> kLimitLogLevels[] = {
    {"info", LogLevel::Info},
    {"notice", LogLevel::Notice},
    {"warn", LogLevel::Warn},
    {"error", LogLevel::Error},
};

// A temp path: "path [level1 [level2 [level3]]]".
Status parse_path(ConfContext& cf, const ConfNode& n, TempPath& out);

template <auto M>
Status path(ConfContext& cf, const ConfNode& n, owner_of<M>& conf) {
  auto& f = conf.*M;
  if (f.set) return Status::error("is duplicate");
  TempPath p;
  if (Status s = parse_path(cf, n, p); !s.ok()) return s;
  f = p;
  return {};
}

}  // namespace slot

}  // namespace weir
