// The copy filter (seed 004): runs the response through an OutputChain so that file data is read
// into memory (output_buffers) when sendfile is off or a later filter needs it in memory; otherwise
// the chain passes as is. nginx: src/http/ngx_http_copy_filter_module.c
#include "core/output_chain.h"
#include "http/core_module.h"
#include "http/file_aio.h"

namespace weir::http {

extern Module http_copy_filter_module;

namespace {

struct CopyConf {
  static constexpr Module* kModule = &http_copy_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<Bufs> bufs;
};

struct CopyCtx {
  static constexpr Module* kModule = &http_copy_filter_module;
  OutputChain chain;
  Request* r;
  BodyNext next;
};

Rc pass_on(void* ctx, ChainLink* in) {
  auto* c = static_cast<CopyCtx*>(ctx);
  return c->next(*c->r, in);
}

Rc copy_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<CopyCtx>();
  if (ctx == nullptr) {
    ctx = r.pool->make<CopyCtx>();
    r.set_ctx(ctx);
    auto& conf = r.loc<CopyConf>();
    OutputChain& oc = ctx->chain;
    oc.sendfile = r.connection->io.use_sendfile;
    oc.need_in_memory = r.main_filter_need_in_memory || r.filter_need_in_memory;
    oc.need_in_temp = r.filter_need_temporary;
    oc.pool = r.pool;
    oc.bufs = *conf.bufs;
    oc.tag = &http_copy_filter_module;
    oc.output = pass_on;
    oc.output_ctx = ctx;
    oc.log = r.connection->log;
    const CoreLocConf& clcf = core_loc(r);
    if (*clcf.aio == AioMode::Threads) {
      oc.file_ready = [](void* p, const Buffer& b, off_t want, off_t& ready) {
        return file_aio_ready(*static_cast<CopyCtx*>(p)->r, b, want, ready);
      };
    }
    if (*clcf.aio != AioMode::Off && *clcf.directio >= 0) {
      oc.read_direct = [](void* p, const Buffer& b, char* dst, off_t size, ssize_t& n) {
        return file_aio_read_direct(*static_cast<CopyCtx*>(p)->r, b, dst, size, n);
      };
    }
    oc.file_ready_ctx = ctx;
    ctx->r = &r;
    if (in != nullptr && in->buf != nullptr && in->buf->size() != 0) r.request_output = true;
  }
  ctx->next = next;
  Rc rc = ctx->chain.write(in);
  if (ctx->chain.in == nullptr) {
    r.buffered &= ~kCopyFilterBuffered;
  } else {
    r.buffered |= kCopyFilterBuffered;
  }
  return rc;
}

CopyConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<CopyConf>();
}

Status merge_loc_conf(ConfContext&, const CopyConf& prev, CopyConf& conf) {
  conf.bufs.merge(prev.bufs, Bufs{2, 32768});
  return {};
}

Status init(ConfContext& cf) {
  register_body_filter(cf, FilterId::Copy, copy_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::bufs<&CopyConf::bufs>>("output_buffers", kHttpMainSrvLoc | kTake2),
};
static_assert(directives_of(kDirectives, &http_copy_filter_module));

}  // namespace

Module http_copy_filter_module{
    .name = "http_copy_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
