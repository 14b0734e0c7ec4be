// The brotli filter (weir's, with the directives of the widely used ngx_brotli module): responses
// of brotli_types (text/html always) the gzip filter would take go out in brotli to clients whose
// Accept-Encoding prefers "br" (content_coding.h), streaming through the codec engine in at most
// brotli_buffers output buffers. A flushed input buffer is a flushed brotli block; the last ends
// the stream. Vary: Accept-Encoding goes with every response it could have encoded.
#include <brotli/encode.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/config.h"
#include "http/codec_stream.h"
#include "http/content_coding.h"
#include "http/core_module.h"

namespace weir::http {

extern Module http_brotli_filter_module;

namespace {

struct BrotliLocConf {
  static constexpr Module* kModule = &http_brotli_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  Setting<bool> enable;
  Setting<Bufs> bufs;
  Setting<int> level;
  Setting<int> lgwin;  // brotli_window as a power of two
  Setting<off_t> min_length;
  Setting<std::vector<std::string>> types;
};

struct BrotliCtx {
  static constexpr Module* kModule = &http_brotli_filter_module;
  CodecStream s;
  BrotliEncoderState* state = nullptr;
  uint64_t in = 0;
  uint64_t out = 0;
};

bool brotli_eligible(Request& r) {
  const auto& conf = r.loc<BrotliLocConf>();
  return compressible(r, *conf.enable, *conf.min_length, *conf.types) && compression_allowed(r);
}

Code brotli_header_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<BrotliLocConf>();
  if (!take_coding(r, Coding::Brotli,
                   compressible(r, *conf.enable, *conf.min_length, *conf.types))) {
    return next(r);
  }
  auto* ctx = r.pool->make<BrotliCtx>();
  ctx->s.init(r, &http_brotli_filter_module, *conf.bufs);
  r.set_ctx(ctx);
  set_encoded_headers(r, coding_token(Coding::Brotli));
  return next(r);
}

// The encoder's blocks (hash tables, ring buffer: the same few sizes for a level and window), kept
// by the worker for the next response: allocating them afresh for every response grew and trimmed
// the heap each time, and the page faults of touching new memory cost as much as compressing.
// Exact sizes are reused, up to kBlockCacheMax bytes; the sanitizer build frees every block.
constexpr size_t kBlockCacheMax = 16 << 20;
constexpr size_t kBlockHeader = 16;  // the block's size, before it (keeps malloc's alignment)

struct BlockCache {
  std::vector<std::pair<size_t, void*>> free;
  size_t bytes = 0;
  ~BlockCache() {
    for (auto& [size, p] : free) std::free(p);
  }
};
BlockCache g_blocks;

void* block_alloc(void*, size_t size) {
  for (size_t i = 0; i < g_blocks.free.size(); i++) {
    if (g_blocks.free[i].first == size) {
      void* p = g_blocks.free[i].second;
      g_blocks.free[i] = g_blocks.free.back();
      g_blocks.free.pop_back();
      g_blocks.bytes -= size;
      return static_cast<char*>(p) + kBlockHeader;
    }
  }
  void* p = std::malloc(size + kBlockHeader);
  if (p == nullptr) return nullptr;
  *static_cast<size_t*>(p) = size;
  return static_cast<char*>(p) + kBlockHeader;
}

void block_free(void*, void* block) {
  if (block == nullptr) return;
  void* p = static_cast<char*>(block) - kBlockHeader;
  size_t size = *static_cast<size_t*>(p);
  if (kRecycleMemory && g_blocks.bytes + size <= kBlockCacheMax) {
    g_blocks.free.emplace_back(size, p);
    g_blocks.bytes += size;
    return;
  }
  std::free(p);
}

void end(BrotliCtx& ctx) {
  if (ctx.state != nullptr) BrotliEncoderDestroyInstance(ctx.state);
  ctx.state = nullptr;
}

// A cleanup ends the encoder if the response is cut short.
Rc start(Request& r, BrotliCtx& ctx, const BrotliLocConf& conf) {
  ctx.state = BrotliEncoderCreateInstance(block_alloc, block_free, nullptr);
  if (ctx.state == nullptr) {
    log_error(LogLevel::Alert, r.log(), 0, "BrotliEncoderCreateInstance() failed");
    return Rc::Error;
  }
  r.pool->add_cleanup([](void* c) { end(*static_cast<BrotliCtx*>(c)); }, &ctx);
  int lgwin = *conf.lgwin;
  off_t len = r.headers_out.content_length_n;
  // No larger a window than the response needs.
  while (len > 0 && lgwin > BROTLI_MIN_WINDOW_BITS && len <= (off_t{1} << (lgwin - 1))) lgwin--;
  BrotliEncoderSetParameter(ctx.state, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(*conf.level));
  BrotliEncoderSetParameter(ctx.state, BROTLI_PARAM_LGWIN, static_cast<uint32_t>(lgwin));
  if (len > 0) {
    BrotliEncoderSetParameter(ctx.state, BROTLI_PARAM_SIZE_HINT,
                              static_cast<uint32_t>(std::min<off_t>(len, 1 << 30)));
  }
  ctx.s.started = true;
  return Rc::Ok;
}

BrotliEncoderOperation brotli_op(CodecFlush f) {
  switch (f) {
    case CodecFlush::None:
      return BROTLI_OPERATION_PROCESS;
    case CodecFlush::Sync:
      return BROTLI_OPERATION_FLUSH;
    case CodecFlush::Finish:
      return BROTLI_OPERATION_FINISH;
  }
  return BROTLI_OPERATION_PROCESS;
}

// One BrotliEncoderCompressStream call and what it made of the output buffer.
CodecStep brotli_step(CodecStream& s, void* data) {
  auto& ctx = *static_cast<BrotliCtx*>(data);
  size_t in_before = s.avail_in;
  size_t out_before = s.avail_out;
  if (!BrotliEncoderCompressStream(ctx.state, brotli_op(s.flush), &s.avail_in, &s.next_in,
                                   &s.avail_out, &s.next_out, nullptr)) {
    log_error(LogLevel::Alert, s.r->log(), 0, "BrotliEncoderCompressStream() failed");
    return CodecStep::Error;
  }
  ctx.in += in_before - s.avail_in;
  ctx.out += out_before - s.avail_out;
  s.after_call();
  bool pending = s.avail_in != 0 || BrotliEncoderHasMoreOutput(ctx.state);
  if (s.flush == CodecFlush::Finish && BrotliEncoderIsFinished(ctx.state)) {
    end(ctx);
    return s.pass_last();
  }
  if (s.avail_out == 0) return s.pass_full();
  s.redo = false;
  if (s.flush == CodecFlush::Sync && !pending) return s.pass_flush();
  return CodecStep::More;
}

Rc brotli_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<BrotliCtx>();
  if (ctx == nullptr || ctx->s.done || r.header_only) return next(r, in);
  if (!ctx->s.started && start(r, *ctx, r.loc<BrotliLocConf>()) != Rc::Ok) {
    ctx->s.done = true;
    return Rc::Error;
  }
  ctx->s.add_input(in);
  Rc rc = run_codec_stream(ctx->s, next, brotli_step, ctx);
  if (rc == Rc::Error) {
    end(*ctx);
    ctx->s.done = true;
  }
  return rc;
}

