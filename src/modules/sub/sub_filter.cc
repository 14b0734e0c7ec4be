// The sub filter: in responses of sub_filter_types (text/html), each sub_filter string is replaced
// as the body streams, matched without regard to case (sub_match.h finds them, across buffer
// boundaries too). With sub_filter_once (on by default) a string is replaced where it first
// appears only, and once every string has been the rest of the body passes untouched. Strings and
// replacements may hold variables: strings are evaluated as the response's header passes (an empty
// one is dropped), a replacement when first used. Content-Length goes, and so do Last-Modified and
// the ETag unless sub_filter_last_modified is on (the ETag then turns weak). As in nginx, a body
// with a Content-Encoding is searched as it is.
// nginx: src/http/modules/ngx_http_sub_filter_module.c

#include <cstring>
#include <string>
#include <vector>

#include "core/str.h"
#include "http/core_module.h"
#include "http/script.h"
#include "modules/sub/sub_match.h"

namespace weir::http {

extern Module http_sub_filter_module;

namespace {

// nginx's limit: the trial order is kept in bytes.
constexpr size_t kMaxPairs = 255;

struct SubPair {
  ComplexValue match;  // compiled from the lower-cased string
  ComplexValue value;
};

struct SubLocConf {
  static constexpr Module* kModule = &http_sub_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<SubPair>* pairs = nullptr;  // a level with any replaces the outer ones
  bool dynamic = false;                   // a string has variables: the table is made per request
  const SubTable* table = nullptr;        // otherwise made at load
  Setting<std::vector<std::string>> types;
  Setting<bool> once, last_modified;
};

struct SubCtx {
  static constexpr Module* kModule = &http_sub_filter_module;
  const SubTable* table = nullptr;
  const std::vector<SubPair>* pairs = nullptr;
  char* held = nullptr;  // text that may begin a match: less than the longest string
  size_t held_len = 0;
  bool* applied = nullptr;             // sub_filter_once: by pattern (trial order)
  std::string_view* values = nullptr;  // by pattern, once evaluated
  bool* evaluated = nullptr;
  size_t applied_count = 0;
  bool once = false;
  bool done = false;  // once, and every string replaced: the rest passes as it is
  size_t made = 0;    // buffers made
  Buffer* last = nullptr;
  ChainLink* out = nullptr;
  ChainLink** out_tail = &out;
  ShadowChains chains;
};

// The table of strings in trial order, in pool (strings already lower case and not empty).
const SubTable* make_table(Pool& pool, std::span<const std::string_view> texts,
                           std::span<const uint32_t> pairs) {
  auto* patterns = pool.make_array<SubPattern>(texts.size());
  for (size_t i = 0; i < texts.size(); i++) patterns[i] = SubPattern{texts[i], pairs[i]};
  auto* t = pool.make<SubTable>();
  build_sub_table({patterns, texts.size()}, *t);
  return t;
}

// The strings of a request, when they have variables: evaluated, lower-cased, empty ones dropped.
const SubTable* request_table(Request& r, const std::vector<SubPair>& pairs) {
  std::string_view* texts = r.pool->make_array<std::string_view>(pairs.size());
  uint32_t* which = r.pool->make_array<uint32_t>(pairs.size());
  size_t n = 0;
  for (size_t i = 0; i < pairs.size(); i++) {
    std::string_view m = pairs[i].match.eval(r);
    if (m.empty()) continue;
    char* low = r.pool->alloc_bytes(m.size());
    lowercase_into(low, m);
    texts[n] = {low, m.size()};
    which[n++] = static_cast<uint32_t>(i);
  }
  if (n == 0) return nullptr;
  return make_table(*r.pool, {texts, n}, {which, n});
}

Code sub_header_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<SubLocConf>();
  if (conf.pairs == nullptr || r.headers_out.content_length_n == 0 ||
      !content_type_in(r, *conf.types)) {
    return next(r);
  }
  const SubTable* table = conf.dynamic ? request_table(r, *conf.pairs) : conf.table;
  if (table == nullptr) return next(r);
  auto* ctx = r.pool->make<SubCtx>();
  size_t n = table->patterns.size();
  ctx->table = table;
  ctx->pairs = conf.pairs;
  ctx->held = r.pool->alloc_bytes(table->max_len);
  ctx->values = r.pool->make_array<std::string_view>(n);
  ctx->evaluated = r.pool->make_array<bool>(n);
  ctx->once = *conf.once;
  if (ctx->once) ctx->applied = r.pool->make_array<bool>(n);
  r.set_ctx(ctx);
  r.filter_need_in_memory = true;
  if (r.is_main()) {
    clear_content_length(r);
    body_changed_validators(r, *conf.last_modified);
  }
  return next(r);
}

// --- the body ----------------------------------------------------------------------------------

void append(SubCtx& ctx, ChainLink* cl) {
  cl->next = nullptr;
  *ctx.out_tail = cl;
  ctx.out_tail = &cl->next;
}

// A buffer of this filter, empty, at the end of the output.
Buffer* add_buffer(Request& r, SubCtx& ctx) {
  ChainLink* cl = chain_get_free_buf(*r.pool, &ctx.chains.free);
  *cl->buf = Buffer{};
  cl->buf->tag = &http_sub_filter_module;
  append(ctx, cl);
  ctx.made++;
  ctx.last = cl->buf;
  return cl->buf;
}

void add_text(Request& r, SubCtx& ctx, std::string_view s) {
  if (s.empty()) return;
  Buffer* b = add_buffer(r, ctx);
  b->start = b->pos = const_cast<char*>(s.data());
  b->end = b->last = b->pos + s.size();
  b->memory = true;
}

// What sub_scan finds, turned into output.
struct Emitter {
  Request& r;
  SubCtx& ctx;

