#include "upstream/resolved_peers.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "core/shm_mutex.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "event/resolver.h"

namespace weir::http {

namespace {

// One address of a name, in the zone: live while the latest answer has it. A slot that is not
// live and counts no connection, in use or kept alive, is free for the next new address.
struct ResolvedSlot {
  SockAddr addr;
  bool live;
  bool backup;  // an SRV record of a lower priority (or its server is a backup)
  int weight;   // the server's, or an SRV record's
  PeerState st;

  // The slot takes an address, with a fresh state.
  void take(const SockAddr& a, bool as_backup, int with_weight, bool unhealthy) {
    addr = a;
    backup = as_backup;
    weight = with_weight;
    st = PeerState{};
    st.effective_weight = with_weight;
    st.unhealthy = unhealthy;
    live = true;
  }
};

struct ResolvedName {
  uint64_t next_query_ms;  // when it is asked again: the worker that moves this asks
  size_t next_slot;        // where the search for a free slot starts: the least recently taken
  ResolvedSlot slots[kMaxResolvedAddrs];
};

}  // namespace

// The worker's peer sets, shared by the requests that started on them.
struct PeerSets {
  ResolvedPeers* owner = nullptr;
  RoundRobinPeers primary;
  RoundRobinPeers backup;
  int refs = 0;
};

struct ResolvedPeers {
  UpstreamGroup* group = nullptr;
  std::vector<const UpstreamServer*> servers;  // the `resolve` ones: names[i] is servers[i]'s
  RoundRobinPeers* configured = nullptr;       // the static peers, as load built them
  ResolvedName* names = nullptr;               // in the zone
  uint64_t* version = nullptr;                 // in the zone: bumped by each change of addresses
  ShmMutex* lock = nullptr;                    // the zone's
  uint64_t seen = UINT64_MAX;                  // the version the worker's sets were built from
  std::unique_ptr<PeerSets> current;           // the worker's (g.peers points into it)
  // The metrics' counters of the slots (0: none), and how a slot's start again.
  uint32_t counts_first = 0;
  void (*reset_counts)(void* data, uint32_t counts_index) = nullptr;
  void* reset_data = nullptr;

  uint32_t counts_index(size_t name, size_t slot) const {
    if (reset_counts == nullptr) return 0;
    return counts_first + static_cast<uint32_t>(name * kMaxResolvedAddrs + slot) + 1;
  }

