// Outbound connections: a peer to connect to (chosen by a balancer's get callback, given back with
// free), and the non-blocking connect that opens a Connection from the worker's pool for it.
// Balancers (round robin, hash, least_conn) and the keepalive cache stack as nginx's do: each
// wraps the get/free pair of the one below and keeps its own data. nginx:
// src/event/ngx_event_connect.{h,c}
#pragma once

#include <cstdint>
#include <string_view>

#include "core/inet.h"
#include "core/log.h"
#include "core/status.h"
#include "event/connection.h"

namespace weir {

// What free() is told about the peer's last use (bits).
enum : unsigned {
  kPeerFailed = 0x1,     // it did not answer well: counts towards max_fails
  kPeerNext = 0x2,       // another peer will be tried
  kPeerKeepalive = 0x4,  // the connection is well framed and may be cached
};

struct PeerConnection {
  Connection* connection = nullptr;  // set by connect_peer (or by get, for a cached connection)

  // The peer get() chose: its address ("unix:" paths too) and name for logs and $upstream_addr.
  const SockAddr* sockaddr = nullptr;
  std::string_view name;
  uint32_t counts_index = 0;  // where per-peer counters (metrics) keep the peer's, + 1; 0: none

  unsigned tries = 1;       // how many peers may still be tried (proxy_next_upstream_tries)
  uint64_t start_msec = 0;  // when the first try began (proxy_next_upstream_timeout)

  // The balancer. get: Ok (sockaddr and name set), Done (connection is a cached one, ready to use),
  // Busy (no peer can be tried). free: the peer's use is over, with kPeer* bits. notify: optional.
  Rc (*get)(PeerConnection& pc, void* data) = nullptr;
  void (*free)(PeerConnection& pc, void* data, unsigned state) = nullptr;
  void (*notify)(PeerConnection& pc, void* data, unsigned type) = nullptr;
  void* data = nullptr;

  const SockAddr* local = nullptr;  // proxy_bind
  std::string_view local_name;      // ... as written or made (logs name it so, as nginx's)
  bool transparent = false;   // ... transparent: local need not be this host's (IP_TRANSPARENT)
  int rcvbuf = 0;             // 0: the kernel's default
  bool so_keepalive = false;  // proxy_socket_keepalive
  bool cached = false;        // the connection came from the keepalive cache

  // The client connection's log: the outbound connection shares it, so its messages name the client
  // and the request (nullptr: a log of its own). A connection that outlives the request (kept for
  // reuse) must point its log back at its own_log first.
  Log* log = nullptr;
};

// Opens a connection to the peer get() chooses:
//  Ok       connected at once (a unix socket, or a cached connection from get);
//  Again    the connect is in progress: wait for the connection's write event, then
//  check_connected(); Busy     get() found no peer to try; Declined this peer failed at once
//  (refused, unreachable): logged; free it and try the next; Error    no socket or no free
//  connection (logged): the request fails with 500/502.
Rc connect_peer(PeerConnection& pc);
// The same, to the peer get() chose before (pc.sockaddr), on a new connection: never a cached one,
// and the balancer is not asked again.
Rc open_peer(PeerConnection& pc);

// After the write event of a connect that answered Again: 0 when connected, else the errno (the
// caller logs "connect() failed ... while connecting to upstream" and tries the next peer). Only
// a socket epoll reported in error is asked (getsockopt); reading the error clears it: call it
// once per event.
int connect_error(Connection& c);

}  // namespace weir
