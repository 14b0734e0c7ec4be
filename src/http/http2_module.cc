// ngx_http_v2_module's directives, $http2 and the HTTP/2 header filter: the response head as a
// HEADERS frame (lower-case names, no connection-specific fields) in place of the HTTP/1 status
// line and header lines. nginx: src/http/v2/ngx_http_v2_module.c, ngx_http_v2_filter_module.c
#include <cstring>

#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/header_filter.h"
#include "http/http2.h"
#include "http/http_connection.h"
#include "http/special_response.h"
#include "http/variables.h"

namespace weir::http {

namespace {

// --- the header filter -------------------------------------------------------------------------

// Fields HTTP/2 forbids (RFC 9113 8.2.2): a module's add_header of one is dropped, not sent.
bool connection_specific(std::string_view lower) {
  return lower == "connection" || lower == "keep-alive" || lower == "proxy-connection" ||
         lower == "transfer-encoding" || lower == "upgrade";
}

std::string_view lower_dup(Pool& pool, std::string_view s) {
  char* p = pool.alloc_bytes(s.size());
  for (size_t i = 0; i < s.size(); i++) p[i] = to_lower(s[i]);
  return {p, s.size()};
}

Code http2_header_filter(Request& r, HeaderNext next) {
  if (r.http_connection->stream == nullptr) return next(r);
  if (r.header_sent) return Rc::Ok;
  r.header_sent = true;
  if (!r.is_main()) return Rc::Ok;
  if (r.method == kHead) r.header_only = true;
  // Nothing follows the header (an empty body, no trailers): END_STREAM goes with it, as nginx's
  // (gRPC's trailers-only answers need it).
  if (r.headers_out.content_length_n == 0 && !r.expect_trailers) r.header_only = true;

  ResponseHead head;
  prepare_response_head(r, head);
  HeadersOut& out = r.headers_out;
  CoreLocConf& clcf = core_loc(r);
  Pool& pool = *r.pool;

  size_t n = 8;
  for (Header* h : out.headers) n += h->hash != 0 ? 1 : 0;
  auto* fields = pool.make_array<Http2Field>(n);
  size_t i = 0;
  char* status = pool.alloc_bytes(3);
  put_uint_pad(status, static_cast<uint64_t>(head.status % 1000), 3);
  fields[i++] = {":status", {status, 3}};
  if (out.server == nullptr) {
    fields[i++] = {"server", server_string(*clcf.server_tokens != ServerTokens::Off)};
  }
  if (out.date == nullptr) fields[i++] = {"date", clock::http_time()};
  if (!out.content_type.empty()) {
    std::string_view type = out.content_type;
    if (out.content_type_len == out.content_type.size() && !out.charset.empty()) {
      size_t len = type.size() + 10 + out.charset.size();
      char* p = pool.alloc_bytes(len);
      char* q = put(put(put(p, type), "; charset="), out.charset);
      type = {p, static_cast<size_t>(q - p)};
    }
    fields[i++] = {"content-type", type};
  }
  if (out.content_length == nullptr && out.content_length_n >= 0) {
    char* p = pool.alloc_bytes(20);
    fields[i++] = {
        "content-length",
        {p, static_cast<size_t>(put_uint(p, static_cast<uint64_t>(out.content_length_n)) - p)}};
  }
  if (out.last_modified == nullptr && out.last_modified_time != -1) {
    char* p = pool.alloc_bytes(clock::kHttpTimeLen);
    if (out.last_modified_text.size() == clock::kHttpTimeLen) {
      std::memcpy(p, out.last_modified_text.data(), clock::kHttpTimeLen);
    } else {
      clock::format_http_time(p, out.last_modified_time);
    }
    fields[i++] = {"last-modified", {p, clock::kHttpTimeLen}};
  }
  if (head.abs_location) {
    size_t len = 8 + head.host.size() + 6 + out.location->value.size();
    char* p = pool.alloc_bytes(len);
    char* q = put(p, r.connection->ssl != nullptr ? "https://" : "http://");
    q = put(q, head.host);
    if (head.port != 0) {
      *q++ = ':';
      q = put_uint(q, head.port);
    }
    q = put(q, out.location->value);
    // What was sent, for $sent_http_location in the log (as nginx updates it).
    out.location->value = {p, static_cast<size_t>(q - p)};
    fields[i++] = {"location", out.location->value};
  }
  if ((r.gzip_vary && *clcf.gzip_vary) || r.vary_coding) {
    fields[i++] = {"vary", "Accept-Encoding"};
  }
  for (Header* h : out.headers) {
    if (h->hash == 0) continue;
    std::string_view name = lower_dup(pool, h->key);
    if (connection_specific(name)) continue;
    fields[i++] = {name, h->value};
  }
  return http2_submit_response(r, {fields, i});
}

Status init(ConfContext& cf) {
  // The filter joins the chain only where HTTP/2 may be spoken.
  bool used = cf.configured(http_v2_module);
  for (const ListenConf& l : core_main_conf(cf).listens) used = used || l.http2;
  if (used) register_header_filter(cf, FilterId::Http2, http2_header_filter);
  return {};
}

// --- $http2 ------------------------------------------------------------------------------------

void var_http2(Request& r, VariableValue& v, uintptr_t) {
  v.set(http2_variable(r));
}

constexpr VariableDef kVars[] = {
    {"http2", var_http2, nullptr, 0},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

// --- configuration -----------------------------------------------------------------------------

// nginx 1.19.7 made these obsolete; nginx 1.25.1 the push ones (HTTP/2 server push is gone from
// browsers). Each is accepted with nginx's warning, as nginx does.
template <const char* Replacement>
Status obsolete(ConfContext& cf, const ConfNode& n) {
  cf.warn(LogLevel::Warn, "the \"%s\" directive is obsolete, use the \"%s\" directive instead",
          n.name().c_str(), Replacement);
  return {};
}
Status obsolete_ignored(ConfContext& cf, const ConfNode& n) {
  cf.warn(LogLevel::Warn, "the \"%s\" directive is obsolete, ignored", n.name().c_str());
  return {};
}
constexpr char kKeepaliveRequests[] = "keepalive_requests";
constexpr char kKeepaliveTimeout[] = "keepalive_timeout";
constexpr char kHeaderTimeout[] = "client_header_timeout";
constexpr char kLargeBuffers[] = "large_client_header_buffers";

Status set_recv_buffer_size(ConfContext& cf, const ConfNode& n, Http2MainConf& conf) {
  if (Status s = slot::size<&Http2MainConf::recv_buffer_size>(cf, n, conf); !s.ok()) return s;
  if (*conf.recv_buffer_size <= 2 * 16) return Status::error("value is too small");
  return {};
}

Status set_streams_index_size(ConfContext& cf, const ConfNode& n, Http2SrvConf& conf) {
  if (Status s = slot::num<&Http2SrvConf::streams_index_size>(cf, n, conf); !s.ok()) return s;
  size_t v = *conf.streams_index_size;
  if (v == 0 || (v & (v - 1)) != 0) return Status::error("must be a power of two");
  return {};
}

Status set_body_preread_size(ConfContext& cf, const ConfNode& n, Http2SrvConf& conf) {
  if (Status s = slot::size<&Http2SrvConf::body_preread_size>(cf, n, conf); !s.ok()) return s;
  if (*conf.body_preread_size > 0x7fffffff) {
    return Status::errorf("the maximum body preread buffer size is %d", 0x7fffffff);
  }
  return {};
}

Status set_chunk_size(ConfContext& cf, const ConfNode& n, Http2LocConf& conf) {
  if (Status s = slot::size<&Http2LocConf::chunk_size>(cf, n, conf); !s.ok()) return s;
  if (*conf.chunk_size == 0) return cf.error("the http2 chunk size cannot be zero");
  if (*conf.chunk_size > 16384) conf.chunk_size = size_t{16384};  // the largest frame we allow
  return {};
}

Http2MainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<Http2MainConf>();
}
Status init_main_conf(ConfContext&, Http2MainConf& conf) {
  conf.recv_buffer_size.merge({}, 256 * 1024);
  return {};
}
Http2SrvConf* create_srv_conf(ConfContext& cf) {
  return cf.pool.make<Http2SrvConf>();
}
Status merge_srv_conf(ConfContext&, const Http2SrvConf& prev, Http2SrvConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.max_concurrent_streams.merge(prev.max_concurrent_streams, 128);
  conf.body_preread_size.merge(prev.body_preread_size, 65536);
  conf.streams_index_size.merge(prev.streams_index_size, 32);
  return {};
}
Http2LocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<Http2LocConf>();
}
Status merge_loc_conf(ConfContext&, const Http2LocConf& prev, Http2LocConf& conf) {
  conf.chunk_size.merge(prev.chunk_size, 8 * 1024);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&Http2SrvConf::enable>>("http2", kHttpMainSrv | kFlag),
    directive<set_recv_buffer_size>("http2_recv_buffer_size", kHttpMainConf | kTake1),
    directive<slot::num<&Http2SrvConf::max_concurrent_streams>>("http2_max_concurrent_streams",
                                                                kHttpMainSrv | kTake1),
    directive<set_streams_index_size>("http2_streams_index_size", kHttpMainSrv | kTake1),
    directive<set_body_preread_size>("http2_body_preread_size", kHttpMainSrv | kTake1),
    directive<set_chunk_size>("http2_chunk_size", kHttpMainSrvLoc | kTake1),
    directive<obsolete<kKeepaliveRequests>>("http2_max_requests", kHttpMainSrv | kTake1),
    directive<obsolete<kLargeBuffers>>("http2_max_field_size", kHttpMainSrv | kTake1),
    directive<obsolete<kLargeBuffers>>("http2_max_header_size", kHttpMainSrv | kTake1),
    directive<obsolete<kKeepaliveTimeout>>("http2_idle_timeout", kHttpMainSrv | kTake1),
    directive<obsolete<kHeaderTimeout>>("http2_recv_timeout", kHttpMainSrv | kTake1),
    directive<slot::pool_size<&Http2SrvConf::pool_size>>("http2_pool_size", kHttpMainSrv | kTake1),
    directive<obsolete_ignored>("http2_max_concurrent_pushes", kHttpMainSrv | kTake1),
    directive<obsolete_ignored>("http2_push", kHttpMainSrvLoc | kTake1),
    directive<obsolete_ignored>("http2_push_preload", kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_v2_module));

}  // namespace

bool http2_allowed(const HttpConnection& hc) {
  return (hc.addr_conf != nullptr && hc.addr_conf->http2) ||
         *conf_of<Http2SrvConf>(hc.conf_ctx->srv_conf).enable;
}

Module http_v2_module{
    .name = "http_v2",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_main_conf = create_conf<create_main_conf>,
    .init_main_conf = init_conf<init_main_conf>,
    .create_srv_conf = create_conf<create_srv_conf>,
    .merge_srv_conf = merge_conf<merge_srv_conf>,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
