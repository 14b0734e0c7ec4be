// The charset filter: `charset` names the response's charset in Content-Type (for charset_types),
// and when the response's own charset (`source_charset`, or the upstream's Content-Type parameter)
// differs and a `charset_map` joins the two, the body is recoded as it streams: byte to byte in
// place, a byte to its UTF-8 sequence, or UTF-8 to bytes (a sequence split across buffers is kept
// until its end comes; a character the map lacks becomes "&#N;", invalid UTF-8 "?"), exactly as
// nginx does. override_charset recodes a response that names its own charset; X-Accel-Charset from
// an upstream picks the charset. nginx: src/http/modules/ngx_http_charset_filter_module.c
#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/str.h"
#include "core/utf8.h"
#include "http/core_module.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_charset_filter_module;

namespace {

constexpr int kNoCharset = -2;        // a name no charset_map knows
constexpr int kCharsetOff = -3;       // `off`
constexpr int kCharsetVar = 1 << 20;  // at or above: a variable's index plus this

// A map between two charsets (charset_map src dst { ... }), both ways. Byte maps are 256 bytes each
// way; a map to UTF-8 keeps each byte's sequence and, back, pages of 256 code points to bytes.
struct CharsetTable {
  int src = 0;
  int dst = 0;
  bool utf8 = false;
  std::array<uint8_t, 256> src2dst{};  // byte maps
  std::array<uint8_t, 256> dst2src{};
  std::array<std::array<uint8_t, 4>, 256> to_utf8{};  // [0]: its length, then the bytes
  std::array<std::unique_ptr<std::array<uint8_t, 256>>, 256> from_utf8;  // by code point >> 8
};

enum class Recode : uint8_t { Bytes, ToUtf8, FromUtf8 };

// How to recode from one charset into another: a byte table, or the UTF-8 table and a direction.
struct Recoding {
  Recode kind = Recode::Bytes;
  const uint8_t* bytes = nullptr;
  const CharsetTable* table = nullptr;
};

struct Charset {
  std::string name;
  bool utf8 = false;
  std::vector<Recoding*> to;  // by destination index (nullptr: no map)
};

struct CharsetMainConf {
  static constexpr Module* kModule = &http_charset_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  std::vector<Charset> charsets;
  std::vector<std::unique_ptr<CharsetTable>> tables;
  std::vector<std::unique_ptr<Recoding>> recodings;
  std::vector<std::pair<int, int>> needed;  // (source, destination) pairs locations recode
};

struct CharsetLocConf {
  static constexpr Module* kModule = &http_charset_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<int> charset;
  Setting<int> source_charset;
  Setting<bool> override_charset;
  Setting<std::vector<std::string>> types;  // lower case
};

struct CharsetCtx {
  static constexpr Module* kModule = &http_charset_filter_module;
  Recoding recode;
  int charset = kNoCharset;  // the main request's, for its subrequests
  std::string_view charset_name;
  uint8_t saved[4] = {};  // FromUtf8: the start of a sequence the next buffer ends
  size_t saved_len = 0;
  ShadowChains chains;
};

int find_charset(const CharsetMainConf& mcf, std::string_view name) {
  for (size_t i = 0; i < mcf.charsets.size(); i++) {
    if (iequals(mcf.charsets[i].name, name)) return static_cast<int>(i);
  }
  return kNoCharset;
}

// A configured charset (index, off, or variable) as this request sees it: its index and name.
int resolve(Request& r, int configured, std::string_view& name) {
  const auto& mcf = r.main_cf<CharsetMainConf>();
  if (configured == kCharsetOff) {
    name = {};
    return kCharsetOff;
  }
  if (configured < kCharsetVar) {
    name = mcf.charsets[static_cast<size_t>(configured)].name;
    return configured;
  }
  VariableValue* v = get_indexed_variable(r, configured - kCharsetVar);
  if (v == nullptr || v->not_found) return kCharsetOff - 1;  // an error
  name = v->view();
  return find_charset(mcf, name);
}

constexpr int kError = kCharsetOff - 1;
constexpr int kDeclined = kCharsetOff - 2;

// The charset the response is to name, for the main request. nginx: ngx_http_destination_charset
int destination_charset(Request& r, std::string_view& name) {
  if (r.headers_out.content_type.empty()) return kDeclined;
  const auto& mcf = r.main_cf<CharsetMainConf>();
  if (!r.headers_out.override_charset.empty()) {
    name = r.headers_out.override_charset;
    int c = find_charset(mcf, name);
    if (c != kNoCharset) return c;
    log_error(LogLevel::Error, r.log(), 0, "unknown charset \"%.*s\" to override",
              static_cast<int>(name.size()), name.data());
    return kDeclined;
  }
  const auto& conf = r.loc<CharsetLocConf>();
  if (*conf.charset == kCharsetOff) return kDeclined;
  if (!r.headers_out.charset.empty()) {
    if (!*conf.override_charset) return kDeclined;
  } else if (!content_type_in(r, *conf.types)) {
    return kDeclined;
  }
  int c = resolve(r, *conf.charset, name);
  return c == kCharsetOff - 1 ? kError : c;
}

// A subrequest's output takes its main request's charset. nginx: ngx_http_main_request_charset
int main_request_charset(Request& r, std::string_view& name) {
  Request& m = *r.main;
  if (auto* ctx = m.get_ctx<CharsetCtx>()) {
    name = ctx->charset_name;
    return ctx->charset;
  }
  if (m.headers_out.charset.empty()) return kDeclined;
  auto* ctx = m.pool->make<CharsetCtx>();
  ctx->charset_name = m.headers_out.charset;
  ctx->charset = find_charset(r.main_cf<CharsetMainConf>(), ctx->charset_name);
  m.set_ctx(ctx);
  name = ctx->charset_name;
  return ctx->charset;
}

// The charset the body is in. nginx: ngx_http_source_charset
int source_charset(Request& r, std::string_view& name) {
  if (!r.headers_out.charset.empty()) {
    name = r.headers_out.charset;
    return find_charset(r.main_cf<CharsetMainConf>(), name);
  }
  int c = resolve(r, *r.loc<CharsetLocConf>().source_charset, name);
  return c == kCharsetOff - 1 ? kError : c;
}

// The charset the response names (none for a redirect: old browsers took it for the next page's).
void set_charset(Request& r, std::string_view name) {
  if (!r.is_main()) return;
  int status = r.headers_out.status;
  r.headers_out.charset = status == 301 || status == 302 ? std::string_view{} : name;
}

// The response names the destination charset, without a charset parameter of its own.
void name_charset(Request& r, std::string_view dst) {
  r.headers_out.content_type = r.headers_out.content_type.substr(0, r.headers_out.content_type_len);
  set_charset(r, dst);
}

Code charset_header_filter(Request& r, HeaderNext next) {
  std::string_view dst, src;
  int charset = r.is_main() ? destination_charset(r, dst) : main_request_charset(r, dst);
  if (charset == kError) return Rc::Error;
  if (charset == kDeclined) return next(r);
  int source = source_charset(r, src);
  if (source == kError) return Rc::Error;
  if (source == kCharsetOff) {
    set_charset(r, dst);
    return next(r);
  }
  bool no_map = false;
  if (charset == kNoCharset || source == kNoCharset) {
    if (source != charset || !iequals(dst, src)) {
      no_map = true;
    } else {
      set_charset(r, dst);
      return next(r);
    }
  } else if (source == charset) {
    name_charset(r, dst);
    return next(r);
  } else if (r.headers_out.content_encoding != nullptr &&
             !r.headers_out.content_encoding->value.empty()) {
    return next(r);  // an encoded body cannot be recoded
  } else {
    const auto& mcf = r.main_cf<CharsetMainConf>();
    const Recoding* rec =
        mcf.charsets[static_cast<size_t>(source)].to[static_cast<size_t>(charset)];
    if (rec == nullptr) {
      no_map = true;
    } else {
      name_charset(r, dst);
      auto* ctx = r.pool->make<CharsetCtx>();
      ctx->recode = *rec;
      ctx->charset = charset;
      ctx->charset_name = mcf.charsets[static_cast<size_t>(charset)].name;
      r.set_ctx(ctx);
      r.filter_need_in_memory = true;
      if (rec->kind != Recode::Bytes && r.is_main()) {
        clear_content_length(r);
      } else {
        r.filter_need_temporary = true;  // recoded in place
      }
      return next(r);
    }
  }
  if (no_map) {
    log_error(LogLevel::Error, r.log(), 0,
              "no \"charset_map\" between the charsets \"%.*s\" and \"%.*s\"",
              static_cast<int>(src.size()), src.data(), static_cast<int>(dst.size()), dst.data());
  }
  return next(r);
}

// --- recoding --------------------------------------------------------------------------------

// The longest a character's output can be: "&#1114111;".
constexpr size_t kEntityMax = 10;

// An output buffer of at least `size` bytes, from the context's free list when one is large enough.
Buffer* out_buffer(Request& r, CharsetCtx& ctx, size_t size) {
  for (ChainLink** ll = &ctx.chains.free; *ll != nullptr; ll = &(*ll)->next) {
    Buffer* b = (*ll)->buf;
    if (static_cast<size_t>(b->end - b->start) >= size) {
      ChainLink* cl = *ll;
      *ll = cl->next;
      r.pool->free_link(cl);
      b->pos = b->last = b->start;
      b->shadow = nullptr;
      b->flush = b->last_buf = b->last_in_chain = b->sync = false;
      b->temporary = true;
      return b;
    }
  }
  Buffer* b = Buffer::create_temp(*r.pool, size);
  b->tag = &http_charset_filter_module;
  return b;
}

void emit_code_point(Buffer& b, const CharsetTable& t, uint32_t n) {
  if (n < 0x10000) {
    if (const auto& page = t.from_utf8[n >> 8]) {
      if (uint8_t c = (*page)[n & 0xff]; c != 0) {
        *b.last++ = static_cast<char>(c);
        return;
      }
    }
  } else if (n > 0x10ffff) {
    *b.last++ = '?';
    return;
  }
  b.last = put(b.last, "&#");
  b.last = put_uint(b.last, n);
  *b.last++ = ';';
}

// Recodes one input buffer into new buffers (appended at *tail); the last of them shadows the
// input, which is given back when that one is sent.
void recode_into(Request& r, CharsetCtx& ctx, Buffer* in, ChainLink**& tail) {
  auto* src = reinterpret_cast<const uint8_t*>(in->pos);
  const auto* end = reinterpret_cast<const uint8_t*>(in->last);
  const Recoding& rec = ctx.recode;
  size_t want = static_cast<size_t>(end - src) * (rec.kind == Recode::ToUtf8 ? 3 : 1) + kEntityMax;
  Buffer* b = out_buffer(r, ctx, std::min<size_t>(want, 32768));
  auto next_buffer = [&] {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = b;
    *tail = cl;
    tail = &cl->next;
    b = out_buffer(r, ctx, 32768);
  };
  if (rec.kind == Recode::ToUtf8) {
    for (; src < end; src++) {
      if (b->end - b->last < 4) next_buffer();
      const auto& seq = rec.table->to_utf8[*src];
      for (uint8_t i = 1; i <= seq[0]; i++) *b->last++ = static_cast<char>(seq[i]);
    }
  } else {
    const CharsetTable& t = *rec.table;
    if (ctx.saved_len != 0) {
      // Complete the sequence the last buffer began.
      uint8_t seq[8];
      size_t have = ctx.saved_len;
      std::memcpy(seq, ctx.saved, have);
      size_t take = std::min<size_t>(4 - have, static_cast<size_t>(end - src));
      std::memcpy(seq + have, src, take);
      const uint8_t* p = seq;
      uint32_t n = utf8_decode(p, seq + have + take);
      if (n == kUtf8Incomplete && have + take < 4) {
        std::memcpy(ctx.saved + have, src, take);
        ctx.saved_len += take;
        src = end;
      } else {
        if (n == kUtf8Incomplete) {
          *b->last++ = '?';
          p = seq + 4;
        } else {
          emit_code_point(*b, t, n);
        }
        src += (p - seq) - static_cast<ptrdiff_t>(have);
        ctx.saved_len = 0;
      }
    }
    while (src < end) {
      if (static_cast<size_t>(b->end - b->last) < kEntityMax) next_buffer();
      if (*src < 0x80) {
        *b->last++ = static_cast<char>(*src++);
        continue;
      }
      uint32_t n = utf8_decode(src, end);
      if (n == kUtf8Incomplete) {
        ctx.saved_len = static_cast<size_t>(end - src);
        std::memcpy(ctx.saved, src, ctx.saved_len);
        break;
      }
      if (n == kUtf8Invalid) {
        *b->last++ = '?';
        continue;
      }
      emit_code_point(*b, t, n);
    }
  }
  b->last_buf = in->last_buf;
  b->last_in_chain = in->last_in_chain;
  b->flush = in->flush;
  b->shadow = in;
  if (b->last == b->pos && !b->last_buf && !b->flush) b->sync = true;  // nothing yet: a marker
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  *tail = cl;
  tail = &cl->next;
}

Rc charset_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<CharsetCtx>();
  if (ctx == nullptr || (ctx->recode.table == nullptr && ctx->recode.bytes == nullptr)) {
    return next(r, in);
  }
  if (ctx->recode.kind == Recode::Bytes) {
    const uint8_t* table = ctx->recode.bytes;
    for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
      for (char* p = cl->buf->pos; p < cl->buf->last; p++) {
        *p = static_cast<char>(table[static_cast<uint8_t>(*p)]);
      }
      if (cl->buf->size() != 0) cl->buf->in_file = false;  // the bytes in memory are the answer
    }
    return next(r, in);
  }
  ChainLink* out = nullptr;
  ChainLink** tail = &out;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    if (cl->buf->size() == 0) {
      ChainLink* keep = r.pool->alloc_link();
      keep->buf = cl->buf;
      *tail = keep;
      tail = &keep->next;
      continue;
    }
    recode_into(r, *ctx, cl->buf, tail);
  }
  *tail = nullptr;
  Rc rc = next(r, out);
  // What went out gives its buffers back, and the input each one shadows to its owner.
  ctx->chains.update(*r.pool, out, tail, &http_charset_filter_module);
  return rc;
}

