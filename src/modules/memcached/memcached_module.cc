// memcached: a response from a memcached server on the upstream lifecycle, as nginx's
// ngx_http_memcached_module. The request is "get <$memcached_key, escaped>\r\n"; the answer
// "VALUE <key> <flags> <length>\r\n<data>\r\nEND\r\n" is a 200 of that data (Content-Type from the
// URI as for a file; Content-Encoding: gzip when memcached_gzip_flag's bit is among the flags), and
// "END\r\n" a 404. Relayed without buffering, as nginx's. nginx:
// src/http/modules/ngx_http_memcached_module.c
#include <cstring>
#include <string>

#include "core/escape.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "http/variables.h"
#include "upstream/cgi_params.h"
#include "upstream/upstream.h"
#include "upstream/upstream_module.h"
#include "upstream/upstream_settings.h"

namespace weir::http {

extern Module http_memcached_module;

namespace {

constexpr std::string_view kEnd = "\r\nEND\r\n";

struct MemcachedLocConf {
  static constexpr Module* kModule = &http_memcached_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  CgiPass pass;
  UpstreamSettings up;
  Setting<int64_t> gzip_flag;
  UpstreamConf upstream;
};

struct MemcachedCtx {
  static constexpr Module* kModule = &http_memcached_module;
  std::string_view key;  // as sent (escaped)
  size_t end_seen = 0;   // bytes of "\r\nEND\r\n" checked after the data
  bool bad_trailer = false;
};

int g_key_index = -1;  // $memcached_key

MemcachedLocConf& memcached_conf(Request& r) {
  return r.loc<MemcachedLocConf>();
}
MemcachedCtx& memcached_ctx(Request& r) {
  return *r.get_ctx<MemcachedCtx>();
}

Code create_request(Request& r) {
  const VariableValue* v = get_flushed_variable(r, g_key_index);
  if (v == nullptr || !v->valid) {
    log_error(LogLevel::Error, r.log(), 0, "the \"$memcached_key\" variable is not set");
    return Code::status(500);
  }
  std::string_view key = v->view();
  size_t escaped = escape_uri(nullptr, key, Escape::Memcached);
  Buffer* b = Buffer::create_temp(*r.pool, 4 + escaped + 2);
  char* p = put(b->last, "get ");
  char* k = p;
  p += escape_uri(p, key, Escape::Memcached);
  memcached_ctx(r).key = {k, static_cast<size_t>(p - k)};
  p = put(p, "\r\n");
  b->last = p;
  b->start = b->pos;
  WEIR_DEBUG(r.log(), "http memcached request: \"%.*s\"", static_cast<int>(b->size() - 2), b->pos);
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  r.upstream->request_bufs = cl;
  return Rc::Ok;
}

Code reinit_request(Request& r) {
  MemcachedCtx& ctx = memcached_ctx(r);
  ctx.end_seen = 0;
  ctx.bad_trailer = false;
  return Rc::Ok;
}

// The answer's first line: "VALUE key flags length" (200) or "END" (404).
HeaderResult process_header(Request& r) {
  Upstream& u = *r.upstream;
  Buffer& b = u.buffer;
  MemcachedCtx& ctx = memcached_ctx(r);
  char* lf = static_cast<char*>(std::memchr(b.pos, '\n', static_cast<size_t>(b.last - b.pos)));
  if (lf == nullptr) return HeaderResult::Again;
  std::string_view line(b.pos, static_cast<size_t>(lf - b.pos));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  WEIR_DEBUG(r.log(), "memcached: \"%.*s\"", static_cast<int>(line.size()), line.data());
  b.pos = lf + 1;
  if (line == "END") {
    log_error(LogLevel::Info, r.log(), 0, "key: \"%.*s\" was not found by memcached",
              static_cast<int>(ctx.key.size()), ctx.key.data());
    u.headers_in.status = 404;
    u.headers_in.content_length_n = 0;
    u.keepalive = true;
    return HeaderResult::Done;
  }
  if (!line.starts_with("VALUE ")) {
    log_error(LogLevel::Error, r.log(), 0, "memcached sent invalid response: \"%.*s\"",
              static_cast<int>(line.size()), line.data());
    return HeaderResult::Invalid;
  }
  std::string_view rest = line.substr(6);
  if (!rest.starts_with(ctx.key) || rest.size() == ctx.key.size() || rest[ctx.key.size()] != ' ') {
    log_error(LogLevel::Error, r.log(), 0,
              "memcached sent invalid key in response \"%.*s\" for key \"%.*s\"",
              static_cast<int>(line.size()), line.data(), static_cast<int>(ctx.key.size()),
              ctx.key.data());
    return HeaderResult::Invalid;
  }
  rest.remove_prefix(ctx.key.size() + 1);
  size_t sp = rest.find(' ');
  auto flags = sp == std::string_view::npos ? std::nullopt : parse_int(rest.substr(0, sp));
  if (!flags) {
    log_error(LogLevel::Error, r.log(), 0,
              "memcached sent invalid flags in response \"%.*s\" for key \"%.*s\"",
              static_cast<int>(line.size()), line.data(), static_cast<int>(ctx.key.size()),
              ctx.key.data());
    return HeaderResult::Invalid;
  }
  std::string_view length_text = rest.substr(sp + 1);
  if (size_t cas = length_text.find(' '); cas != std::string_view::npos) {
    length_text = length_text.substr(0, cas);
  }
  auto length = parse_int(length_text);
  if (!length || *length < 0) {
    log_error(LogLevel::Error, r.log(), 0,
              "memcached sent invalid length in response \"%.*s\" for key \"%.*s\"",
              static_cast<int>(line.size()), line.data(), static_cast<int>(ctx.key.size()),
              ctx.key.data());
    return HeaderResult::Invalid;
  }
  int64_t gzip_flag = *memcached_conf(r).gzip_flag;
  if (gzip_flag != 0 && (*flags & gzip_flag) != 0) {
    Header* h = u.headers_in.headers.push(*r.pool, "Content-Encoding", "gzip");
    h->lowcase_key = "content-encoding";
  }
  u.headers_in.status = 200;
  u.headers_in.content_length_n = *length;
  return HeaderResult::Done;
}

Rc input_filter_init(Request& r) {
  Upstream& u = *r.upstream;
  // The data, then "\r\nEND\r\n"; a miss has neither.
  u.length = u.headers_in.status == 404
                 ? 0
                 : u.headers_in.content_length_n + static_cast<off_t>(kEnd.size());
  return Rc::Ok;
}

// The data goes on; the trailer after it is checked, and more than it is not passed.
Rc input_filter(Request& r, size_t bytes) {
  Upstream& u = *r.upstream;
  MemcachedCtx& ctx = memcached_ctx(r);
  char* from = u.buffer.last;
  u.buffer.last += bytes;
  char* last = u.buffer.last;
  off_t data_left = u.length - static_cast<off_t>(kEnd.size() - ctx.end_seen);
  if (data_left > 0) {
    char* e = from + std::min<off_t>(data_left, last - from);
    add_non_buffered_out(r, u, from, e);
    u.length -= e - from;
    from = e;
  }
  while (from < last && ctx.end_seen < kEnd.size()) {
    if (*from != kEnd[ctx.end_seen]) {
      if (!ctx.bad_trailer)
        log_error(LogLevel::Error, r.log(), 0, "memcached sent invalid trailer");
      ctx.bad_trailer = true;
      u.keepalive = false;
      u.length = 0;
      return Rc::Ok;
    }
    from++;
    ctx.end_seen++;
    u.length--;
  }
  if (u.length == 0 && !ctx.bad_trailer) u.keepalive = from == last;
  return Rc::Ok;
}

constexpr UpstreamProtocol kMemcachedProtocol{
    .create_request = create_request,
    .reinit_request = reinit_request,
    .process_header = process_header,
    .input_filter_init = input_filter_init,
    .input_filter = input_filter,
};

Code memcached_handler(Request& r) {
  if (!(r.method & (kGet | kHead))) return Code::status(405);
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  if (set_content_type(r) != Rc::Ok) return Code::status(500);
  MemcachedLocConf& conf = memcached_conf(r);
  Upstream* u = create_upstream(r);
  u->conf = &conf.upstream;
  u->protocol = &kMemcachedProtocol;
  u->schema = "memcached://";
  r.set_ctx(r.pool->make<MemcachedCtx>());
  std::string_view host;
  if (Code rc = cgi_pass_peer(r, *u, conf.pass, {}, host); rc != Rc::Ok) return rc;
  r.main->count++;
  init_upstream(r);
  return Rc::Done;
}

// --- configuration ---------------------------------------------------------------------------

// $memcached_key: what `set` gives it (not found until then).
void var_key(Request&, VariableValue& v, uintptr_t) {
  v.set_not_found();
}

Status preconfiguration(ConfContext& cf) {
  static constexpr VariableDef kVars[] = {{"memcached_key", var_key, nullptr, kVarChangeable}};
  if (Status s = add_variables(cf, kVars); !s.ok()) return s;
  g_key_index = core_main_conf(cf).variables.index_of(cf, "memcached_key");
  return {};
}

Status set_pass(ConfContext& cf, const ConfNode& n, MemcachedLocConf& conf) {
  return set_cgi_pass(cf, n, conf.pass, memcached_handler);
}

MemcachedLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<MemcachedLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const MemcachedLocConf& prev, MemcachedLocConf& conf) {
  merge_cgi_pass(prev.pass, conf.pass);
  if (Status st = merge_upstream_settings(cf, "memcached", SettingsKind::Memcached, prev.up,
                                          conf.up, {}, conf.upstream);
      !st.ok()) {
    return st;
  }
  conf.gzip_flag.merge(prev.gzip_flag, 0);
  conf.upstream.group = conf.pass.group;
  conf.upstream.tag = &http_memcached_module;
  conf.upstream.buffering = false;     // relayed as it comes, as nginx's
  conf.upstream.intercept_404 = true;  // a miss is the client's 404 (error_page applies)
  return {};
}

using M = MemcachedLocConf;
constexpr Directive kOwnDirectives[] = {
    directive<set_pass>("memcached_pass", kHttpLocConf | kHttpLifConf | kTake1),
    directive<slot::num<&M::gzip_flag>>("memcached_gzip_flag", kHttpMainSrvLoc | kTake1),
};
constexpr auto kDirectives =
    join_directives(std::to_array(kOwnDirectives),
                    upstream_directives<M, &M::up, "memcached", SettingsKind::Memcached>());
static_assert(directives_of(kDirectives, &http_memcached_module));

}  // namespace

Module http_memcached_module{
    .name = "http_memcached",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
