// The rewrite module: `rewrite`, `return`, `set`, `if` and `break`, compiled per server and per
// location into one flat list of operations (an `if` block's operations sit inline after its
// condition, which jumps past them when false), run in the server_rewrite and rewrite phases.
// nginx: src/http/modules/ngx_http_rewrite_module.c, src/http/ngx_http_script.c (the
// if/return/regex codes)

#include <cstring>

#include "core/escape.h"
#include "http/core_module.h"
#include "http/request_body.h"

namespace weir::http {

extern Module http_rewrite_module;

namespace {

enum class OpKind : uint8_t { Rewrite, Return, Set, If, Break };
enum class RewriteFlag : uint8_t { None, Last, Break, Redirect, Permanent };
enum class CondKind : uint8_t { Var, Equal, NotEqual, Regex, NotRegex, File, Dir, Exists, Exec };

struct Condition {
  CondKind kind = CondKind::Var;
  bool negate = false;  // for file tests
  ComplexValue left;    // the variable (or the path for file tests)
  ComplexValue right;
  HttpRegex* regex = nullptr;
};

struct Op {
  OpKind kind;
  // rewrite
  HttpRegex* regex = nullptr;
  ComplexValue* value = nullptr;  // replacement, return text, set value
  RewriteFlag flag = RewriteFlag::None;
  bool redirect = false;  // the replacement is a URL (or redirect/permanent)
  bool add_args = true;   // keep the request's args (no trailing '?')
  bool has_args = false;  // the replacement has its own '?args'
  int status = 0;         // return
  // set
  int var_index = -1;
  VarSetter setter = nullptr;
  uintptr_t setter_data = 0;
  // if
  Condition* cond = nullptr;
  void** loc_conf = nullptr;  // a location `if` switches configuration
  size_t next = 0;            // where to continue when the condition is false
};

struct RewriteConf {
  static constexpr Module* kModule = &http_rewrite_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<Op>* ops = nullptr;  // an `if` block writes into its parent's list
  Setting<bool> log;
  Setting<bool> uninitialized_variable_warn;
};

std::vector<Op>& ops_of(ConfContext& cf, RewriteConf& conf) {
  if (conf.ops == nullptr) conf.ops = cf.pool.make<std::vector<Op>>();
  return *conf.ops;
}

bool truthy(std::string_view v) {
  return !v.empty() && v != "0";
}

bool eval_condition(Request& r, const Condition& c) {
  switch (c.kind) {
    case CondKind::Var:
      return truthy(c.left.eval(r));
    case CondKind::Equal:
      return c.left.eval(r) == c.right.eval(r);
    case CondKind::NotEqual:
      return c.left.eval(r) != c.right.eval(r);
    case CondKind::Regex:
      return regex_exec(r, *c.regex, c.left.eval(r));
    case CondKind::NotRegex:
      return !regex_exec(r, *c.regex, c.left.eval(r));
    case CondKind::File:
    case CondKind::Dir:
    case CondKind::Exists:
    case CondKind::Exec: {
      // Through the open file cache, stat only, as nginx's script file code: -x is the owner's
      // execute bit (true for a searchable directory), -e a file, directory or link.
      std::string_view v = c.left.eval(r);
      char* path = r.pool->alloc_bytes(v.size() + 1);
      std::memcpy(path, v.data(), v.size());
      path[v.size()] = '\0';
      CoreLocConf& clcf = core_loc(r);
      OpenFileInfo of;
      init_open_file_info(r, clcf, of);
      set_disable_symlinks(r, clcf, {path, v.size()}, of);
      of.test_only = true;
      bool result = false;
      if (!open_cached_file(clcf.open_file_cache, {path, v.size()}, of, *r.pool)) {
        if (of.err != ENOENT && of.err != ENOTDIR && of.err != ENAMETOOLONG) {
          log_error(LogLevel::Crit, r.log(), of.err, "%s \"%s\" failed", of.failed, path);
        }
      } else if (c.kind == CondKind::File) {
        result = of.is_file;
      } else if (c.kind == CondKind::Dir) {
        result = of.is_dir;
      } else if (c.kind == CondKind::Exists) {
        result = of.is_file || of.is_dir || of.is_link;
      } else {
        result = of.is_exec;
      }
      return c.negate ? !result : result;
    }
  }
  return false;
}

// Applies a matched rewrite. Returns a status for redirects, Error, or Declined to go on.
Code apply_rewrite(Request& r, const Op& op, RewriteConf& rlcf) {
  // A URI that came escaped (or with "+") has its captures escaped where they become args: all of
  // a redirect, the part after "?" of a new URI.
  using CaptureEscape = ComplexValue::CaptureEscape;
  CaptureEscape escape = CaptureEscape::None;
  if (r.quoted_uri || r.plus_in_uri) {
    escape = op.redirect ? CaptureEscape::All : (op.has_args ? CaptureEscape::InArgs : escape);
  }
  std::string_view value = op.value->eval(r, escape);
  if (op.redirect) {
    // A redirect keeps what the client must see escaped, and carries the args over.
    char* buf = r.pool->alloc_bytes(value.size() + 1 + r.args.size());
    size_t n = unescape_uri(buf, value, Unescape::Redirect);
    if (op.add_args && !r.args.empty()) {
      buf[n++] = op.has_args ? '&' : '?';
      std::memcpy(buf + n, r.args.data(), r.args.size());
      n += r.args.size();
    }
    std::string_view loc(buf, n);
    if (*rlcf.log) {
      log_error(LogLevel::Notice, r.log(), 0, "rewritten redirect: \"%.*s\"",
                static_cast<int>(loc.size()), loc.data());
    }
    clear_location(r);
    r.headers_out.location = add_header_out(r, "Location", loc);
    return Code::status(op.flag == RewriteFlag::Permanent ? 301 : 302);
  }
  std::string_view uri = value;
  if (op.has_args) {
    size_t q = value.find('?');
    uri = value.substr(0, q);
    std::string_view args = value.substr(q + 1);
    if (op.add_args && !r.args.empty()) {
      char* a = r.pool->alloc_bytes(args.size() + 1 + r.args.size());
      char* e = put(a, args);
      *e++ = '&';
      e = put(e, r.args);
      args = {a, static_cast<size_t>(e - a)};
    }
    r.args = args;
  } else if (!op.add_args) {
    r.args = {};
  }
  if (*rlcf.log) {
    log_error(LogLevel::Notice, r.log(), 0, "rewritten data: \"%.*s\", args: \"%.*s\"",
              static_cast<int>(uri.size()), uri.data(), static_cast<int>(r.args.size()),
              r.args.data());
  }
  if (uri.empty()) {
    log_error(LogLevel::Error, r.log(), 0, "the rewritten URI has a zero length");
    return Code::status(500);
  }
  r.uri = uri;
  r.exten = uri_exten(uri);
  r.internal = true;
  r.valid_unparsed_uri = false;
  if (op.flag == RewriteFlag::Break) {
    r.valid_location = false;
    r.uri_changed = false;
  } else {
    r.uri_changed = true;
  }
  return Rc::Declined;
}

Code rewrite_handler(Request& r) {
  RewriteConf& rlcf = r.loc<RewriteConf>();
  if (rlcf.ops == nullptr || rlcf.ops->empty()) return Rc::Declined;
  const std::vector<Op>& ops = *rlcf.ops;
  size_t ip = 0;
  while (ip < ops.size()) {
    const Op& op = ops[ip];
    switch (op.kind) {
      case OpKind::Rewrite: {
        if (!regex_exec(r, *op.regex, r.uri)) {
          if (*rlcf.log) {
            log_error(LogLevel::Notice, r.log(), 0, "\"%s\" does not match \"%.*s\"",
                      op.regex->re.pattern().c_str(), static_cast<int>(r.uri.size()), r.uri.data());
          }
          ip++;
          break;
        }
        if (*rlcf.log) {
          log_error(LogLevel::Notice, r.log(), 0, "\"%s\" matches \"%.*s\"",
                    op.regex->re.pattern().c_str(), static_cast<int>(r.uri.size()), r.uri.data());
        }
        Code rc = apply_rewrite(r, op, rlcf);
        if (rc != Rc::Declined) return rc;
        if (op.flag == RewriteFlag::Last || op.flag == RewriteFlag::Break) return Rc::Declined;
        ip++;
        break;
      }
      case OpKind::Return: {
        std::string_view text = op.value != nullptr ? op.value->eval(r) : std::string_view();
        if (op.status < 400 || op.value != nullptr) {
          if (op.status >= 301 && op.status <= 308 && op.status != 304) {
            clear_location(r);
            r.headers_out.location = add_header_out(r, "Location", text);
            return Code::status(op.status);
          }
          return send_response(r, op.status, text);
        }
        return Code::status(op.status);
      }
      case OpKind::Set: {
        std::string_view v = op.value->eval(r);
        if (op.setter != nullptr) {
          op.setter(r, v, op.setter_data);
        } else {
          r.variables[op.var_index].set(v);
        }
        ip++;
        break;
      }
      case OpKind::If:
        if (!eval_condition(r, *op.cond)) {
          ip = op.next;
          break;
        }
        if (op.loc_conf != nullptr) {
          r.loc_conf = op.loc_conf;
          update_location_config(r);
          // The if block's own rewrite settings (rewrite_log ...) from now on.
        }
        ip++;
        break;
      case OpKind::Break:
        r.uri_changed = false;
        return Rc::Declined;
    }
  }
  return Rc::Declined;
}

// A variable declared by `set` reads as "" until it is assigned.
void uninitialized_var(Request& r, VariableValue& v, uintptr_t data) {
  if (*r.loc<RewriteConf>().uninitialized_variable_warn) {
    const Variable& var = core_main(r).variables.indexed(static_cast<int>(data));
    log_error(LogLevel::Warn, r.log(), 0, "using uninitialized \"%s\" variable", var.name.c_str());
  }
  v.set("");
}

Status parse_flag(ConfContext& cf, const std::string& s, RewriteFlag& f) {
  if (s == "last") {
    f = RewriteFlag::Last;
  } else if (s == "break") {
    f = RewriteFlag::Break;
  } else if (s == "redirect") {
    f = RewriteFlag::Redirect;
  } else if (s == "permanent") {
    f = RewriteFlag::Permanent;
  } else {
    return cf.errorf("invalid parameter \"%s\"", s.c_str());
  }
  return {};
}

Status rewrite_directive(ConfContext& cf, const ConfNode& n, RewriteConf& rlcf) {
  Op op{OpKind::Rewrite};
  op.regex = cf.pool.make<HttpRegex>();
  if (Status s = compile_http_regex(cf, *op.regex, n.args[1], false); !s.ok()) return s;
  std::string repl = n.args[2];
  if (n.nargs() == 3) {
    if (Status s = parse_flag(cf, n.args[3], op.flag); !s.ok()) return s;
  }
  if (repl.starts_with("http://") || repl.starts_with("https://") || repl.starts_with("$scheme")) {
    op.redirect = true;
    if (op.flag == RewriteFlag::None) op.flag = RewriteFlag::Redirect;
  }
  if (op.flag == RewriteFlag::Redirect || op.flag == RewriteFlag::Permanent) op.redirect = true;
  if (!repl.empty() && repl.back() == '?') {
    op.add_args = false;
    repl.pop_back();
  }
  op.has_args = repl.find('?') != std::string::npos;
  op.value = cf.pool.make<ComplexValue>();
  if (Status s = op.value->compile(cf, repl); !s.ok()) return s;
  if (op.value->max_capture() > op.regex->re.captures()) {
    // nginx accepts this: the capture is simply empty.
  }
  ops_of(cf, rlcf).push_back(op);
  return {};
}

Status return_directive(ConfContext& cf, const ConfNode& n, RewriteConf& rlcf) {
  Op op{OpKind::Return};
  const std::string& first = n.args[1];
  auto code = parse_int(first);
  if (!code) {
    if (n.nargs() == 1 && (first.starts_with("http://") || first.starts_with("https://") ||
                           first.starts_with("$scheme"))) {
      op.status = 302;
      op.value = cf.pool.make<ComplexValue>();
      if (Status s = op.value->compile(cf, first); !s.ok()) return s;
      ops_of(cf, rlcf).push_back(op);
      return {};
    }
    return cf.errorf("invalid return code \"%s\"", first.c_str());
  }
  if (*code > 999) return cf.errorf("invalid return code \"%s\"", first.c_str());
  op.status = static_cast<int>(*code);
  if (n.nargs() == 2) {
    op.value = cf.pool.make<ComplexValue>();
    if (Status s = op.value->compile(cf, n.args[2]); !s.ok()) return s;
  }
  ops_of(cf, rlcf).push_back(op);
  return {};
}

Status break_directive(ConfContext& cf, const ConfNode&, RewriteConf& rlcf) {
  ops_of(cf, rlcf).push_back(Op{OpKind::Break});
  return {};
}

Status set_directive(ConfContext& cf, const ConfNode& n, RewriteConf& rlcf) {
  const std::string& name = n.args[1];
  if (name.size() < 2 || name[0] != '$')
    return cf.errorf("invalid variable name \"%s\"", name.c_str());
  std::string var = name.substr(1);
  Variables& vars = core_main_conf(cf).variables;
  Result<Variable*> added = vars.add(cf, var, kVarChangeable | kVarWeak);
  if (!added.ok()) return added.status();
  Variable* v = *added;
  int index = vars.index_of(cf, var);
  if (v->get == nullptr) {
    v->get = uninitialized_var;
    v->data = static_cast<uintptr_t>(index);
  }
  Op op{OpKind::Set};
  op.value = cf.pool.make<ComplexValue>();
  if (Status s = op.value->compile(cf, n.args[2]); !s.ok()) return s;
  op.var_index = index;
  if (v->set != nullptr) {
    op.setter = v->set;
    op.setter_data = v->data;
  }
  ops_of(cf, rlcf).push_back(op);
  return {};
}

Status parse_condition(ConfContext& cf, const ConfNode& n, Condition& c) {
  std::vector<std::string> a(n.args.begin() + 1, n.args.end());
  if (a.empty() || a[0].empty() || a[0][0] != '(') {
    return cf.errorf("invalid condition \"%s\"", a.empty() ? "" : a[0].c_str());
  }
  if (a[0].size() == 1) {
    a.erase(a.begin());
  } else {
    a[0] = a[0].substr(1);
  }
  if (a.empty() || a.back().empty() || a.back().back() != ')') {
    return cf.errorf("invalid condition \"%s\"", a.empty() ? "" : a.back().c_str());
  }
  if (a.back().size() == 1) {
    a.pop_back();
  } else {
    a.back().pop_back();
  }
  if (a.empty()) return cf.error("invalid condition");
  const std::string& first = a[0];
  if (first.size() > 1 && first[0] == '$') {
    if (Status s = c.left.compile(cf, first); !s.ok()) return s;
    if (a.size() == 1) {
      c.kind = CondKind::Var;
      return {};
    }
    const std::string& op = a[1];
    if (a.size() != 3) return cf.errorf("unexpected \"%s\" in condition", a.back().c_str());
    if (op == "=" || op == "!=") {
      c.kind = op == "=" ? CondKind::Equal : CondKind::NotEqual;
      return c.right.compile(cf, a[2]);
    }
    if (op == "~" || op == "~*" || op == "!~" || op == "!~*") {
      c.kind = op[0] == '!' ? CondKind::NotRegex : CondKind::Regex;
      c.regex = cf.pool.make<HttpRegex>();
      return compile_http_regex(cf, *c.regex, a[2], op.back() == '*');
    }
    return cf.errorf("unexpected \"%s\" in condition", op.c_str());
  }
  if (a.size() == 2 && (first == "-f" || first == "!-f" || first == "-d" || first == "!-d" ||
                        first == "-e" || first == "!-e" || first == "-x" || first == "!-x")) {
    c.negate = first[0] == '!';
    char t = first.back();
    c.kind = t == 'f'   ? CondKind::File
             : t == 'd' ? CondKind::Dir
             : t == 'e' ? CondKind::Exists
                        : CondKind::Exec;
    return c.left.compile(cf, a[1]);
  }
  return cf.errorf("invalid condition \"%s\"", first.c_str());
}

Status if_directive(ConfContext& cf, const ConfNode& n, RewriteConf& rlcf) {
  auto& pclcf = conf_of<CoreLocConf>(cf.http->loc_conf);

  HttpConfCtx* ctx = cf.pool.make<HttpConfCtx>();
  ctx->main_conf = cf.http->main_conf;
  ctx->srv_conf = cf.http->srv_conf;
  ConfContext ic = cf;
  ic.node = &n;
  if (Status s = create_level_confs(ic, *ctx, false); !s.ok()) return s;
  auto& clcf = conf_of<CoreLocConf>(ctx->loc_conf);
  clcf.name = pclcf.name;
  clcf.noname = true;
  clcf.node = &n;
  pclcf.locations.push_back(&clcf);

  Op op{OpKind::If};
  op.cond = cf.pool.make<Condition>();
  if (Status s = parse_condition(cf, n, *op.cond); !s.ok()) return s;
  std::vector<Op>& ops = ops_of(cf, rlcf);
  size_t at = ops.size();
  bool server_level = cf.cmd_type == kHttpSrvConf;
  op.loc_conf = server_level ? nullptr : ctx->loc_conf;
  ops.push_back(op);

  // The block's rewrite directives go inline into this list.
  auto& inner = conf_of<RewriteConf>(ctx->loc_conf);
  inner.ops = &ops;
  ic.http = ctx;
  ic.cmd_type = server_level ? kHttpSifConf : kHttpLifConf;
  Status s = ic.parse_block(n.children);
  ops[at].next = ops.size();
  // The block's conf keeps no list of its own: the parent runs it.
  inner.ops = nullptr;
  return s;
}

RewriteConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<RewriteConf>();
}

Status merge_loc_conf(ConfContext&, const RewriteConf& prev, RewriteConf& conf) {
  conf.log.merge(prev.log, false);
  conf.uninitialized_variable_warn.merge(prev.uninitialized_variable_warn, true);
  return {};
}

Status init(ConfContext& cf) {
  // With no rewrite, return, set, if or break anywhere the handler would only decline, and the
  // engine leaves out the post_rewrite step as well.
  if (!cf.configured(http_rewrite_module)) return {};
  add_phase_handler(cf, Phase::ServerRewrite, rewrite_handler);
  add_phase_handler(cf, Phase::Rewrite, rewrite_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<rewrite_directive>("rewrite", kHttpSrvLocIf | kTake23),
    directive<return_directive>("return", kHttpSrvLocIf | kTake12),
    directive<break_directive>("break", kHttpSrvLocIf | kNoArgs),
    directive<if_directive>("if", kHttpSrvConf | kHttpLocConf | kBlock | kOneMore),
    directive<set_directive>("set", kHttpSrvLocIf | kTake2),
    directive<slot::flag<&RewriteConf::log>>("rewrite_log", kHttpMainConf | kHttpSrvLocIf | kFlag),
    directive<slot::flag<&RewriteConf::uninitialized_variable_warn>>(
        "uninitialized_variable_warn", kHttpMainConf | kHttpSrvLocIf | kFlag),
};
static_assert(directives_of(kDirectives, &http_rewrite_module));

}  // namespace

Module http_rewrite_module{
    .name = "http_rewrite",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
