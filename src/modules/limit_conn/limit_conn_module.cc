// limit_conn: at most N requests at a time per key (limit_conn_zone's key, e.g. the client's
// address), counted in a shared-memory zone every worker sees: a red-black tree of keys with their
// count, the count taken at preaccess and given back when the request's pool goes - however the
// request ends. Over the limit: limit_conn_status (503) and nginx's log line at
// limit_conn_log_level; limit_conn_dry_run only counts and logs. $limit_conn_status says which.
// A zone keeps its counts across a reload when its name, size and key are unchanged. A key whose
// count falls to 0 stays in the tree a while (the most recent kIdleKept such keys), so that the
// next request of a keep-alive client finds it instead of making it again; they are the first to go
// when the zone needs room.
// nginx: src/http/modules/ngx_http_limit_conn_module.c

#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "conf/cycle.h"
#include "core/queue.h"
#include "core/rbtree.h"
#include "core/slab.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_limit_conn_module;

namespace {

// A key's count, in the zone.
struct ConnNode {
  RbNode rb;       // rb.key: the key's hash
  QueueNode idle;  // in the zone's idle queue while conn is 0
  uint16_t conn = 0;
  uint8_t len = 0;
  char data[1];  // the key, len bytes
  std::string_view key() const { return {data, len}; }
  static ConnNode* of_idle(QueueNode* q) {
    return reinterpret_cast<ConnNode*>(reinterpret_cast<char*>(q) - offsetof(ConnNode, idle));
  }
};

// The zone's shared part.
struct ConnShared {
  RbTree tree;
  QueueNode idle;  // keys with no count, the most recently released first
  uint32_t idle_count = 0;
};

// Keys with no count kept in the tree, at most.
constexpr uint32_t kIdleKept = 128;

// What limit_conn_zone declared: the key and the zone (the tree lives in the zone).
struct ConnZone {
  ComplexValue key;
  std::string key_text;
  SharedZone* zone = nullptr;
  ConnShared* sh = nullptr;
};

// A limit_conn: its zone (declared before or after; a zone never declared has no size and the
// configuration fails to load, as nginx's) and the number.
struct ConnLimit {
  SharedZone* shm;
  uint32_t conn;
};

enum class LimitStatus : uint8_t { None, Passed, Rejected, RejectedDryRun };

struct LimitConnLocConf {
  static constexpr Module* kModule = &http_limit_conn_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<ConnLimit>* limits = nullptr;  // a level with any replaces the outer ones
  Setting<int> status;
  Setting<LogLevel> log_level;
  Setting<bool> dry_run;
};

// A count this request holds.
struct Held {
  ConnZone* zone;
  ConnNode* node;
  Held* next;
  bool released;
};

// The counts a request holds, with its cleanup and the first count inside: most requests hold one,
// and then this is the only allocation. Only the cleanup points to it (the request's status is on
// the main request, which an internal redirect keeps).
struct LimitConnCtx {
  Held* held = nullptr;
  Held first{};
  Pool::Cleanup cleanup{};
};

bool node_less(const RbNode& a, const RbNode& b) {
  const auto& x = reinterpret_cast<const ConnNode&>(a);
  const auto& y = reinterpret_cast<const ConnNode&>(b);
  return compare_keys(x.key(), y.key()) < 0;
}

// The oldest key with no count leaves the tree. The mutex is held.
bool free_idle(ConnZone& z) {
  QueueNode* q = z.sh->idle.back();
  if (q == nullptr) return false;
  ConnNode* node = ConnNode::of_idle(q);
  node->idle.unlink();
  z.sh->idle_count--;
  z.sh->tree.erase(&node->rb);
  z.zone->slab->free_locked(node);
  return true;
}

void release(Held& h) {
  if (h.released) return;
  h.released = true;
  ConnZone& z = *h.zone;
  ShmLock lock(z.zone->slab->mutex());
  if (--h.node->conn == 0) {
    z.sh->idle.push_front(&h.node->idle);
    if (++z.sh->idle_count > kIdleKept) free_idle(z);
  }
}

void release_all(LimitConnCtx& ctx) {
  for (Held* h = ctx.held; h != nullptr; h = h->next) release(*h);
}

Code limit_conn_handler(Request& r) {
  Request& main = *r.main;
  if (static_cast<LimitStatus>(main.limit_conn_status) != LimitStatus::None) return Rc::Declined;
  LimitConnCtx* ctx = nullptr;
  const auto& conf = r.loc<LimitConnLocConf>();
  if (conf.limits == nullptr) return Rc::Declined;
  for (const ConnLimit& limit : *conf.limits) {
    ConnZone& z = *static_cast<ConnZone*>(limit.shm->data);
    std::string_view key = z.key.eval(r);
    if (key.empty()) continue;
    if (key.size() > 255) {
      log_error(LogLevel::Error, r.log(), 0,
                "the value of the \"%s\" key is more than 255 bytes: \"%.*s\"", z.key_text.c_str(),
                static_cast<int>(key.size()), key.data());
      continue;
    }
    if (ctx == nullptr) {
      ctx = main.pool->make<LimitConnCtx>();
      // The counts go back when the request's pool goes, however the request ends.
      main.pool->add_cleanup(
          ctx->cleanup, [](void* p) { release_all(*static_cast<LimitConnCtx*>(p)); }, ctx);
    }
    main.limit_conn_status = static_cast<uint8_t>(LimitStatus::Passed);
    // Equal tree keys are ordered by the key itself: colliding keys only cost a comparison.
    uint32_t hash = zone_key_hash(key);
    SlabPool& slab = *z.zone->slab;
    ConnNode* node;
    bool over = false;
    {
      ShmLock lock(slab.mutex());
      RbNode* found = z.sh->tree.find([&](const RbNode& n) {
        if (hash != n.key) return hash < n.key ? -1 : 1;
        std::string_view other = reinterpret_cast<const ConnNode&>(n).key();
        return compare_keys(key, other);
      });
      node = reinterpret_cast<ConnNode*>(found);
      if (node == nullptr) {
        size_t size = offsetof(ConnNode, data) + key.size();
        void* p = slab.calloc_locked(size);
        while (p == nullptr && free_idle(z)) p = slab.calloc_locked(size);
        if (p != nullptr) {
          node = new (p) ConnNode;
          node->rb.key = hash;
          node->len = static_cast<uint8_t>(key.size());
          std::memcpy(node->data, key.data(), key.size());
          node->conn = 1;
          z.sh->tree.insert(&node->rb, node_less);
        }
      } else if (node->conn >= limit.conn) {
        over = true;
      } else if (node->conn++ == 0) {
        node->idle.unlink();
        z.sh->idle_count--;
      }
    }
    if (node == nullptr || over) {
      if (over) {
        log_error(*conf.log_level, r.log(), 0, "limiting connections%s by zone \"%s\"",
                  *conf.dry_run ? ", dry run," : "", z.zone->name.c_str());
      }
      release_all(*ctx);
      if (*conf.dry_run) {
        main.limit_conn_status = static_cast<uint8_t>(LimitStatus::RejectedDryRun);
        return Rc::Declined;
      }
      main.limit_conn_status = static_cast<uint8_t>(LimitStatus::Rejected);
      return Code::status(*conf.status);
    }
    Held* h = ctx->held == nullptr ? &ctx->first : main.pool->make<Held>();
    *h = Held{&z, node, ctx->held, false};
    ctx->held = h;
  }
  return Rc::Declined;
}

void var_limit_conn_status(Request& r, VariableValue& v, uintptr_t) {
  auto status = static_cast<LimitStatus>(r.main->limit_conn_status);
  if (status == LimitStatus::None) return v.set_not_found();
  static constexpr std::string_view kNames[] = {"", "PASSED", "REJECTED", "REJECTED_DRY_RUN"};
  v.set(kNames[static_cast<int>(status)]);
}

constexpr VariableDef kVars[] = {
    {"limit_conn_status", var_limit_conn_status, nullptr, 0},
};

// --- configuration ---------------------------------------------------------------------------

// The zone's tree, made in the zone; a reload with the same key keeps the old one and its counts.
Status init_zone(SharedZone& zone, void* old_data) {
  auto& z = *static_cast<ConnZone*>(zone.data);
  if (old_data != nullptr) {
    auto& old = *static_cast<ConnZone*>(old_data);
    if (old.key_text != z.key_text) {
      return Status::errorf(
          "limit_conn_zone \"%s\" uses the \"%s\" key while previously it used the \"%s\" key",
          zone.name.c_str(), z.key_text.c_str(), old.key_text.c_str());
    }
    z.sh = old.sh;
    return {};
  }
  void* p = zone.slab->calloc_locked(sizeof(ConnShared));
  if (p == nullptr) return Status::errorf("zone \"%s\" is too small", zone.name.c_str());
  z.sh = new (p) ConnShared;
  zone.slab->data = z.sh;
  return {};
}

// limit_conn_zone key zone=name:size
Status zone_directive(ConfContext& cf, const ConfNode& n) {
  auto* z = cf.pool.make<ConnZone>();
  std::string name;
  size_t size = 0;
  z->key_text = n.args[1];
  if (Status s = z->key.compile(cf, n.args[1]); !s.ok()) return s;
  for (size_t i = 2; i < n.args.size(); i++) {
    const std::string& a = n.args[i];
    if (!a.starts_with("zone=")) return cf.errorf("invalid parameter \"%s\"", a.c_str());
    if (Status s = parse_zone_param(a, name, size); !s.ok()) return cf.error(s.message());
  }
  if (name.empty()) {
    return cf.errorf("\"%s\" must have \"zone\" parameter", n.name().c_str());
  }
  Result<SharedZone*> zone = cf.cycle.add_zone(name, size, &http_limit_conn_module);
  if (!zone.ok()) return cf.error(zone.status().message());
  if ((*zone)->data != nullptr) {
    return cf.errorf("%s \"%s\" is already bound to key \"%s\"", n.name().c_str(), name.c_str(),
                     static_cast<ConnZone*>((*zone)->data)->key_text.c_str());
  }
  z->zone = *zone;
  (*zone)->data = z;
  (*zone)->init = init_zone;
  return {};
}

// limit_conn zone number
Status limit_directive(ConfContext& cf, const ConfNode& n, LimitConnLocConf& conf) {
  Result<SharedZone*> zone = cf.cycle.add_zone(n.args[1], 0, &http_limit_conn_module);
  if (!zone.ok()) return cf.error(zone.status().message());
  auto number = parse_int(n.args[2]);
  if (!number || *number <= 0)
    return cf.errorf("invalid number of connections \"%s\"", n.args[2].c_str());
  if (*number > 65535) return Status::error("connection limit must be less 65536");
  if (conf.limits == nullptr) conf.limits = cf.pool.make<std::vector<ConnLimit>>();
  for (const ConnLimit& l : *conf.limits) {
    if (l.shm == *zone) return Status::error("is duplicate");
  }
  conf.limits->push_back({*zone, static_cast<uint32_t>(*number)});
  return {};
}

LimitConnLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<LimitConnLocConf>();
}

Status merge_loc_conf(ConfContext&, const LimitConnLocConf& prev, LimitConnLocConf& conf) {
  if (conf.limits == nullptr) conf.limits = prev.limits;
  conf.status.merge(prev.status, 503);
  conf.log_level.merge(prev.log_level, LogLevel::Error);
  conf.dry_run.merge(prev.dry_run, false);
  return {};
}

Status preconfiguration(ConfContext& cf) {
  return add_variables(cf, kVars);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_limit_conn_module)) return {};
  add_phase_handler(cf, Phase::Preaccess, limit_conn_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<zone_directive>("limit_conn_zone", kHttpMainConf | kTake2),
    directive<limit_directive>("limit_conn", kHttpMainSrvLoc | kTake2),
    directive<slot::status_code<&LimitConnLocConf::status>>("limit_conn_status",
                                                            kHttpMainSrvLoc | kTake1),
    directive<slot::enum_<&LimitConnLocConf::log_level, slot::kLimitLogLevels>>(
        "limit_conn_log_level", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&LimitConnLocConf::dry_run>>("limit_conn_dry_run",
                                                      kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_limit_conn_module));

}  // namespace

Module http_limit_conn_module{
    .name = "http_limit_conn",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