  // Slot k of name as a balancer's peer (its state stays in the zone).
  RoundRobinPeer peer_of(size_t name, size_t k) const {
    ResolvedSlot& slot = names[name].slots[k];
    RoundRobinPeer p = server_peer(*servers[name], slot.addr);
    p.weight = p.own.effective_weight = slot.weight;
    p.st = &slot.st;
    p.counts_index = counts_index(name, k);
    return p;
  }
};

namespace {

// The static peers of one kind (primary or backup) and the live addresses of the names.
void fill(const ResolvedPeers& rp, RoundRobinPeers& set, bool backup) {
  const RoundRobinPeers* configured = backup ? rp.configured->backup : rp.configured;
  if (configured != nullptr) {
    for (const RoundRobinPeer& p : configured->peers) add_peer(set, p);
  }
  for (size_t i = 0; i < rp.servers.size(); i++) {
    for (size_t k = 0; k < kMaxResolvedAddrs; k++) {
      const ResolvedSlot& slot = rp.names[i].slots[k];
      if (slot.live && slot.backup == backup) add_peer(set, rp.peer_of(i, k));
    }
  }
  set.lock = rp.lock;
}

void release(void* data) {
  auto* sets = static_cast<PeerSets*>(data);
  if (--sets->refs == 0 && sets->owner->current.get() != sets) delete sets;
}

void follow(ResolvedPeers& rp) {
  uint64_t version = std::atomic_ref<uint64_t>(*rp.version).load(std::memory_order_acquire);
  if (version == rp.seen) return;
  auto sets = std::make_unique<PeerSets>();
  sets->owner = &rp;
  {
    ShmLock lock(*rp.lock);
    rp.seen = *rp.version;
    fill(rp, sets->primary, false);
    fill(rp, sets->backup, true);
  }
  if (!sets->backup.peers.empty()) sets->primary.backup = &sets->backup;
  sets->primary.single = sets->primary.peers.size() == 1 && sets->primary.backup == nullptr;
  PeerSets* old = rp.current.release();
  rp.current = std::move(sets);
  if (old != nullptr && old->refs == 0) delete old;  // else its last request frees it
  UpstreamGroup& g = *rp.group;
  g.peers = &rp.current->primary;
  if (g.keepalive != nullptr) keepalive_drop_gone(*g.keepalive, *g.peers);
}

// An address an answer gave, and how the balancer is to use it.
struct Found {
  SockAddr addr;
  bool backup;
  int weight;
  bool operator==(const Found&) const = default;
};

struct NameWatch;

// One SRV record's target being looked up.
struct TargetAsk {
  NameWatch* watch = nullptr;
  std::string target;
  uint16_t port = 0;
  bool backup = false;
  int weight = 1;
  ResolveQuery* query = nullptr;
};

// A name's timer in one worker, and its questions while they are out: the name's, or the
// service's and then its records' targets'.
struct NameWatch {
  ResolvedPeers* rp = nullptr;
  size_t index = 0;
  Event tick;
  Log log;
  ResolveQuery* query = nullptr;
  std::vector<std::unique_ptr<TargetAsk>> targets;  // out now
  std::vector<Found> found;                         // the service's addresses so far
  uint64_t valid_ms = 0;                            // the least of their TTLs

