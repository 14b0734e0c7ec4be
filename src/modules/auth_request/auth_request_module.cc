// auth_request: access decided by another location (an SSO service behind proxy_pass, most
// often): a subrequest to the URI, waited for, whose answer's status decides - 2xx allows, 401
// (passing its WWW-Authenticate) and 403 deny, anything else is a 500 with nginx's log line.
// auth_request_set copies values the subrequest saw ($upstream_http_x_user ...) into variables of
// the request. The subrequest only answers with a header; it reads no body of its own.
// nginx: src/http/modules/ngx_http_auth_request_module.c
#include <string>
#include <vector>

#include "http/core_module.h"
#include "http/request_body.h"
#include "http/script.h"
#include "http/subrequest.h"
#include "http/variables.h"
#include "upstream/upstream.h"

namespace weir::http {

extern Module http_auth_request_module;

namespace {

struct AuthVar {
  int index;  // the variable auth_request_set writes
  ComplexValue value;
};

struct AuthRequestLocConf {
  static constexpr Module* kModule = &http_auth_request_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<std::string> uri;  // "" (off): no subrequest
  std::vector<AuthVar>* vars = nullptr;
};

struct AuthRequestCtx {
  static constexpr Module* kModule = &http_auth_request_module;
  Request* subrequest = nullptr;
  int status = 0;
  bool done = false;
};

Code done(Request& sr, void* data, Code rc) {
  auto& ctx = *static_cast<AuthRequestCtx*>(data);
  ctx.done = true;
  ctx.status = sr.headers_out.status;
  return rc;
}

// The values are set explicitly, so that they stay after an internal redirect.
void set_variables(Request& r, const AuthRequestLocConf& conf, AuthRequestCtx& ctx) {
  if (conf.vars == nullptr) return;
  const Variables& vars = core_main(r).variables;
  for (const AuthVar& av : *conf.vars) {
    std::string_view value = r.pool->dup(av.value.eval(*ctx.subrequest));
    VariableValue& vv = r.variables[av.index];
    vv.set(value);
    const Variable& v = vars.indexed(av.index);
    if (v.set != nullptr) v.set(r, value, v.data);
  }
}

Code auth_request_handler(Request& r) {
  const auto& conf = r.loc<AuthRequestLocConf>();
  if (conf.uri->empty()) return Rc::Declined;
  if (auto* ctx = r.get_ctx<AuthRequestCtx>()) {
    if (!ctx->done) return Rc::Again;
    set_variables(r, conf, *ctx);
    if (ctx->status == 403) return Code::status(403);
    if (ctx->status == 401) {
      Request& sr = *ctx->subrequest;
      Header* h = sr.headers_out.www_authenticate;
      if (h == nullptr) h = sr.headers_out.headers.find("WWW-Authenticate");
      if (h == nullptr && sr.upstream != nullptr) {
        h = sr.upstream->headers_in.headers.find("WWW-Authenticate");
      }
      if (h != nullptr) {
        r.headers_out.www_authenticate = add_header_out(r, h->key, h->value);
      }
      return Code::status(401);
    }
    if (ctx->status >= 200 && ctx->status < 300) return Rc::Ok;
    log_error(LogLevel::Error, r.log(), 0, "auth request unexpected status: %d", ctx->status);
    return Code::status(500);
  }
  auto* ctx = r.pool->make<AuthRequestCtx>();
  auto* post = r.pool->make<PostSubrequest>();
  post->handler = done;
  post->data = ctx;
  std::string_view uri = *conf.uri;
  std::string_view args;
  if (size_t q = uri.find('?'); q != std::string_view::npos) {
    args = uri.substr(q + 1);
    uri = uri.substr(0, q);
  }
  Request* sr = create_subrequest(r, uri, args, {.waited = true}, post);
  if (sr == nullptr) return Rc::Error;
  // An empty body of its own: it does not read the client's, nor close a file already read.
  sr->request_body = r.pool->make<RequestBody>();
  sr->header_only = true;
  ctx->subrequest = sr;
  r.set_ctx(ctx);
  return Rc::Again;
}

// --- configuration ---------------------------------------------------------------------------

Status uri_directive(ConfContext&, const ConfNode& n, AuthRequestLocConf& conf) {
  if (conf.uri.set) return Status::error("is duplicate");
  conf.uri = n.args[1] == "off" ? std::string() : n.args[1];
  return {};
}

Status set_directive(ConfContext& cf, const ConfNode& n, AuthRequestLocConf& conf) {
  std::string_view name = n.args[1];
  if (!name.starts_with('$')) return cf.errorf("invalid variable name \"%s\"", n.args[1].c_str());
  name.remove_prefix(1);
  Variables& vars = core_main_conf(cf).variables;
  Result<Variable*> v = vars.add(cf, name, kVarChangeable);
  if (!v.ok()) return v.status();
  if ((*v)->get == nullptr) {
    // A new variable: unset until auth_request sets it (as `set` makes one).
    (*v)->get = [](Request&, VariableValue& value, uintptr_t) { value.set_not_found(); };
  }
  if (conf.vars == nullptr) conf.vars = cf.pool.make<std::vector<AuthVar>>();
  AuthVar av;
  av.index = vars.index_of(cf, name);
  if (Status s = av.value.compile(cf, n.args[2]); !s.ok()) return s;
  conf.vars->push_back(std::move(av));
  return {};
}

AuthRequestLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<AuthRequestLocConf>();
}

Status merge_loc_conf(ConfContext&, const AuthRequestLocConf& prev, AuthRequestLocConf& conf) {
  conf.uri.merge(prev.uri, std::string());
  if (conf.vars == nullptr) conf.vars = prev.vars;
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_auth_request_module)) return {};
  add_phase_handler(cf, Phase::Access, auth_request_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<uri_directive>("auth_request", kHttpMainSrvLoc | kTake1),
    directive<set_directive>("auth_request_set", kHttpMainSrvLoc | kTake2),
};
static_assert(directives_of(kDirectives, &http_auth_request_module));

}  // namespace

Module http_auth_request_module{
    .name = "http_auth_request",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