void var_brotli_ratio(Request& r, VariableValue& v, uintptr_t) {
  auto* ctx = r.get_ctx<BrotliCtx>();
  if (ctx == nullptr || !ctx->s.done) return v.set_not_found();
  ratio_variable(r, v, ctx->in, ctx->out);
}

constexpr VariableDef kVars[] = {
    {"brotli_ratio", var_brotli_ratio, nullptr, kVarNoCacheable},
};

// --- configuration ---------------------------------------------------------------------------

Status set_level(ConfContext& cf, const ConfNode& n, BrotliLocConf& conf) {
  if (conf.level.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return Status::error("invalid number");
  if (*v > BROTLI_MAX_QUALITY) return cf.error("value must be between 0 and 11");
  conf.level = static_cast<int>(*v);
  return {};
}

// brotli_window: a power of two from 1k to 16m.
Status set_window(ConfContext&, const ConfNode& n, BrotliLocConf& conf) {
  if (conf.lgwin.set) return Status::error("is duplicate");
  auto v = parse_size(n.args[1]);
  if (!v) return Status::error("invalid value");
  for (int bits = BROTLI_MIN_WINDOW_BITS; bits <= BROTLI_MAX_WINDOW_BITS; bits++) {
    if (*v == (int64_t{1} << bits)) {
      conf.lgwin = bits;
      return {};
    }
  }
  return Status::error(
      "must be 1k, 2k, 4k, 8k, 16k, 32k, 64k, 128k, 256k, 512k, 1m, 2m, 4m, 8m "
      "or 16m");
}

BrotliLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<BrotliLocConf>();
}

Status merge_loc_conf(ConfContext&, const BrotliLocConf& prev, BrotliLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.bufs.merge(prev.bufs, Bufs{32, 4096});
  conf.level.merge(prev.level, 6);
  conf.lgwin.merge(prev.lgwin, 19);
  conf.min_length.merge(prev.min_length, 20);
  conf.types.merge(prev.types, {"text/html"});
  return {};
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_brotli_filter_module)) return {};
  register_header_filter(cf, FilterId::Brotli, brotli_header_filter);
  register_body_filter(cf, FilterId::Brotli, brotli_body_filter);
  offer_coding(cf, Coding::Brotli, brotli_eligible);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&BrotliLocConf::enable>>("brotli", kHttpMainSrvLocLif | kFlag),
    directive<slot::bufs<&BrotliLocConf::bufs>>("brotli_buffers", kHttpMainSrvLoc | kTake2),
    directive<slot::mime_types<&BrotliLocConf::types>>("brotli_types", kHttpMainSrvLoc | kOneMore),
    directive<set_level>("brotli_comp_level", kHttpMainSrvLoc | kTake1),
    directive<set_window>("brotli_window", kHttpMainSrvLoc | kTake1),
    directive<slot::offset<&BrotliLocConf::min_length>>("brotli_min_length",
                                                        kHttpMainSrvLoc | kTake1),
};
static_assert(directives_of(kDirectives, &http_brotli_filter_module));

}  // namespace

Module http_brotli_filter_module{
    .name = "http_brotli_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