  bool asking() const { return query != nullptr || !targets.empty(); }
  void cancel() {
    Resolver::cancel(query);
    query = nullptr;
    for (auto& t : targets) Resolver::cancel(t->query);
    targets.clear();
  }
};

// The answer into the zone: addresses gone stop being live (their slots free once no connection
// is counted), new ones take free slots. Any error but "not found" keeps the addresses and asks
// again soon; "not found" leaves the name with none, as nginx.
void apply(NameWatch& w, int status, const std::vector<Found>& found, uint64_t valid_ms) {
  ResolvedPeers& rp = *w.rp;
  UpstreamGroup& g = *rp.group;
  uint64_t now = clock::msec();
  if (status != 0 && status != 3) {
    ShmLock lock(*rp.lock);
    rp.names[w.index].next_query_ms = now + std::max<uint64_t>(g.resolver_timeout_ms, 1000);
    return;
  }
  bool full = false;
  std::vector<uint32_t> fresh;  // the counters of slots that took a new address
  {
    ShmLock lock(*rp.lock);
    ResolvedName& name = rp.names[w.index];
    bool changed = false;
    auto as_found = [](const ResolvedSlot& slot) {
      return Found{slot.addr, slot.backup, slot.weight};
    };
    for (ResolvedSlot& slot : name.slots) {
      if (slot.live && std::find(found.begin(), found.end(), as_found(slot)) == found.end()) {
        slot.live = false;
        changed = true;
      }
    }
    for (const Found& f : found) {
      auto live = [&](const ResolvedSlot& slot) { return slot.live && as_found(slot) == f; };
      if (std::any_of(std::begin(name.slots), std::end(name.slots), live)) continue;
      // The least recently taken free slot: a worker that has not yet followed the change
      // still balances over the slot an address just left.
      ResolvedSlot* free = nullptr;
      for (size_t n = 0; n < kMaxResolvedAddrs && free == nullptr; n++) {
        ResolvedSlot& slot = name.slots[(name.next_slot + n) % kMaxResolvedAddrs];
        if (!slot.live && slot.st.conns <= 0 && slot.st.idle <= 0) free = &slot;
      }
      if (free == nullptr) {
        full = true;
        break;
      }
      name.next_slot = static_cast<size_t>(free - name.slots + 1) % kMaxResolvedAddrs;
      free->take(f.addr, f.backup, f.weight, g.mandatory_check);  // checked before it serves
      changed = true;
      fresh.push_back(rp.counts_index(w.index, static_cast<size_t>(free - name.slots)));
    }
    if (changed) std::atomic_ref<uint64_t>(*rp.version).fetch_add(1, std::memory_order_release);
    name.next_query_ms = now + std::max<uint64_t>(valid_ms, 1000);
  }
  for (uint32_t index : fresh) {
    if (index != 0) rp.reset_counts(rp.reset_data, index);
  }
  if (full) {
    log_error(LogLevel::Error, w.log, 0,
              "cannot add new server to upstream \"%s\", memory exhausted (at most %zu addresses "
              "per name)",
              g.host.c_str(), kMaxResolvedAddrs);
  }
}

void log_failure(NameWatch& w, const ResolveQuery& q) {
  const UpstreamServer& s = *w.rp->servers[w.index];
  if (s.resolve_service.empty()) {
    log_error(LogLevel::Error, w.log, 0, "%s could not be resolved (%d: %s)",
              s.resolve_host.c_str(), q.status, q.error_text());
  } else if (&q == w.query) {
    log_error(LogLevel::Error, w.log, 0, "service %s of %s could not be resolved (%d: %s)",
              s.resolve_service.c_str(), s.resolve_host.c_str(), q.status, q.error_text());
  } else {
    log_error(LogLevel::Error, w.log, 0,
              "%s could not be resolved (%d: %s) while resolving service %s of %s", q.name.c_str(),
              q.status, q.error_text(), s.resolve_service.c_str(), s.resolve_host.c_str());
  }
}

// The name's addresses.
void answered(ResolveQuery& q) {
  auto& w = *static_cast<NameWatch*>(q.data);
  const UpstreamServer& s = *w.rp->servers[w.index];
  if (q.status != 0) log_failure(w, q);
  w.query = nullptr;
  std::vector<Found> found;
  for (SockAddr a : q.addrs) {
    a.set_port(s.resolve_port);
    found.push_back(Found{a, s.backup, s.weight});
  }
  apply(w, q.status, found, q.valid_ms);
  follow(*w.rp);
}

// One SRV target's addresses; the last one in applies them all (a target that fails is left out).
void target_answered(ResolveQuery& q) {
  auto& t = *static_cast<TargetAsk*>(q.data);
  NameWatch& w = *t.watch;
  if (q.status != 0) log_failure(w, q);
  for (SockAddr a : q.addrs) {
    a.set_port(t.port);
    Found f{a, t.backup, t.weight};
    if (std::find(w.found.begin(), w.found.end(), f) == w.found.end()) w.found.push_back(f);
  }
  if (q.status == 0) w.valid_ms = std::min(w.valid_ms, q.valid_ms);
  std::erase_if(w.targets, [&](const std::unique_ptr<TargetAsk>& o) { return o.get() == &t; });
  if (!w.targets.empty()) return;
  std::vector<Found> found = std::move(w.found);
  w.found.clear();
  apply(w, 0, found, w.valid_ms);
  follow(*w.rp);
}

// The service's records: the best priority's are the peers, the others the backups (where the
// balancer has backups; a backup server takes the best ones as backups and leaves the others), as
// nginx. Then each record's target is looked up.
void service_answered(ResolveQuery& q) {
  auto& w = *static_cast<NameWatch*>(q.data);
  ResolvedPeers& rp = *w.rp;
  const UpstreamServer& s = *rp.servers[w.index];
  UpstreamGroup& g = *rp.group;
  if (q.status != 0) {
    log_failure(w, q);
    w.query = nullptr;
    apply(w, q.status, {}, 0);
    follow(rp);
    return;
  }
  w.query = nullptr;
  uint16_t best = UINT16_MAX;
  for (const SrvRecord& r : q.srvs) best = std::min(best, r.priority);
  bool backups = g.balancer == Balancer::RoundRobin || g.balancer == Balancer::LeastConn;
  w.found.clear();
  w.valid_ms = q.valid_ms != 0 ? q.valid_ms : UINT64_MAX;
  std::vector<std::unique_ptr<TargetAsk>> asks;
  for (const SrvRecord& r : q.srvs) {
    bool backup = r.priority != best;
    if (s.backup) {
      if (backup) continue;
      backup = true;
    } else if (backup && !backups) {
      continue;
    }
    auto t = std::make_unique<TargetAsk>();
    t->watch = &w;
    t->target = r.target;
    t->port = r.port;
    t->backup = backup;
    t->weight = s.weight != 1 ? s.weight : std::max<int>(r.weight, 1);
    asks.push_back(std::move(t));
  }
  // Every target is waited for before the first question goes (answers come from the loop).
  w.targets = std::move(asks);
  for (auto& t : w.targets) {
    t->query =
        g.resolver->resolve(t->target, g.resolver_timeout_ms, target_answered, t.get(), w.log);
    if (t->query == nullptr) {  // the resolver cannot work (logged): the claim runs out
      w.cancel();
      return;
    }
  }
  if (w.targets.empty()) {
    apply(w, 0, {}, w.valid_ms);
    follow(rp);
  }
}

// Each tick: the worker's sets follow the zone (another worker may have changed it), and the
// first worker to find the name due asks for it; the claim lasts the query's timeout and a
// second, so another worker asks if this one's answer never comes.
void on_tick(Event& ev) {
  auto& w = *static_cast<NameWatch*>(ev.data);
  if (worker_exiting()) {
    w.cancel();  // the next workers ask
    return;
  }
  ResolvedPeers& rp = *w.rp;
  follow(rp);
  uint64_t timeout = rp.group->resolver_timeout_ms;
  uint64_t now = clock::msec();
  uint64_t next;
  bool mine = false;
  {
    ShmLock lock(*rp.lock);
    ResolvedName& name = rp.names[w.index];
    if (!w.asking() && name.next_query_ms <= now) {
      name.next_query_ms = now + timeout + 1000;
      mine = true;
    }
    next = name.next_query_ms;
  }
  if (mine) {
    // nullptr: the resolver cannot work (logged); the claim runs out and the name is asked again.
    const UpstreamServer& s = *rp.servers[w.index];
    Resolver& resolver = *rp.group->resolver;
    w.query = s.resolve_service.empty()
                  ? resolver.resolve(s.resolve_host, timeout, answered, &w, w.log)
                  : resolver.resolve_srv(s.resolve_srv, timeout, service_answered, &w, w.log);
  }
  ev.cancelable = true;
  add_timer(ev, std::clamp<uint64_t>(next > now ? next - now : 1, 1, 1000));
}

}  // namespace

Status init_resolved_peers(UpstreamGroup& g, Pool& pool, Resolver* http_resolver,
                           uint64_t http_timeout_ms) {
  auto resolves = [](const UpstreamServer& s) { return s.resolve; };
  if (std::none_of(g.servers.begin(), g.servers.end(), resolves)) return {};
  std::string where = g.file != nullptr ? g.file->path + ':' + std::to_string(g.line) : "";
  // nginx's messages, which name the upstream block's place themselves.
  if (g.zone == nullptr) {
    return Status::located(strprintf(
        "resolving names at run time requires upstream \"%s\" in %s to be in shared memory",
        g.host.c_str(), where.c_str()));
  }
  if (g.resolver == nullptr) g.resolver = http_resolver;
  if (g.resolver_timeout_ms == 0) g.resolver_timeout_ms = http_timeout_ms;
  if (g.resolver == nullptr) {
    return Status::located(
        strprintf("no resolver defined to resolve names at run time in upstream \"%s\" in %s",
                  g.host.c_str(), where.c_str()));
  }
  auto* rp = pool.make<ResolvedPeers>();
  for (const UpstreamServer& s : g.servers) {
    if (s.resolve) rp->servers.push_back(&s);
  }
  rp->group = &g;
  rp->configured = g.peers;
  g.resolved = rp;
  return {};
}

Status share_resolved_peers(UpstreamGroup& g, SlabPool& slab, const UpstreamGroup* old) {
  ResolvedPeers& rp = *g.resolved;
  rp.names =
      static_cast<ResolvedName*>(slab.calloc_locked(sizeof(ResolvedName) * rp.servers.size()));
  rp.version = static_cast<uint64_t*>(slab.calloc_locked(sizeof(uint64_t)));
  if (rp.names == nullptr || rp.version == nullptr) {
    return Status::errorf("upstream zone \"%s\" is too small for upstream \"%s\"",
                          g.zone->name.c_str(), g.host.c_str());
  }
  rp.lock = &slab.mutex();
  const ResolvedPeers* before = old != nullptr ? old->resolved : nullptr;
  if (before == nullptr || before->names == nullptr) return {};
  ShmLock lock(*before->lock);
  for (size_t i = 0; i < rp.servers.size(); i++) {
    const UpstreamServer& s = *rp.servers[i];
    for (size_t j = 0; j < before->servers.size(); j++) {
      const UpstreamServer& o = *before->servers[j];
      if (o.name != s.name || o.backup != s.backup || o.weight != s.weight ||
          o.resolve_srv != s.resolve_srv) {
        continue;
      }
      const ResolvedName& from = before->names[j];
      ResolvedName& to = rp.names[i];
      to.next_query_ms = from.next_query_ms;
      size_t n = 0;
      for (const ResolvedSlot& slot : from.slots) {
        if (!slot.live) continue;
        to.slots[n++].take(slot.addr, slot.backup, slot.weight,
                           g.mandatory_check && !(g.persistent_check && !slot.st.unhealthy));
      }
      break;
    }
  }
  return {};
}

void follow_resolved_peers(UpstreamGroup& g) {
  if (g.resolved != nullptr) follow(*g.resolved);
}

void hold_resolved_peers(UpstreamGroup& g, Pool& pool) {
  ResolvedPeers& rp = *g.resolved;
  follow(rp);
  PeerSets* sets = rp.current.get();
  sets->refs++;
  pool.add_cleanup(release, sets);
}

size_t resolved_slots(const UpstreamGroup& g) {
  return g.resolved != nullptr ? g.resolved->servers.size() * kMaxResolvedAddrs : 0;
}

void count_resolved_peers(UpstreamGroup& g, uint32_t first_index,
                          void (*reset)(void* data, uint32_t counts_index), void* data) {
  g.resolved->counts_first = first_index;
  g.resolved->reset_counts = reset;
  g.resolved->reset_data = data;
}

std::optional<RoundRobinPeer> resolved_peer(const UpstreamGroup& g, size_t k, bool& backup) {
  const ResolvedPeers& rp = *g.resolved;
  size_t name = k / kMaxResolvedAddrs;
  const ResolvedSlot& slot = rp.names[name].slots[k % kMaxResolvedAddrs];
  ShmLock lock(*rp.lock);
  if (!slot.live) return std::nullopt;
  backup = slot.backup;
  return rp.peer_of(name, k % kMaxResolvedAddrs);
}

void start_resolving(std::span<UpstreamGroup* const> groups, const Log& log) {
  // The worker's watches, for its whole life; a single process's reload replaces them (the
  // retired configuration's names are not asked again).
  static std::vector<std::unique_ptr<NameWatch>> watches;
  for (auto& w : watches) {
    w->cancel();
    del_timer(w->tick);
  }
  watches.clear();
  for (UpstreamGroup* g : groups) {
    if (g->resolved == nullptr) continue;
    for (size_t i = 0; i < g->resolved->servers.size(); i++) {
      auto* w = watches.emplace_back(std::make_unique<NameWatch>()).get();
      w->rp = g->resolved;
      w->index = i;
      start_worker_timer(w->tick, w->log, log, on_tick, w);
    }
  }
}

}  // namespace weir::http
