// fastcgi: requests to a FastCGI application (php-fpm ...) on the upstream lifecycle, as nginx's
// ngx_http_fastcgi_module: fastcgi_pass (an address, a unix socket, an upstream group, or
// variables), fastcgi_param with nginx's inheritance, fastcgi_index and fastcgi_split_path_info
// with $fastcgi_script_name and $fastcgi_path_info, fastcgi_keep_conn, fastcgi_catch_stderr, and
// the settings every upstream protocol has under its prefix (fastcgi_buffers, fastcgi_read_timeout
// ...). The records are fastcgi_request.cc's and fastcgi_response.cc's. nginx:
// src/http/modules/ngx_http_fastcgi_module.c
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "http/variables.h"
#include "modules/fastcgi/fastcgi.h"
#include "upstream/upstream_module.h"

namespace weir::http {

namespace fastcgi {

FastcgiCtx& fastcgi_ctx(Request& r) {
  auto* ctx = r.get_ctx<FastcgiCtx>();
  if (ctx == nullptr) {
    ctx = r.pool->make<FastcgiCtx>();
    r.set_ctx(ctx);
  }
  return *ctx;
}

namespace {

constexpr UpstreamProtocol kFastcgiProtocol{
    .create_request = create_request,
    .reinit_request = reinit_request,
    .body_filter = body_filter,
    .process_header = process_header,
    .input_filter_init = input_filter_init,
    .input_filter = input_filter,
    .pipe_input_filter = pipe_input_filter,
};

Code fastcgi_handler(Request& r) {
  FastcgiLocConf& conf = fastcgi_conf(r);
  FastcgiCtx& ctx = fastcgi_ctx(r);
  ctx.records = Records{};
  ctx.header_started = false;
  return start_cgi_upstream(r, {&conf.upstream, &kFastcgiProtocol, "fastcgi://", {}}, conf.pass,
                            !*conf.up.request_buffering && *conf.up.pass_request_body);
}

// --- fastcgi_split_path_info and its variables ------------------------------------------------

void split(Request& r, FastcgiCtx& ctx) {
  if (ctx.split) return;
  ctx.split = true;
  ctx.script_name = r.uri;
  ctx.path_info = {};
  const FastcgiLocConf& conf = fastcgi_conf(r);
  if (conf.split_path_info == nullptr) return;
  int caps[9];
  if (!conf.split_path_info->match(r.uri, caps, 9)) return;
  auto group = [&](int i) {
    return caps[2 * i] < 0 ? std::string_view{}
                           : r.uri.substr(static_cast<size_t>(caps[2 * i]),
                                          static_cast<size_t>(caps[2 * i + 1] - caps[2 * i]));
  };
  ctx.script_name = group(1);
  ctx.path_info = group(2);
}

// $fastcgi_script_name: the script part of the URI, with fastcgi_index after a trailing slash.
void var_script_name(Request& r, VariableValue& v, uintptr_t) {
  FastcgiCtx& ctx = fastcgi_ctx(r);
  split(r, ctx);
  const std::string& index = *fastcgi_conf(r).index;
  if (ctx.script_name.empty() || ctx.script_name.back() != '/' || index.empty()) {
    v.set(ctx.script_name);
    return;
  }
  char* p = r.pool->alloc_bytes(ctx.script_name.size() + index.size());
  char* e = put(put(p, ctx.script_name), index);
  v.set({p, static_cast<size_t>(e - p)});
}

void var_path_info(Request& r, VariableValue& v, uintptr_t) {
  FastcgiCtx& ctx = fastcgi_ctx(r);
  split(r, ctx);
  v.set(ctx.path_info);
}

constexpr VariableDef kVars[] = {
    {"fastcgi_script_name", var_script_name, nullptr, kVarNoCacheable},
    {"fastcgi_path_info", var_path_info, nullptr, kVarNoCacheable},
};

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

// --- directives ------------------------------------------------------------------------------

Status set_pass(ConfContext& cf, const ConfNode& n, FastcgiLocConf& conf) {
  return set_cgi_pass(cf, n, conf.pass, fastcgi_handler);
}

Status add_param(ConfContext& cf, const ConfNode& n, FastcgiLocConf& conf) {
  return add_cgi_param(cf, n, conf.params);
}

Status set_split_path_info(ConfContext& cf, const ConfNode& n, FastcgiLocConf& conf) {
  auto re = std::make_shared<Regex>();
  if (Status s = re->compile(n.args[1], false); !s.ok()) return s;
  if (re->captures() != 2) {
    return cf.errorf("pattern \"%s\" must have 2 captures", n.args[1].c_str());
  }
  conf.split_path_info = std::move(re);
  return {};
}

Status add_catch_stderr(ConfContext& cf, const ConfNode& n, FastcgiLocConf& conf) {
  if (conf.catch_stderr == nullptr) conf.catch_stderr = cf.pool.make<std::vector<std::string>>();
  conf.catch_stderr->push_back(n.args[1]);
  return {};
}

FastcgiLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<FastcgiLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const FastcgiLocConf& prev, FastcgiLocConf& conf) {
  merge_cgi_pass(prev.pass, conf.pass);
  if (Status st = merge_upstream_settings(cf, "fastcgi", SettingsKind::Full, prev.up, conf.up,
                                          kCgiHiddenHeaders, conf.upstream);
      !st.ok()) {
    return st;
  }
  conf.index.merge(prev.index, std::string());
  conf.keep_conn.merge(prev.keep_conn, false);
  if (conf.split_path_info == nullptr) conf.split_path_info = prev.split_path_info;
  if (conf.catch_stderr == nullptr) conf.catch_stderr = prev.catch_stderr;
  merge_cgi_params(prev.params, conf.params);
  conf.upstream.group = conf.pass.group;
  conf.upstream.tag = &http_fastcgi_module;
  return {};
}

using F = FastcgiLocConf;
constexpr Directive kOwnDirectives[] = {
    directive<set_pass>("fastcgi_pass", kHttpLocConf | kHttpLifConf | kTake1),
    directive<add_param>("fastcgi_param", kHttpMainSrvLoc | kTake23),
    directive<slot::str<&F::index>>("fastcgi_index", kHttpMainSrvLoc | kTake1),
    directive<
        settings_detail::on_settings<F, &F::up, slot::send_lowat<&UpstreamSettings::send_lowat>>>(
        "fastcgi_send_lowat", kHttpMainSrvLoc | kTake1),
    directive<set_split_path_info>("fastcgi_split_path_info", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&F::keep_conn>>("fastcgi_keep_conn", kHttpMainSrvLoc | kFlag),
    directive<add_catch_stderr>("fastcgi_catch_stderr", kHttpMainSrvLoc | kTake1),
};
constexpr auto kDirectives = join_directives(
    std::to_array(kOwnDirectives), upstream_directives<F, &F::up, "fastcgi", SettingsKind::Full>());
static_assert(directives_of(kDirectives, &http_fastcgi_module));

}  // namespace

}  // namespace fastcgi

Module http_fastcgi_module{
    .name = "http_fastcgi",
    .type = ModuleType::Http,
    .directives = fastcgi::kDirectives,
    .preconfiguration = fastcgi::preconfiguration,
    .create_loc_conf = create_conf<fastcgi::create_loc_conf>,
    .merge_loc_conf = merge_conf<fastcgi::merge_loc_conf>,
};

}  // namespace weir::http
