#include "conf/nginx_modules.h"

namespace weir {

namespace {

enum class Match { Exact, Prefix };

struct Owner {
  Match match;
  std::string_view pattern;
  std::string_view module;
};

// Most specific first: the first match names the module.
constexpr Owner kOwners[] = {
    // nginx's own modules weir does not have yet.
    {Match::Exact, "proxy_cache_purge", "ngx_cache_purge (third-party)"},
    {Match::Prefix, "dav_ext_", "ngx_http_dav_ext_module (third-party)"},
    {Match::Exact, "mail", "ngx_mail_module"},
    {Match::Exact, "stream", "ngx_stream_module"},
    // Debian's dynamic modules (libnginx-mod-*).
    {Match::Prefix, "perl", "ngx_http_perl_module"},
    {Match::Prefix, "js_", "ngx_http_js_module (njs)"},
    {Match::Prefix, "auth_pam", "ngx_http_auth_pam_module"},
    {Match::Prefix, "echo", "ngx_http_echo_module"},
    {Match::Prefix, "fancyindex", "ngx_http_fancyindex_module"},
    {Match::Prefix, "subs_filter", "ngx_http_subs_filter_module"},
    {Match::Exact, "upload_progress", "ngx_http_uploadprogress_module"},
    {Match::Exact, "track_uploads", "ngx_http_uploadprogress_module"},
    {Match::Exact, "report_uploads", "ngx_http_uploadprogress_module"},
    {Match::Prefix, "upload_progress_", "ngx_http_uploadprogress_module"},
    {Match::Prefix, "nchan_", "ngx_nchan_module"},
    {Match::Exact, "rtmp", "ngx_rtmp_module"},
    {Match::Prefix, "lua_", "ngx_http_lua_module"},
    {Match::Prefix, "set_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "content_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "access_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "rewrite_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "header_filter_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "body_filter_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "log_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "init_by_lua", "ngx_http_lua_module"},
    {Match::Prefix, "init_worker_by_lua", "ngx_http_lua_module"},
};

// Dynamic modules weir has built in: their load_module is a no-op.
constexpr std::string_view kBuiltIn[] = {
    "ngx_http_geoip_module",                // Debian's libnginx-mod-http-geoip
    "ngx_http_geoip2_module",               // libnginx-mod-http-geoip2 (third-party)
    "ngx_http_image_filter_module",         // libnginx-mod-http-image-filter
    "ngx_http_xslt_filter_module",          // libnginx-mod-http-xslt-filter
    "ngx_http_headers_more_filter_module",  // libnginx-mod-http-headers-more-filter (third-party)
    "ngx_http_brotli_filter_module",
    "ngx_http_brotli_static_module",
    "ngx_http_zstd_filter_module",
    "ngx_http_zstd_static_module",
};

}  // namespace

std::string_view nginx_module_of(std::string_view directive) {
  for (const Owner& o : kOwners) {
    bool hit = o.match == Match::Exact ? directive == o.pattern : directive.starts_with(o.pattern);
    if (hit) return o.module;
  }
  return {};
}

bool built_in_nginx_module(std::string_view name) {
  for (std::string_view m : kBuiltIn) {
    if (name == m) return true;
  }
  return false;
}

}  // namespace weir
