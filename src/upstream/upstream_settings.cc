#include "upstream/upstream_settings.h"

#include <algorithm>

#include "conf/cycle.h"
#include "http/script.h"
#include "upstream/upstream_module.h"

namespace weir::http {

namespace settings_detail {

namespace {

template <size_t N>
Status set_next_upstream_bits(ConfContext& cf, const ConfNode& n, UpstreamSettings& s,
                              const EnumName<uint32_t> (&bits)[N]) {
  Setting<uint32_t> next = s.next_upstream;
  if (Status st = add_bits(cf, n, bits, next); !st.ok()) return st;
  if ((*next & kNextOff) && *next != kNextOff) {
    return Status::error("\"off\" cannot be used with other parameters");
  }
  s.next_upstream = next;
  return {};
}

}  // namespace

Status set_memcached_next_upstream(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  static constexpr EnumName<uint32_t> kBits[] = {
      {"error", kNextError},   {"timeout", kNextTimeout}, {"invalid_response", kNextInvalidHeader},
      {"not_found", kNext404}, {"off", kNextOff},
  };
  return set_next_upstream_bits(cf, n, s, kBits);
}

Status set_next_upstream(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  static constexpr EnumName<uint32_t> kBits[] = {
      {"error", kNextError},
      {"timeout", kNextTimeout},
      {"invalid_header", kNextInvalidHeader},
      {"http_500", kNext500},
      {"http_502", kNext502},
      {"http_503", kNext503},
      {"http_504", kNext504},
      {"http_403", kNext403},
      {"http_404", kNext404},
      {"http_429", kNext429},
      {"non_idempotent", kNextNonIdempotent},
      {"off", kNextOff},
  };
  return set_next_upstream_bits(cf, n, s, kBits);
}

Status set_bind(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  if (s.bind_set) return Status::error("is duplicate");
  s.bind_set = true;
  if (n.args[1] == "off") return {};
  if (n.nargs() > 1) {
    if (n.args[2] != "transparent") return cf.errorf("invalid parameter \"%s\"", n.args[2].c_str());
    s.bind_transparent = true;
    cf.cycle.transparent = true;
  }
  ComplexValue value;
  if (Status st = value.compile(cf, n.args[1]); !st.ok()) return st;
  if (!value.is_static()) {
    s.bind_value = cf.pool.make<ComplexValue>(std::move(value));
    s.bind_on = true;
    return {};
  }
  Result<std::vector<SockAddr>> a = parse_addresses(n.args[1], 0, false);
  if (!a.ok() || a->empty()) return cf.errorf("invalid address \"%s\"", n.args[1].c_str());
  s.bind_addr = (*a)[0];
  s.bind_text = n.args[1];
  s.bind_on = true;
  return {};
}

// *_store on | off | <path with variables>.
Status set_store(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  if (s.store != -1) return Status::error("is duplicate");
  const std::string& v = n.args[1];
  s.store = v != "off";
  if (v == "on" || v == "off") return {};
  s.store_path = cf.pool.make<ComplexValue>();
  return s.store_path->compile(cf, v);
}

// *_store_access user:rw group:r all:r - a mode; user:rw unless the user is named.
Status set_store_access(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  if (s.store_access != 0) return Status::error("is duplicate");
  return slot::parse_access(cf, n, s.store_access);
}

namespace {

// *_hide_header, *_pass_header: a list of header names, kept in lower case.
Status add_header_name(ConfContext& cf, const ConfNode& n, std::vector<std::string>*& list) {
  if (list == nullptr) list = cf.pool.make<std::vector<std::string>>();
  list->push_back(lowercased(n.args[1]));
  return {};
}

}  // namespace

Status add_hide_header(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  return add_header_name(cf, n, s.hide);
}

Status add_pass_header(ConfContext& cf, const ConfNode& n, UpstreamSettings& s) {
  return add_header_name(cf, n, s.pass);
}

}  // namespace settings_detail

namespace {

// The buffer sizes' rules (out: the sizes in effect), in nginx's words with the protocol's names.
Status check_buffers(ConfContext& cf, std::string_view prefix, const UpstreamSettings& s,
                     const UpstreamConf& out) {
  std::string p(prefix);
  size_t one = std::max<size_t>(*s.buffer_size, s.bufs->size);
  std::string at_least = " must be equal to or greater than the maximum of the value of \"" + p +
                         "_buffer_size\" and one of the \"" + p + "_buffers\"";
  if (s.bufs->num < 2) return cf.error("there must be at least 2 \"" + p + "_buffers\"");
  if (out.busy_buffers_size < one) return cf.error("\"" + p + "_busy_buffers_size\"" + at_least);
  if (out.busy_buffers_size > (s.bufs->num - 1) * s.bufs->size) {
    return cf.error("\"" + p + "_busy_buffers_size\" must be less than the size of all \"" + p +
                    "_buffers\" minus one buffer");
  }
  if (out.temp_file_write_size < one) {
    return cf.error("\"" + p + "_temp_file_write_size\"" + at_least);
  }
  if (*s.max_temp_file_size != 0 && *s.max_temp_file_size < static_cast<off_t>(one)) {
    return cf.error(
        "\"" + p +
        "_max_temp_file_size\" must be equal to zero to disable temporary "
        "files usage or must be equal to or greater than the maximum of the value of \"" +
        p + "_buffer_size\" and one of the \"" + p + "_buffers\"");
  }
  return {};
}

}  // namespace

Status merge_upstream_settings(ConfContext& cf, std::string_view prefix, SettingsKind kind,
                               const UpstreamSettings& prev, UpstreamSettings& conf,
                               std::span<const char* const> hidden_by_default, UpstreamConf& out) {
  conf.connect_timeout.merge(prev.connect_timeout, 60000);
  conf.send_timeout.merge(prev.send_timeout, 60000);
  conf.read_timeout.merge(prev.read_timeout, 60000);
  conf.next_upstream_timeout.merge(prev.next_upstream_timeout, 0);
  conf.next_upstream_tries.merge(prev.next_upstream_tries, 0);
  conf.buffer_size.merge(prev.buffer_size, 4096);
  conf.socket_keepalive.merge(prev.socket_keepalive, false);
  conf.next_upstream.merge(prev.next_upstream, kNextError | kNextTimeout);
  if (!conf.bind_set) {
    conf.bind_set = prev.bind_set;
    conf.bind_on = prev.bind_on;
    conf.bind_addr = prev.bind_addr;
    conf.bind_text = prev.bind_text;
    conf.bind_value = prev.bind_value;
    conf.bind_transparent = prev.bind_transparent;
  }
  out.connect_timeout = *conf.connect_timeout;
  out.send_timeout = *conf.send_timeout;
  out.read_timeout = *conf.read_timeout;
  out.next_upstream_timeout = *conf.next_upstream_timeout;
  out.next_upstream_tries = static_cast<unsigned>(*conf.next_upstream_tries);
  out.next_upstream = *conf.next_upstream & kNextOff ? 0 : *conf.next_upstream;
  out.buffer_size = *conf.buffer_size;
  out.socket_keepalive = *conf.socket_keepalive;
  out.local = conf.bind_on && conf.bind_value == nullptr ? &conf.bind_addr : nullptr;
  out.local_value = conf.bind_value;
  out.local_name = conf.bind_text;
  out.local_transparent = conf.bind_transparent;
  if (kind != SettingsKind::Full) {
    out.buffering = false;
    return {};
  }

  conf.bufs.merge(prev.bufs, Bufs{8, 4096});
  // The busy and temp-file write sizes inherit a configured value only: unset, they are twice
  // this level's largest buffer, not what an outer level's buffers made them (nginx's *_conf).
  size_t twice = 2 * std::max<size_t>(*conf.buffer_size, conf.bufs->size);
  conf.busy_buffers_size.merge(prev.busy_buffers_size);
  conf.temp_file_write_size.merge(prev.temp_file_write_size);
  out.busy_buffers_size = conf.busy_buffers_size.set ? *conf.busy_buffers_size : twice;
  out.temp_file_write_size = conf.temp_file_write_size.set ? *conf.temp_file_write_size : twice;
  conf.max_temp_file_size.merge(prev.max_temp_file_size, 1024 * 1024 * 1024);
  conf.buffering.merge(prev.buffering, true);
  conf.request_buffering.merge(prev.request_buffering, true);
  conf.ignore_client_abort.merge(prev.ignore_client_abort, false);
  conf.intercept_errors.merge(prev.intercept_errors, false);
  conf.pass_request_headers.merge(prev.pass_request_headers, true);
  conf.pass_request_body.merge(prev.pass_request_body, true);
  conf.force_ranges.merge(prev.force_ranges, false);
  conf.limit_rate.merge(prev.limit_rate, 0);
  TempPath def;
  def.name = cf.full_name(prefix == "proxy"     ? std::string(WEIR_PROXY_TEMP_PATH)
                          : prefix == "fastcgi" ? std::string(WEIR_FASTCGI_TEMP_PATH)
                          : prefix == "uwsgi"   ? std::string(WEIR_UWSGI_TEMP_PATH)
                          : prefix == "scgi"    ? std::string(WEIR_SCGI_TEMP_PATH)
                                                : std::string(prefix) + "_temp");
  def.level = {1, 2, 0};
  conf.temp_path.merge(prev.temp_path, def);
  if (Status s = cf.cycle.add_path(&conf.temp_path.value); !s.ok()) return s;
  if (Status s = check_buffers(cf, prefix, conf, out); !s.ok()) return s;
  conf.ignore_headers.merge(prev.ignore_headers, 0);
  if (conf.store == -1) {
    conf.store = prev.store == -1 ? 0 : prev.store;
    conf.store_path = prev.store_path;
  }
  if (conf.store_access == 0) conf.store_access = prev.store_access != 0 ? prev.store_access : 0600;

  if (conf.hide == nullptr) conf.hide = prev.hide;
  if (conf.pass == nullptr) conf.pass = prev.pass;
  conf.hide_final = {};
  auto hide = [&](std::string_view h) {
    if (conf.pass == nullptr ||
        std::find(conf.pass->begin(), conf.pass->end(), h) == conf.pass->end()) {
      conf.hide_final.add(std::string(h), true);
    }
  };
  for (const char* h : hidden_by_default) hide(h);
  if (conf.hide != nullptr) {
    for (const std::string& h : *conf.hide) hide(h);
  }

  out.bufs = *conf.bufs;
  out.max_temp_file_size = *conf.max_temp_file_size;
  out.temp_path = &conf.temp_path.value;
  out.buffering = *conf.buffering;
  out.change_buffering = true;
  out.force_ranges = *conf.force_ranges;
  out.limit_rate = static_cast<off_t>(*conf.limit_rate);
  out.ignore_headers = *conf.ignore_headers;
  out.ignore_client_abort = *conf.ignore_client_abort;
  out.intercept_errors = *conf.intercept_errors;
  out.store = conf.store == 1;
  out.store_path = conf.store_path;
  out.store_access = conf.store_access;
  out.hide_headers = &conf.hide_final;

  // proxy has a default key (UpstreamProtocol::cache_key); the other protocols' must be written.
  Result<const CacheSettings*> cache =
      merge_cache_settings(cf, prefix, prev.cache, conf.cache, prefix == "proxy");
  if (!cache.ok()) return cache.status();
  out.cache = *cache;
  if (out.cache != nullptr && out.store) {
    std::string p(prefix);
    return cf.error("\"" + p + "_store\" is incompatible with \"" + p + "_cache\"");
  }
  return {};
}

}  // namespace weir::http
