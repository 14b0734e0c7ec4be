// limit_req: requests per key (limit_req_zone's key) at most at `rate`, by nginx's leaky bucket
// in a shared-memory zone every worker sees: each key keeps its excess in thousandths of a request
// and when it was last let in; the excess drains at the rate, millisecond by millisecond. Beyond
// `burst`: limit_req_status (503) and nginx's log line; within it, requests past `delay=` (all of
// them without nodelay) wait until the bucket would have let them in. Keys are kept in a
// red-black tree and an LRU queue; entries idle for a minute with nothing left in them are
// expired as new keys come, and the oldest is evicted when the zone is full.
// nginx: src/http/modules/ngx_http_limit_req_module.c

#include <cstddef>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "conf/cycle.h"
#include "core/queue.h"
#include "core/rbtree.h"
#include "core/slab.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/script.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_limit_req_module;

namespace {

// A key's bucket, in the zone.
struct ReqNode {
  RbNode rb;  // rb.key: the key's CRC-32
  QueueNode queue;
  clock::msec_t last = 0;  // when a request was last let in
  int64_t excess = 0;      // in thousandths of a request
  uint32_t count = 0;      // requests between lookup and account (several limits)
  uint16_t len = 0;
  char data[1];
  std::string_view key() const { return {data, len}; }
  static ReqNode* of_queue(QueueNode* q) {
    return reinterpret_cast<ReqNode*>(reinterpret_cast<char*>(q) - offsetof(ReqNode, queue));
  }
};

// The zone's shared part.
struct ReqShared {
  RbTree tree;
  QueueNode queue;  // most recently used first
};

struct ReqZone {
  ComplexValue key;
  std::string key_text;
  int64_t rate = 0;  // thousandths of a request per second
  SharedZone* zone = nullptr;
  ReqShared* sh = nullptr;
  ReqNode* node = nullptr;  // the node a lookup left counted, until accounted
};

struct ReqLimit {
  SharedZone* shm;
  int64_t burst;  // thousandths
  int64_t delay;  // thousandths; max: nodelay
};

enum class LimitStatus : uint8_t { None, Passed, Delayed, Rejected, DelayedDryRun, RejectedDryRun };

struct LimitReqLocConf {
  static constexpr Module* kModule = &http_limit_req_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<ReqLimit>* limits = nullptr;  // a level with any replaces the outer ones
  Setting<int> status;
  Setting<LogLevel> log_level;  // rejections; delays one level lower
  Setting<bool> dry_run;
};

void set_status(Request& main, LimitStatus status) {
  main.limit_req_status = static_cast<uint8_t>(status);
}

ReqZone& zone_of(const ReqLimit& l) {
  return *static_cast<ReqZone*>(l.shm->data);
}

bool node_less(const RbNode& a, const RbNode& b) {
  return compare_keys(reinterpret_cast<const ReqNode&>(a).key(),
                      reinterpret_cast<const ReqNode&>(b).key()) < 0;
}

// What drained since the last request, and this one: the new excess.
int64_t drained(const ReqZone& z, const ReqNode& n, clock::msec_t now, int64_t& ms) {
  ms = static_cast<int64_t>(now - n.last);
  if (ms < -60000) {
    ms = 1;
  } else if (ms < 0) {
    ms = 0;
  }
  int64_t excess = n.excess - z.rate * ms / 1000 + 1000;
  return excess < 0 ? 0 : excess;
}

void free_node(ReqZone& z, ReqNode* n) {
  n->queue.unlink();
  z.sh->tree.erase(&n->rb);
  z.zone->slab->free_locked(n);
}

// Entries from the back of the queue: one or two that have drained and been idle a minute (n = 1),
// or the oldest whatever it holds and then those (n = 0). The mutex is held.
void expire(ReqZone& z, int n, clock::msec_t now) {
  while (n < 3) {
    QueueNode* q = z.sh->queue.back();
    if (q == nullptr) return;
    ReqNode* node = ReqNode::of_queue(q);
    if (node->count != 0) return;  // in use: the ones before it were bumped more recently
    if (n++ != 0) {
      int64_t ms = std::abs(static_cast<int64_t>(now - node->last));
      if (ms < 60000) return;
      if (node->excess - z.rate * ms / 1000 > 0) return;
    }
    free_node(z, node);
  }
}

enum class Lookup : uint8_t { Ok, Again, Busy, Error };

// nginx's lookup: the key's bucket found or made; Busy beyond the burst; Ok when this is the limit
// that accounts (the last), else the node stays counted for account().
Lookup lookup(const ReqLimit& limit, ReqZone& z, uint32_t hash, std::string_view key,
              int64_t& excess, bool account, const Log& log) {
  clock::msec_t now = clock::msec();
  RbNode* found = z.sh->tree.find([&](const RbNode& n) {
    if (hash != n.key) return hash < n.key ? -1 : 1;
    std::string_view other = reinterpret_cast<const ReqNode&>(n).key();
    return compare_keys(key, other);
  });
  if (found != nullptr) {
    auto* node = reinterpret_cast<ReqNode*>(found);
    node->queue.unlink();
    z.sh->queue.push_front(&node->queue);
    int64_t ms;
    excess = drained(z, *node, now, ms);
    if (excess > limit.burst) return Lookup::Busy;
    if (account) {
      node->excess = excess;
      if (ms != 0) node->last = now;
      return Lookup::Ok;
    }
    node->count++;
    z.node = node;
    return Lookup::Again;
  }
  excess = 0;
  size_t size = offsetof(ReqNode, data) + key.size();
  expire(z, 1, now);
  SlabPool& slab = *z.zone->slab;
  void* p = slab.calloc_locked(size);
  if (p == nullptr) {
    expire(z, 0, now);
    p = slab.calloc_locked(size);
    if (p == nullptr) {
      log_error(LogLevel::Alert, log, 0, "could not allocate node in limit_req zone \"%s\"",
                z.zone->name.c_str());
      return Lookup::Error;
    }
  }
  auto* node = new (p) ReqNode;
  node->rb.key = hash;
  node->len = static_cast<uint16_t>(key.size());
  std::memcpy(node->data, key.data(), key.size());
  z.sh->tree.insert(&node->rb, node_less);
  z.sh->queue.push_front(&node->queue);
  if (account) {
    node->last = now;
    return Lookup::Ok;
  }
  node->count = 1;
  z.node = node;
  return Lookup::Again;
}

// The limits before the n-th looked their keys up and counted them: each is let in now (its
// excess taken), and the longest wait any of them asks is the delay.
clock::msec_t account(const ReqLimit* first, const ReqLimit* end, int64_t& excess,
                      const ReqLimit*& limit) {
  clock::msec_t max_delay = 0;
  if (excess > limit->delay) max_delay = (excess - limit->delay) * 1000 / zone_of(*limit).rate;
  while (end-- != first) {
    ReqZone& z = zone_of(*end);
    ReqNode* node = z.node;
    if (node == nullptr) continue;
    int64_t e;
    {
      ShmLock lock(z.zone->slab->mutex());
      clock::msec_t now = clock::msec();
      int64_t ms;
      e = drained(z, *node, now, ms);
      if (ms != 0) node->last = now;
      node->excess = e;
      node->count--;
    }
    z.node = nullptr;
    if (e <= end->delay) continue;
    auto delay = static_cast<clock::msec_t>((e - end->delay) * 1000 / z.rate);
    if (delay > max_delay) {
      max_delay = delay;
      excess = e;
      limit = end;
    }
  }
  return max_delay;
}

// A rejected request: the counts the limits before it took are given back.
void unlock(const ReqLimit* first, const ReqLimit* end) {
  while (end-- != first) {
    ReqZone& z = zone_of(*end);
    if (z.node == nullptr) continue;
    {
      ShmLock lock(z.zone->slab->mutex());
      z.node->count--;
    }
    z.node = nullptr;
  }
}

LogLevel lower(LogLevel l) {
  return l == LogLevel::Info ? LogLevel::Info : static_cast<LogLevel>(static_cast<int>(l) + 1);
}

void delay_handler(Request& r) {
  if (r.connection->write.delayed) return;  // woken early: the timer still runs
  r.read_event_handler = block_reading;
  r.write_event_handler = core_run_phases;
  core_run_phases(r);
}

Code limit_req_handler(Request& r) {
  Request& main = *r.main;
  if (static_cast<LimitStatus>(main.limit_req_status) != LimitStatus::None) return Rc::Declined;
  const auto& conf = r.loc<LimitReqLocConf>();
  if (conf.limits == nullptr) return Rc::Declined;
  // Pointers, not indices: a ReqLimit is 24 bytes, and size() would divide by it.
  const ReqLimit* const first = conf.limits->data();
  const ReqLimit* const last = first + conf.limits->size() - 1;
  int64_t excess = 0;
  Lookup rc = Lookup::Ok;
  bool any = false;
  const ReqLimit* l = first;
  for (; l <= last; l++) {
    ReqZone& z = zone_of(*l);
    std::string_view key = z.key.eval(r);
    if (key.empty()) continue;
    if (key.size() > 65535) {
      log_error(LogLevel::Error, r.log(), 0,
                "the value of the \"%s\" key is more than 65535 bytes: \"%.*s\"",
                z.key_text.c_str(), static_cast<int>(key.size()), key.data());
      continue;
    }
    any = true;
    // Equal tree keys are ordered by the key itself: colliding keys only cost a comparison.
    uint32_t hash = zone_key_hash(key);
    {
      ShmLock lock(z.zone->slab->mutex());
      rc = lookup(*l, z, hash, key, excess, l == last, r.log());
    }
    if (rc != Lookup::Again) break;
  }
  if (!any) return Rc::Declined;
  if (l > last) l = last;  // every limit asked to count: the last one accounts below
  const ReqLimit* limit = l;
  if (rc == Lookup::Busy || rc == Lookup::Error) {
    if (rc == Lookup::Busy) {
      log_error(*conf.log_level, r.log(), 0,
                "limiting requests%s, excess: %lld.%03lld by zone \"%s\"",
                *conf.dry_run ? ", dry run" : "", static_cast<long long>(excess / 1000),
                static_cast<long long>(excess % 1000), limit->shm->name.c_str());
    }
    unlock(first, l);
    if (*conf.dry_run) {
      set_status(main, LimitStatus::RejectedDryRun);
      return Rc::Declined;
    }
    set_status(main, LimitStatus::Rejected);
    return Code::status(*conf.status);
  }
  if (rc == Lookup::Again) excess = 0;
  clock::msec_t delay = account(first, rc == Lookup::Again ? l + 1 : l, excess, limit);
  if (delay == 0) {
    set_status(main, LimitStatus::Passed);
    return Rc::Declined;
  }
  log_error(lower(*conf.log_level), r.log(), 0,
            "delaying request%s, excess: %lld.%03lld, by zone \"%s\"",
            *conf.dry_run ? ", dry run" : "", static_cast<long long>(excess / 1000),
            static_cast<long long>(excess % 1000), limit->shm->name.c_str());
  if (*conf.dry_run) {
    set_status(main, LimitStatus::DelayedDryRun);
    return Rc::Declined;
  }
  set_status(main, LimitStatus::Delayed);
  Connection& c = *r.connection;
  r.read_event_handler = test_reading;
  r.write_event_handler = delay_handler;
  c.write.delayed = true;
  add_timer(c.write, delay);
  return Rc::Again;
}

void var_limit_req_status(Request& r, VariableValue& v, uintptr_t) {
  auto status = static_cast<LimitStatus>(r.main->limit_req_status);
  if (status == LimitStatus::None) return v.set_not_found();
  static constexpr std::string_view kNames[] = {"",         "PASSED",          "DELAYED",
                                                "REJECTED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN"};
  v.set(kNames[static_cast<int>(status)]);
}

constexpr VariableDef kVars[] = {
    {"limit_req_status", var_limit_req_status, nullptr, 0},
};

// --- configuration ---------------------------------------------------------------------------

Status init_zone(SharedZone& zone, void* old_data) {
  auto& z = *static_cast<ReqZone*>(zone.data);
  if (old_data != nullptr) {
    auto& old = *static_cast<ReqZone*>(old_data);
    if (old.key_text != z.key_text) {
      return Status::errorf(
          "limit_req \"%s\" uses the \"%s\" key while previously it used the \"%s\" key",
          zone.name.c_str(), z.key_text.c_str(), old.key_text.c_str());
    }
    z.sh = old.sh;
    return {};
  }
  void* p = zone.slab->calloc_locked(sizeof(ReqShared));
  if (p == nullptr) return Status::errorf("zone \"%s\" is too small", zone.name.c_str());
  z.sh = new (p) ReqShared;
  zone.slab->data = z.sh;
  return {};
}

// limit_req_zone key zone=name:size rate=N r/s|r/m
Status zone_directive(ConfContext& cf, const ConfNode& n) {
  auto* z = cf.pool.make<ReqZone>();
  z->key_text = n.args[1];
  if (Status s = z->key.compile(cf, n.args[1]); !s.ok()) return s;
  std::string name;
  size_t size = 0;
  int64_t rate = 1;
  int64_t scale = 1;
  for (size_t i = 2; i < n.args.size(); i++) {
    const std::string& a = n.args[i];
    if (a.starts_with("zone=")) {
      if (Status s = parse_zone_param(a, name, size); !s.ok()) return cf.error(s.message());
      continue;
    }
    if (a.starts_with("rate=")) {
      std::string_view v = std::string_view(a).substr(5);
      if (v.ends_with("r/s")) {
        v.remove_suffix(3);
      } else if (v.ends_with("r/m")) {
        v.remove_suffix(3);
        scale = 60;
      }
      auto r = parse_int(v);
      if (!r || *r <= 0) return cf.errorf("invalid rate \"%s\"", a.c_str());
      rate = *r;
      continue;
    }
    return cf.errorf("invalid parameter \"%s\"", a.c_str());
  }
  if (name.empty()) return cf.errorf("\"%s\" must have \"zone\" parameter", n.name().c_str());
  z->rate = rate * 1000 / scale;
  Result<SharedZone*> zone = cf.cycle.add_zone(name, size, &http_limit_req_module);
  if (!zone.ok()) return cf.error(zone.status().message());
  if ((*zone)->data != nullptr) {
    return cf.errorf("%s \"%s\" is already bound to key \"%s\"", n.name().c_str(), name.c_str(),
                     static_cast<ReqZone*>((*zone)->data)->key_text.c_str());
  }
  z->zone = *zone;
  (*zone)->data = z;
  (*zone)->init = init_zone;
  return {};
}

// limit_req zone=name [burst=N] [nodelay | delay=N]
Status limit_directive(ConfContext& cf, const ConfNode& n, LimitReqLocConf& conf) {
  std::string name;
  int64_t burst = 0;
  int64_t delay = 0;
  for (size_t i = 1; i < n.args.size(); i++) {
    const std::string& a = n.args[i];
    if (a.starts_with("zone=")) {
      name = a.substr(5);
    } else if (a.starts_with("burst=")) {
      auto v = parse_int(std::string_view(a).substr(6));
      if (!v || *v <= 0) return cf.errorf("invalid burst value \"%s\"", a.c_str());
      burst = *v;
    } else if (a.starts_with("delay=")) {
      auto v = parse_int(std::string_view(a).substr(6));
      if (!v || *v <= 0) return cf.errorf("invalid delay value \"%s\"", a.c_str());
      delay = *v;
    } else if (a == "nodelay") {
      delay = std::numeric_limits<int64_t>::max() / 1000;
    } else {
      return cf.errorf("invalid parameter \"%s\"", a.c_str());
    }
  }
  if (name.empty()) return cf.errorf("\"%s\" must have \"zone\" parameter", n.name().c_str());
  Result<SharedZone*> zone = cf.cycle.add_zone(name, 0, &http_limit_req_module);
  if (!zone.ok()) return cf.error(zone.status().message());
  if (conf.limits == nullptr) conf.limits = cf.pool.make<std::vector<ReqLimit>>();
  for (const ReqLimit& l : *conf.limits) {
    if (l.shm == *zone) return Status::error("is duplicate");
  }
  conf.limits->push_back({*zone, burst * 1000, delay * 1000});
  return {};
}

LimitReqLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<LimitReqLocConf>();
}

Status merge_loc_conf(ConfContext&, const LimitReqLocConf& prev, LimitReqLocConf& conf) {
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
  if (!cf.configured(http_limit_req_module)) return {};
  add_phase_handler(cf, Phase::Preaccess, limit_req_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<zone_directive>("limit_req_zone", kHttpMainConf | kTake3),
    directive<limit_directive>("limit_req", kHttpMainSrvLoc | kTake123),
    directive<slot::status_code<&LimitReqLocConf::status>>("limit_req_status",
                                                           kHttpMainSrvLoc | kTake1),
    directive<slot::enum_<&LimitReqLocConf::log_level, slot::kLimitLogLevels>>(
        "limit_req_log_level", kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&LimitReqLocConf::dry_run>>("limit_req_dry_run", kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_limit_req_module));

}  // namespace

Module http_limit_req_module{
    .name = "http_limit_req",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
