// `server name resolve` (nginx 1.27.3): a server whose name is looked up at run time, and again
// whenever its answer expires, through the group's resolver. The addresses live in the group's
// zone, a slot each with the slot's peer state, so every worker balances over the same peers and
// counts the same failures. The worker whose timer first finds a name due asks for it (the others
// wait for that answer) and bumps the zone's version when the addresses change. Each worker builds
// its own peer sets (the static peers and the live slots) when it sees a new version: at its next
// request for the group, or within a second. A request keeps the sets it started with until it
// ends, so a try in flight to an address that went away finishes; the slot of such an address is
// taken again only once no connection to it is counted. Keep-alive connections cached for an
// address that went away are closed. nginx: src/http/modules/ngx_http_upstream_zone_module.c
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "core/pool.h"
#include "core/slab.h"
#include "upstream/upstream_group.h"

namespace weir::http {

// The addresses one name may have at a time (an answer with more keeps the first ones).
constexpr size_t kMaxResolvedAddrs = 32;

// Load time (init_main_conf), for a group with `resolve` servers: nginx's checks (a zone, a
// resolver) and the group's ResolvedPeers. http_resolver and http_timeout_ms: the http block's.
Status init_resolved_peers(UpstreamGroup& g, Pool& pool, Resolver* http_resolver,
                           uint64_t http_timeout_ms);
// The zone's init (in the master): the names' slots in the zone, with the live addresses of the
// same names in old (the group of the configuration before a reload, or nullptr), so that a
// reload does not leave the group without peers until the names are asked again.
Status share_resolved_peers(UpstreamGroup& g, SlabPool& slab, const UpstreamGroup* old);
// A request's try state is about to be made: the worker's sets follow the zone (a new version
// makes new sets), and the request holds the current ones until its pool is freed.
void hold_resolved_peers(UpstreamGroup& g, Pool& pool);
// The worker's sets follow the zone now (health checks, before a round).
void follow_resolved_peers(UpstreamGroup& g);
// The metrics' view. A group's slots: kMaxResolvedAddrs for each `resolve` server. Their
// counters (RoundRobinPeer::counts_index) are first_index + 1 on; reset(data, counts_index) runs
// when a slot takes a new address, so that its counters start again.
size_t resolved_slots(const UpstreamGroup& g);
void count_resolved_peers(UpstreamGroup& g, uint32_t first_index,
                          void (*reset)(void* data, uint32_t counts_index), void* data);
// Slot k as a peer while it holds a live address; backup: its server's.
std::optional<RoundRobinPeer> resolved_peer(const UpstreamGroup& g, size_t k, bool& backup);
// In each worker: the names' timers start.
void start_resolving(std::span<UpstreamGroup* const> groups, const Log& log);

}  // namespace weir::http