// --- configuration ---------------------------------------------------------------------------

int add_charset(CharsetMainConf& mcf, std::string_view name) {
  int c = find_charset(mcf, name);
  if (c != kNoCharset) return c;
  Charset cs;
  cs.name = std::string(name);
  cs.utf8 = iequals(name, "utf-8") || iequals(name, "utf8");
  mcf.charsets.push_back(std::move(cs));
  return static_cast<int>(mcf.charsets.size() - 1);
}

std::optional<uint32_t> hex(std::string_view s) {
  if (s.empty() || s.size() > 8) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return std::nullopt;
    v = v * 16 + static_cast<uint32_t>(d);
  }
  return v;
}

// charset_map src dst { XX YY; ... }: YY a byte, or for utf-8 the character's UTF-8 bytes in hex.
Status charset_map(ConfContext& cf, const ConfNode& n, CharsetMainConf& mcf) {
  int src = add_charset(mcf, n.args[1]);
  int dst = add_charset(mcf, n.args[2]);
  if (src == dst) {
    return cf.errorf("\"charset_map\" between the same charsets \"%s\" and \"%s\"",
                     n.args[1].c_str(), n.args[2].c_str());
  }
  for (const auto& t : mcf.tables) {
    if ((t->src == src && t->dst == dst) || (t->src == dst && t->dst == src)) {
      return cf.errorf("duplicate \"charset_map\" between \"%s\" and \"%s\"", n.args[1].c_str(),
                       n.args[2].c_str());
    }
  }
  auto t = std::make_unique<CharsetTable>();
  t->src = src;
  t->dst = dst;
  t->utf8 = iequals(n.args[2], "utf-8");
  for (int i = 0; i < 256; i++) {
    auto b = static_cast<uint8_t>(i);
    t->src2dst[b] = t->dst2src[b] = i < 128 ? b : '?';
    t->to_utf8[b] = {1, static_cast<uint8_t>(i < 128 ? b : '?'), 0, 0};
  }
  if (t->utf8) {
    t->from_utf8[0] = std::make_unique<std::array<uint8_t, 256>>();
    for (int i = 0; i < 128; i++)
      (*t->from_utf8[0])[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  }
  for (const ConfNode& line : n.children) {
    ConfContext at = cf;
    at.node = &line;
    if (line.block || line.args.size() != 2) return at.error("invalid parameters number");
    auto from = hex(line.args[0]);
    if (!from || line.args[0].size() != 2) {
      return at.errorf("invalid value \"%s\"", line.args[0].c_str());
    }
    auto b = static_cast<uint8_t>(*from);
    const std::string& to = line.args[1];
    if (!t->utf8) {
      auto v = hex(to);
      if (!v || to.size() != 2) return at.errorf("invalid value \"%s\"", to.c_str());
      t->src2dst[b] = static_cast<uint8_t>(*v);
      t->dst2src[static_cast<uint8_t>(*v)] = b;
      continue;
    }
    if (to.size() % 2 != 0 || to.size() > 6 || to.empty()) {
      return at.errorf("invalid value \"%s\"", to.c_str());
    }
    std::array<uint8_t, 4> seq{static_cast<uint8_t>(to.size() / 2), 0, 0, 0};
    for (size_t k = 0; k < to.size() / 2; k++) {
      auto v = hex(to.substr(k * 2, 2));
      if (!v) return at.errorf("invalid value \"%s\"", to.c_str());
      seq[k + 1] = static_cast<uint8_t>(*v);
    }
    const uint8_t* p = seq.data() + 1;
    uint32_t code = utf8_decode(p, seq.data() + 1 + seq[0]);
    if (code > 0xffff) return at.errorf("invalid value \"%s\"", to.c_str());
    t->to_utf8[b] = seq;
    auto& page = t->from_utf8[code >> 8];
    if (!page) page = std::make_unique<std::array<uint8_t, 256>>();
    (*page)[code & 0xff] = b;
  }
  mcf.tables.push_back(std::move(t));
  return {};
}

// charset and source_charset: a name, `off`, or a variable.
template <Setting<int> CharsetLocConf::*kField>
Status set_charset_slot(ConfContext& cf, const ConfNode& n, CharsetLocConf& conf) {
  auto& f = conf.*kField;
  if (f.set) return Status::error("is duplicate");
  const std::string& v = n.args[1];
  if (kField == &CharsetLocConf::charset && v == "off") {
    f = kCharsetOff;
    return {};
  }
  if (v.starts_with('$')) {
    f = kCharsetVar + core_main_conf(cf).variables.index_of(cf, std::string_view(v).substr(1));
    return {};
  }
  f = add_charset(conf_of<CharsetMainConf>(cf.http->main_conf), v);
  return {};
}

CharsetMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<CharsetMainConf>();
}

CharsetLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<CharsetLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const CharsetLocConf& prev, CharsetLocConf& conf) {
  conf.charset.merge(prev.charset, kCharsetOff);
  conf.source_charset.merge(prev.source_charset, kCharsetOff);
  conf.override_charset.merge(prev.override_charset, false);
  conf.types.merge(prev.types, {"text/html", "text/xml", "text/plain", "text/vnd.wap.wml",
                                "application/javascript", "application/rss+xml"});
  int src = *conf.source_charset;
  int dst = *conf.charset;
  if (src == kCharsetOff || dst == kCharsetOff || src == dst || src >= kCharsetVar ||
      dst >= kCharsetVar) {
    return {};
  }
  // Known at load: the map must exist (checked once every map is read).
  auto& needed = conf_of<CharsetMainConf>(cf.http->main_conf).needed;
  if (std::find(needed.begin(), needed.end(), std::pair{src, dst}) == needed.end()) {
    needed.emplace_back(src, dst);
  }
  return {};
}

// Each map gives its two charsets a way into each other.
Status init(ConfContext& cf) {
  auto& mcf = conf_of<CharsetMainConf>(cf.http->main_conf);
  for (const auto& pair : mcf.needed) {
    int src = pair.first;
    int dst = pair.second;
    bool found = std::any_of(mcf.tables.begin(), mcf.tables.end(), [&](const auto& t) {
      return (t->src == src && t->dst == dst) || (t->src == dst && t->dst == src);
    });
    if (!found) {
      // As nginx, a message of the whole configuration: no file and line.
      return Status::located(std::string("no \"charset_map\" between the charsets \"") +
                             mcf.charsets[static_cast<size_t>(src)].name + "\" and \"" +
                             mcf.charsets[static_cast<size_t>(dst)].name + "\"");
    }
  }
  for (Charset& c : mcf.charsets) c.to.assign(mcf.charsets.size(), nullptr);
  for (const auto& t : mcf.tables) {
    auto forward = std::make_unique<Recoding>();
    auto back = std::make_unique<Recoding>();
    forward->table = back->table = t.get();
    if (t->utf8) {
      forward->kind = Recode::ToUtf8;
      back->kind = Recode::FromUtf8;
    } else {
      forward->bytes = t->src2dst.data();
      back->bytes = t->dst2src.data();
    }
    mcf.charsets[static_cast<size_t>(t->src)].to[static_cast<size_t>(t->dst)] = forward.get();
    mcf.charsets[static_cast<size_t>(t->dst)].to[static_cast<size_t>(t->src)] = back.get();
    mcf.recodings.push_back(std::move(forward));
    mcf.recodings.push_back(std::move(back));
  }
  // Unconfigured, it would only log X-Accel-Charset names no map knows, as nginx does: weir spares
  // every request the call instead.
  if (!cf.configured(http_charset_filter_module)) return {};
  register_header_filter(cf, FilterId::Charset, charset_header_filter);
  register_body_filter(cf, FilterId::Charset, charset_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<set_charset_slot<&CharsetLocConf::charset>>("charset", kHttpMainSrvLocLif | kTake1),
    directive<set_charset_slot<&CharsetLocConf::source_charset>>("source_charset",
                                                                 kHttpMainSrvLocLif | kTake1),
    directive<slot::flag<&CharsetLocConf::override_charset>>("override_charset",
                                                             kHttpMainSrvLocLif | kFlag),
    directive<slot::mime_types<&CharsetLocConf::types>>("charset_types",
                                                        kHttpMainSrvLoc | kOneMore),
    directive<charset_map>("charset_map", kHttpMainConf | kBlock | kTake2),
};
static_assert(directives_of(kDirectives, &http_charset_filter_module));

}  // namespace

Module http_charset_filter_module{
    .name = "http_charset_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
