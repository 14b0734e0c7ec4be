// The settings every upstream protocol has under its own prefix - proxy_connect_timeout,
// fastcgi_buffers, uwsgi_next_upstream, scgi_temp_path, memcached_bind ... - made once: their
// values (UpstreamSettings, a member of the protocol's location configuration), their directives
// (named from the prefix at compile time), and their merge into the UpstreamConf the lifecycle
// runs by, with nginx's defaults and nginx's messages. nginx: the ngx_http_upstream_conf_t part of
// ngx_http_{proxy,fastcgi,uwsgi,scgi,memcached}_module.c
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conf/module.h"
#include "conf/setting.h"
#include "core/inet.h"
#include "core/string_table.h"
#include "upstream/upstream.h"
#include "upstream/upstream_cache.h"

namespace weir::http {

class ComplexValue;

struct UpstreamSettings {
  Setting<uint64_t> connect_timeout, send_timeout, read_timeout, next_upstream_timeout;
  Setting<int64_t> next_upstream_tries;
  Setting<size_t> buffer_size, busy_buffers_size, temp_file_write_size, limit_rate;
  Setting<size_t> send_lowat;  // proxy's and fastcgi's only; taken with nginx's Linux warning
  Setting<off_t> max_temp_file_size;
  Setting<Bufs> bufs;
  Setting<TempPath> temp_path;
  Setting<bool> buffering, request_buffering, ignore_client_abort, intercept_errors,
      socket_keepalive, pass_request_headers, pass_request_body, force_ranges;
  Setting<uint32_t> next_upstream;           // kNext* bits
  Setting<uint32_t> ignore_headers;          // kIgnore* bits
  std::vector<std::string>* hide = nullptr;  // *_hide_header (lower case)
  std::vector<std::string>* pass = nullptr;  // *_pass_header
  StringTable<bool> hide_final;              // the protocol's defaults + hide - pass
  int store = -1;                            // *_store: -1 unset, 0 off, 1 on
  ComplexValue* store_path = nullptr;        // *_store <path>
  uint32_t store_access = 0;                 // 0: unset
  SockAddr bind_addr;
  std::string bind_text;               // as written, for logs
  ComplexValue* bind_value = nullptr;  // *_bind with variables: an address per request
  bool bind_set = false;
  bool bind_on = false;
  bool bind_transparent = false;  // *_bind ... transparent: any address, the client's say
  CacheSettings cache;            // *_cache, *_cache_key ... (Full only)
};

// What a protocol's settings are made of: grpc's directives of this kind are the connection's only
// (bind, keepalive, timeouts, buffer size, next upstream); memcached's are those with its own names
// of the next-upstream conditions; the others have the buffering and header ones too.
enum class SettingsKind : uint8_t { Connection, Memcached, Full };

// Merges conf with prev and fills out (group, protocol tag and change_buffering are the
// protocol's). prefix names the directives in messages ("proxy"); hidden_by_default are the
// response headers the protocol never passes unless *_pass_header names them.
Status merge_upstream_settings(ConfContext& cf, std::string_view prefix, SettingsKind kind,
                               const UpstreamSettings& prev, UpstreamSettings& conf,
                               std::span<const char* const> hidden_by_default, UpstreamConf& out);

namespace settings_detail {

Status set_next_upstream(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);
// memcached_next_upstream: its own names (invalid_response, not_found) for the same conditions.
Status set_memcached_next_upstream(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);
Status set_bind(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);
Status set_store(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);
Status set_store_access(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);
// *_ignore_headers: the response headers whose meaning is not taken.
inline constexpr EnumName<uint32_t> kIgnoreHeaderNames[] = {
    {"X-Accel-Redirect", kIgnoreXAccelRedirect},
    {"X-Accel-Expires", kIgnoreXAccelExpires},
    {"X-Accel-Limit-Rate", kIgnoreXAccelLimitRate},
    {"X-Accel-Buffering", kIgnoreXAccelBuffering},
    {"X-Accel-Charset", kIgnoreXAccelCharset},
    {"Expires", kIgnoreExpires},
    {"Cache-Control", kIgnoreCacheControl},
    {"Set-Cookie", kIgnoreSetCookie},
    {"Vary", kIgnoreVary},
};
constexpr auto set_ignore_headers =
    slot::bitmask<&UpstreamSettings::ignore_headers, kIgnoreHeaderNames>;
Status add_hide_header(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);
Status add_pass_header(ConfContext& cf, const ConfNode& n, UpstreamSettings& s);

// A directive name made at compile time: "proxy" + "_connect_timeout".
template <size_t N>
struct Name {
  char text[N]{};
  consteval Name(const char (&s)[N]) {
    for (size_t i = 0; i < N; i++) text[i] = s[i];
  }
  static constexpr size_t size = N - 1;
};

template <Name Prefix, Name Suffix>
struct Joined {
  static constexpr auto text = [] {
    std::array<char, Prefix.size + Suffix.size + 1> out{};
    for (size_t i = 0; i < Prefix.size; i++) out[i] = Prefix.text[i];
    for (size_t i = 0; i < Suffix.size; i++) out[Prefix.size + i] = Suffix.text[i];
    return out;
  }();
  static constexpr std::string_view view{text.data(), Prefix.size + Suffix.size};
};

// A setter of UpstreamSettings run on the protocol's configuration that holds them.
template <class Conf, UpstreamSettings Conf::*Up, auto Fn>
Status on_settings(ConfContext& cf, const ConfNode& n, Conf& conf) {
  return Fn(cf, n, conf.*Up);
}

template <class Conf, UpstreamSettings Conf::*Up, Name Prefix, Name Suffix, auto Fn>
consteval Directive row(uint32_t type) {
  return directive<on_settings<Conf, Up, Fn>>(Joined<Prefix, Suffix>::view, type);
}

// A setter of the cache's settings among UpstreamSettings.
template <auto Fn>
Status on_cache(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  return Fn(cf, n, s.cache);
}

}  // namespace settings_detail

// The settings' directives for a protocol whose location configuration Conf keeps them in Up,
// named with Prefix: concatenate them to the protocol's own table.
template <class Conf, UpstreamSettings Conf::*Up, settings_detail::Name Prefix, SettingsKind Kind>
consteval auto upstream_directives() {
  using namespace settings_detail;
  using S = UpstreamSettings;
  constexpr uint32_t kWhere = kHttpMainSrvLoc;
  std::array connection{
      row<Conf, Up, Prefix, "_bind", set_bind>(kWhere | kTake12),
      row<Conf, Up, Prefix, "_socket_keepalive", slot::flag<&S::socket_keepalive>>(kWhere | kFlag),
      row<Conf, Up, Prefix, "_connect_timeout", slot::msec<&S::connect_timeout>>(kWhere | kTake1),
      row<Conf, Up, Prefix, "_send_timeout", slot::msec<&S::send_timeout>>(kWhere | kTake1),
      row<Conf, Up, Prefix, "_read_timeout", slot::msec<&S::read_timeout>>(kWhere | kTake1),
      row<Conf, Up, Prefix, "_buffer_size", slot::size<&S::buffer_size>>(kWhere | kTake1),
      row < Conf,
      Up,
      Prefix,
      "_next_upstream",
      Kind == SettingsKind::Memcached ? set_memcached_next_upstream
                                      : set_next_upstream > (kWhere | kOneMore),
      row<Conf, Up, Prefix, "_next_upstream_tries", slot::num<&S::next_upstream_tries>>(kWhere |
                                                                                        kTake1),
      row<Conf, Up, Prefix, "_next_upstream_timeout", slot::msec<&S::next_upstream_timeout>>(
          kWhere | kTake1),
  };
  if constexpr (Kind != SettingsKind::Full) {
    return connection;
  } else {
    std::array buffering{
        row<Conf, Up, Prefix, "_buffers", slot::bufs<&S::bufs>>(kWhere | kTake2),
        row<Conf, Up, Prefix, "_busy_buffers_size", slot::size<&S::busy_buffers_size>>(kWhere |
                                                                                       kTake1),
        row<Conf, Up, Prefix, "_max_temp_file_size", slot::offset<&S::max_temp_file_size>>(kWhere |
                                                                                           kTake1),
        row<Conf, Up, Prefix, "_temp_file_write_size", slot::size<&S::temp_file_write_size>>(
            kWhere | kTake1),
        row<Conf, Up, Prefix, "_temp_path", slot::path<&S::temp_path>>(kWhere | kTake1234),
        row<Conf, Up, Prefix, "_buffering", slot::flag<&S::buffering>>(kWhere | kFlag),
        row<Conf, Up, Prefix, "_request_buffering", slot::flag<&S::request_buffering>>(kWhere |
                                                                                       kFlag),
        row<Conf, Up, Prefix, "_ignore_client_abort", slot::flag<&S::ignore_client_abort>>(kWhere |
                                                                                           kFlag),
        row<Conf, Up, Prefix, "_intercept_errors", slot::flag<&S::intercept_errors>>(kWhere |
                                                                                     kFlag),
        row<Conf, Up, Prefix, "_pass_request_headers", slot::flag<&S::pass_request_headers>>(
            kWhere | kFlag),
        row<Conf, Up, Prefix, "_pass_request_body", slot::flag<&S::pass_request_body>>(kWhere |
                                                                                       kFlag),
        row<Conf, Up, Prefix, "_force_ranges", slot::flag<&S::force_ranges>>(kWhere | kFlag),
        row<Conf, Up, Prefix, "_limit_rate", slot::size<&S::limit_rate>>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_hide_header", add_hide_header>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_pass_header", add_pass_header>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_ignore_headers", set_ignore_headers>(kWhere | kOneMore),
        row<Conf, Up, Prefix, "_store", set_store>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_store_access", set_store_access>(kWhere | kTake123),
    };
    using namespace cache_detail;
    std::array cache{
        directive<cache_path>(Joined<Prefix, "_cache_path">::view, kHttpMainConf | kTwoMore),
        row<Conf, Up, Prefix, "_cache", on_cache<set_cache>>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_cache_key", on_cache<set_key>>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_cache_valid", on_cache<add_valid>>(kWhere | kOneMore),
        row<Conf, Up, Prefix, "_cache_methods", on_cache<set_methods>>(kWhere | kOneMore),
        row<Conf, Up, Prefix, "_cache_bypass", on_cache<add_bypass>>(kWhere | kOneMore),
        row<Conf, Up, Prefix, "_no_cache", on_cache<add_no_cache>>(kWhere | kOneMore),
        row<Conf, Up, Prefix, "_cache_min_uses", on_cache<set_min_uses>>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_cache_use_stale", on_cache<set_use_stale>>(kWhere | kOneMore),
        row<Conf, Up, Prefix, "_cache_revalidate",
            on_cache<slot::flag<&CacheSettings::revalidate>>>(kWhere | kFlag),
        row<Conf, Up, Prefix, "_cache_convert_head",
            on_cache<slot::flag<&CacheSettings::convert_head>>>(kWhere | kFlag),
        row<Conf, Up, Prefix, "_cache_lock", on_cache<slot::flag<&CacheSettings::lock>>>(kWhere |
                                                                                         kFlag),
        row<Conf, Up, Prefix, "_cache_lock_timeout",
            on_cache<slot::msec<&CacheSettings::lock_timeout>>>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_cache_lock_age", on_cache<slot::msec<&CacheSettings::lock_age>>>(
            kWhere | kTake1),
        row<Conf, Up, Prefix, "_cache_max_range_offset",
            on_cache<slot::offset<&CacheSettings::max_range_offset>>>(kWhere | kTake1),
        row<Conf, Up, Prefix, "_cache_background_update",
            on_cache<slot::flag<&CacheSettings::background_update>>>(kWhere | kFlag),
    };
    return join_directives(join_directives(connection, buffering), cache);
  }
}

}  // namespace weir::http