  void text(std::string_view s, bool from_held) {
    add_text(r, ctx, from_held ? r.pool->dup(s) : s);
  }
  bool match(size_t i) {
    if (!ctx.evaluated[i]) {
      ctx.values[i] = (*ctx.pairs)[ctx.table->patterns[i].pair].value.eval(r);
      ctx.evaluated[i] = true;
    }
    add_text(r, ctx, ctx.values[i]);
    if (!ctx.once) return true;
    ctx.applied[i] = true;
    if (++ctx.applied_count < ctx.table->patterns.size()) return true;
    ctx.done = true;
    return false;
  }
};

// One input buffer into the output. The last buffer made for it carries its flags and shadows it:
// the input goes back to its owner when that one has been sent (what was made before it points
// into the input too).
void take(Request& r, SubCtx& ctx, ChainLink* in) {
  Buffer* b = in->buf;
  if (ctx.done) {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = b;
    append(ctx, cl);
    return;
  }
  size_t made = ctx.made;
  if (b->in_memory() && b->pos != b->last) {
    std::string_view held(ctx.held, ctx.held_len);
    std::string_view chunk = b->view();
    Emitter e{r, ctx};
    size_t keep = sub_scan(*ctx.table, ctx.applied, held, chunk, e);
    size_t total = held.size() + chunk.size();
    if (keep < held.size()) {
      std::memmove(ctx.held, ctx.held + keep, held.size() - keep);
      std::memcpy(ctx.held + held.size() - keep, chunk.data(), chunk.size());
    } else {
      std::memcpy(ctx.held, chunk.data() + (keep - held.size()), total - keep);
    }
    ctx.held_len = total - keep;
  }
  if ((b->last_buf || b->last_in_chain) && ctx.held_len != 0) {
    // The body ends inside a string that might have matched: it goes out as it is, as nginx's.
    add_text(r, ctx, r.pool->dup({ctx.held, ctx.held_len}));
    ctx.held_len = 0;
  }
  Buffer* tail = ctx.made != made ? ctx.last : nullptr;
  if (tail == nullptr) {
    tail = add_buffer(r, ctx);
    tail->sync = true;
  }
  tail->last_buf = b->last_buf;
  tail->last_in_chain = b->last_in_chain;
  tail->flush = b->flush;
  tail->recycled = b->recycled;
  tail->shadow = b;
}

Rc sub_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<SubCtx>();
  if (ctx == nullptr) return next(r, in);
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) take(r, *ctx, cl);
  Rc rc = next(r, ctx->out);
  // What went out gives its buffers back, and the inputs they shadow to their owners.
  ctx->chains.update(*r.pool, ctx->out, ctx->out_tail, &http_sub_filter_module);
  ctx->out = nullptr;
  ctx->out_tail = &ctx->out;
  return rc;
}

// --- configuration -----------------------------------------------------------------------------

// sub_filter string replacement
Status add_pair(ConfContext& cf, const ConfNode& n, SubLocConf& conf) {
  if (n.args[1].empty()) return cf.error("empty search pattern");
  if (conf.pairs == nullptr) conf.pairs = cf.pool.make<std::vector<SubPair>>();
  if (conf.pairs->size() == kMaxPairs) return cf.error("number of search patterns exceeds 255");
  SubPair pair;
  if (Status s = pair.match.compile(cf, lowercased(n.args[1])); !s.ok()) return s;
  if (Status s = pair.value.compile(cf, n.args[2]); !s.ok()) return s;
  if (!pair.match.is_static()) conf.dynamic = true;
  conf.pairs->push_back(std::move(pair));
  return {};
}

SubLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<SubLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const SubLocConf& prev, SubLocConf& conf) {
  conf.once.merge(prev.once, true);
  conf.last_modified.merge(prev.last_modified, false);
  conf.types.merge(prev.types, {"text/html"});
  if (conf.pairs == nullptr) {
    conf.pairs = prev.pairs;
    conf.dynamic = prev.dynamic;
    conf.table = prev.table;
  }
  if (conf.pairs != nullptr && !conf.dynamic && conf.table == nullptr) {
    std::vector<std::string_view> texts;
    std::vector<uint32_t> which;
    for (size_t i = 0; i < conf.pairs->size(); i++) {
      texts.push_back(cf.pool.dup((*conf.pairs)[i].match.static_value()));
      which.push_back(static_cast<uint32_t>(i));
    }
    conf.table = make_table(cf.pool, texts, which);
  }
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_sub_filter_module)) return {};
  register_header_filter(cf, FilterId::Sub, sub_header_filter);
  register_body_filter(cf, FilterId::Sub, sub_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<add_pair>("sub_filter", kHttpMainSrvLoc | kTake2),
    directive<slot::mime_types<&SubLocConf::types>>("sub_filter_types", kHttpMainSrvLoc | kOneMore),
    directive<slot::flag<&SubLocConf::once>>("sub_filter_once", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&SubLocConf::last_modified>>("sub_filter_last_modified",
                                                      kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_sub_filter_module));

}  // namespace

Module http_sub_filter_module{
    .name = "http_sub_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
