// The `http { }` block: creates every HTTP module's configuration at the http level, parses the
// block, merges http -> server -> location, builds location trees, the phase engine, variables, the
// filter chains and finally the listening sockets. nginx: src/http/ngx_http.c (ngx_http_block)
#include "conf/cycle.h"
#include "http/core_module.h"

namespace weir::http {

namespace {

Status http_block(ConfContext& cf, const ConfNode& node);

constexpr Directive kHttpDirectives[] = {
    directive<http_block>("http", kMainConf | kBlock | kNoArgs),
};
static_assert(directives_of(kHttpDirectives, &http_module));

void** new_conf_array(ConfContext& cf) {
  int n = module_count(ModuleType::Http);
  auto** a = static_cast<void**>(cf.pool.alloc(sizeof(void*) * (n ? n : 1)));
  for (int i = 0; i < n; i++) a[i] = nullptr;
  return a;
}

Status merge_locations(ConfContext& cf, const std::vector<CoreLocConf*>& locations, void** parent,
                       Module& m) {
  for (CoreLocConf* clcf : locations) {
    void* prev = parent[m.ctx_index];
    void* child = clcf->loc_conf[m.ctx_index];
    if (m.merge_loc_conf != nullptr) {
      HttpConfCtx* saved = cf.http;
      HttpConfCtx lctx = *cf.http;
      lctx.loc_conf = clcf->loc_conf;
      cf.http = &lctx;
      cf.node = clcf->node;
      Status s = m.merge_loc_conf(cf, prev, child);
      cf.http = saved;
      if (!s.ok()) return s;
    }
    if (Status s = merge_locations(cf, clcf->locations, clcf->loc_conf, m); !s.ok()) return s;
  }
  return {};
}

Status merge_servers(ConfContext& cf, CoreMainConf& cmcf, HttpConfCtx& http_ctx) {
  for (Module* m : all_modules()) {
    if (m->type != ModuleType::Http) continue;
    for (CoreSrvConf* cscf : cmcf.servers) {
      HttpConfCtx* saved = cf.http;
      cf.http = cscf->ctx;
      cf.node = cscf->node;
      if (m->merge_srv_conf != nullptr) {
        Status s = m->merge_srv_conf(cf, http_ctx.srv_conf[m->ctx_index],
                                     cscf->ctx->srv_conf[m->ctx_index]);
        if (!s.ok()) {
          cf.http = saved;
          return s;
        }
      }
      if (m->merge_loc_conf != nullptr) {
        Status s = m->merge_loc_conf(cf, http_ctx.loc_conf[m->ctx_index],
                                     cscf->ctx->loc_conf[m->ctx_index]);
        if (s.ok()) {
          auto& clcf = conf_of<CoreLocConf>(cscf->ctx->loc_conf);
          s = merge_locations(cf, clcf.locations, cscf->ctx->loc_conf, *m);
        }
        if (!s.ok()) {
          cf.http = saved;
          return s;
        }
      }
      cf.http = saved;
    }
  }
  return {};
}

Status http_block(ConfContext& cf, const ConfNode& node) {
  if (cf.cycle.confs[http_module.index] != nullptr) return Status::error("is duplicate");
  auto* ctx = cf.pool.make<HttpConfCtx>();
  cf.cycle.confs[http_module.index] = ctx;
  ctx->main_conf = new_conf_array(cf);
  ctx->srv_conf = new_conf_array(cf);
  ctx->loc_conf = new_conf_array(cf);

  ConfContext hc(cf.cycle, cf.pool);
  hc.log = cf.log;
  hc.module_type = ModuleType::Http;
  hc.cmd_type = kHttpMainConf;
  hc.http = ctx;
  hc.node = &node;

  for (Module* m : all_modules()) {
    if (m->type != ModuleType::Http) continue;
    if (m->create_main_conf != nullptr) ctx->main_conf[m->ctx_index] = m->create_main_conf(hc);
    if (m->create_srv_conf != nullptr) ctx->srv_conf[m->ctx_index] = m->create_srv_conf(hc);
    if (m->create_loc_conf != nullptr) ctx->loc_conf[m->ctx_index] = m->create_loc_conf(hc);
  }
  // The http level's own location conf points at its array (for `if`/merging symmetry).
  conf_of<CoreLocConf>(ctx->loc_conf).loc_conf = ctx->loc_conf;

  for (Module* m : all_modules()) {
    if (m->type == ModuleType::Http && m->preconfiguration != nullptr) {
      if (Status s = m->preconfiguration(hc); !s.ok()) return s;
    }
  }

  if (Status s = hc.parse_block(node.children); !s.ok()) return s;

  // Errors found after the block was read point at its closing brace, as nginx's do.
  ConfNode end_pos;
  end_pos.args = {"http"};
  end_pos.file = node.file;
  end_pos.line = node.end_line;
  hc.node = &end_pos;

  auto& cmcf = conf_of<CoreMainConf>(ctx->main_conf);
  for (Module* m : all_modules()) {
    if (m->type == ModuleType::Http && m->init_main_conf != nullptr) {
      if (Status s = m->init_main_conf(hc, ctx->main_conf[m->ctx_index]); !s.ok()) return s;
    }
  }
  if (Status s = merge_servers(hc, cmcf, *ctx); !s.ok()) return s;
  hc.http = ctx;
  hc.node = &end_pos;

  for (CoreSrvConf* cscf : cmcf.servers) {
    auto& clcf = conf_of<CoreLocConf>(cscf->ctx->loc_conf);
    if (Status s = init_locations(hc, *cscf, clcf); !s.ok()) return s;
  }

  for (Module* m : all_modules()) {
    if (m->type == ModuleType::Http && m->postconfiguration != nullptr) {
      hc.node = &end_pos;
      if (Status s = m->postconfiguration(hc); !s.ok()) return s;
    }
  }
  hc.node = &end_pos;
  if (Status s = cmcf.variables.init(hc); !s.ok()) return s;
  if (Status s = init_phase_engine(hc, cmcf); !s.ok()) return s;
  if (Status s = build_filter_chains(hc); !s.ok()) return s;
  return add_listening(hc, cmcf);
}

}  // namespace

Module http_module{
    .name = "http",
    .type = ModuleType::Core,
    .directives = kHttpDirectives,
};

Status create_level_confs(ConfContext& cf, HttpConfCtx& ctx, bool srv) {
  if (srv) {
    ctx.srv_conf = new_conf_array(cf);
  }
  ctx.loc_conf = new_conf_array(cf);
  for (Module* m : all_modules()) {
    if (m->type != ModuleType::Http) continue;
    if (srv && m->create_srv_conf != nullptr) ctx.srv_conf[m->ctx_index] = m->create_srv_conf(cf);
    if (m->create_loc_conf != nullptr) ctx.loc_conf[m->ctx_index] = m->create_loc_conf(cf);
  }
  conf_of<CoreLocConf>(ctx.loc_conf).loc_conf = ctx.loc_conf;
  return {};
}

CoreMainConf& core_main_conf(ConfContext& cf) {
  return conf_of<CoreMainConf>(cf.http->main_conf);
}

void add_phase_handler(ConfContext& cf, Phase phase, PhaseHandlerFn fn) {
  core_main_conf(cf).phases[static_cast<int>(phase)].push_back(fn);
}

}  // namespace weir::http
