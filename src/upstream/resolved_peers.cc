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
  PeerState st;
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
};

namespace {

// The static peers of one kind (primary or backup) and the live addresses of the names.
void fill(const ResolvedPeers& rp, RoundRobinPeers& set, bool backup) {
  const RoundRobinPeers* configured = backup ? rp.configured->backup : rp.configured;
  if (configured != nullptr) {
    for (const RoundRobinPeer& p : configured->peers) add_peer(set, p);
  }
  for (size_t i = 0; i < rp.servers.size(); i++) {
    const UpstreamServer& s = *rp.servers[i];
    if (s.backup != backup) continue;
    for (size_t k = 0; k < kMaxResolvedAddrs; k++) {
      ResolvedSlot& slot = rp.names[i].slots[k];
      if (!slot.live) continue;
      RoundRobinPeer p = server_peer(s, slot.addr);
      p.st = &slot.st;
      p.counts_index = rp.counts_index(i, k);
      add_peer(set, std::move(p));
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

// A name's timer in one worker, and its question while one is out.
struct NameWatch {
  ResolvedPeers* rp = nullptr;
  size_t index = 0;
  Event tick;
  Log log;
  ResolveQuery* query = nullptr;
};

// The answer into the zone: addresses gone stop being live (their slots free once no connection
// is counted), new ones take free slots. Any error but "not found" keeps the addresses and asks
// again soon; "not found" leaves the name with none, as nginx.
void apply(NameWatch& w, const ResolveQuery& q) {
  ResolvedPeers& rp = *w.rp;
  const UpstreamServer& s = *rp.servers[w.index];
  UpstreamGroup& g = *rp.group;
  uint64_t now = clock::msec();
  if (q.status != 0) {
    log_error(LogLevel::Error, w.log, 0, "%s could not be resolved (%d: %s)",
              s.resolve_host.c_str(), q.status, q.error_text());
  }
  if (q.status != 0 && q.status != 3) {
    ShmLock lock(*rp.lock);
    rp.names[w.index].next_query_ms = now + std::max<uint64_t>(g.resolver_timeout_ms, 1000);
    return;
  }
  std::vector<SockAddr> addrs;
  if (q.status == 0) addrs = q.addrs;
  for (SockAddr& a : addrs) a.set_port(s.resolve_port);
  bool full = false;
  std::vector<uint32_t> fresh;  // the counters of slots that took a new address
  {
    ShmLock lock(*rp.lock);
    ResolvedName& name = rp.names[w.index];
    bool changed = false;
    for (ResolvedSlot& slot : name.slots) {
      if (slot.live && std::find(addrs.begin(), addrs.end(), slot.addr) == addrs.end()) {
        slot.live = false;
        changed = true;
      }
    }
    for (const SockAddr& a : addrs) {
      auto live = [&](const ResolvedSlot& slot) { return slot.live && slot.addr == a; };
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
      free->addr = a;
      free->st = PeerState{};
      free->st.effective_weight = s.weight;
      free->st.unhealthy = g.mandatory_check;  // a new peer passes its first check first
      free->live = true;
      changed = true;
      fresh.push_back(rp.counts_index(w.index, static_cast<size_t>(free - name.slots)));
    }
    if (changed) std::atomic_ref<uint64_t>(*rp.version).fetch_add(1, std::memory_order_release);
    name.next_query_ms = now + std::max<uint64_t>(q.valid_ms, 1000);
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

void answered(ResolveQuery& q) {
  auto& w = *static_cast<NameWatch*>(q.data);
  w.query = nullptr;
  apply(w, q);
  follow(*w.rp);
}

// Each tick: the worker's sets follow the zone (another worker may have changed it), and the
// first worker to find the name due asks for it; the claim lasts the query's timeout and a
// second, so another worker asks if this one's answer never comes.
void on_tick(Event& ev) {
  auto& w = *static_cast<NameWatch*>(ev.data);
  if (worker_exiting()) {
    Resolver::cancel(w.query);  // the next workers ask
    w.query = nullptr;
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
    if (w.query == nullptr && name.next_query_ms <= now) {
      name.next_query_ms = now + timeout + 1000;
      mine = true;
    }
    next = name.next_query_ms;
  }
  if (mine) {
    // nullptr: the resolver cannot work (logged); the claim runs out and the name is asked again.
    w.query = rp.group->resolver->resolve(rp.servers[w.index]->resolve_host, timeout, answered, &w,
                                          w.log);
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
      if (o.name != s.name || o.backup != s.backup) continue;
      const ResolvedName& from = before->names[j];
      ResolvedName& to = rp.names[i];
      to.next_query_ms = from.next_query_ms;
      size_t n = 0;
      for (const ResolvedSlot& slot : from.slots) {
        if (!slot.live) continue;
        ResolvedSlot& mine = to.slots[n++];
        mine.addr = slot.addr;
        mine.live = true;
        mine.st.effective_weight = s.weight;
        mine.st.unhealthy = g.mandatory_check && !(g.persistent_check && !slot.st.unhealthy);
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
  const UpstreamServer& s = *rp.servers[name];
  backup = s.backup;
  ResolvedSlot& slot = rp.names[name].slots[k % kMaxResolvedAddrs];
  ShmLock lock(*rp.lock);
  if (!slot.live) return std::nullopt;
  RoundRobinPeer p = server_peer(s, slot.addr);
  p.st = &slot.st;
  p.counts_index = rp.counts_index(name, k % kMaxResolvedAddrs);
  return p;
}

void start_resolving(std::span<UpstreamGroup* const> groups, const Log& log) {
  // The worker's watches, for its whole life.
  static std::vector<std::unique_ptr<NameWatch>> watches;
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
