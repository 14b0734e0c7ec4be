// Round robin and the keepalive cache, on groups made by a real configuration: nginx's smooth
// weighted order, passive health checks (max_fails within fail_timeout), the backups once every
// primary failed, the tries of one request, and a cache that gives back a kept connection to the
// same peer, most recent first, within its size and keepalive_requests, and drops one the upstream
// closed.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "event/connection.h"
#include "test_http.h"
#include "upstream/upstream_group.h"
#include "upstream/upstream_module.h"

namespace weir::http {
namespace {

class Balancers : public ::testing::Test {
 protected:
  test::TestConf conf{
      "upstream wrr { server 127.0.0.1:1001 weight=5; server 127.0.0.1:1002; "
      "               server 127.0.0.1:1003; }\n"
      "upstream fails { server 127.0.0.1:2001 max_fails=2 fail_timeout=30s; "
      "                 server 127.0.0.1:2002; }\n"
      "upstream bk { server 127.0.0.1:3001; server 127.0.0.1:3002 backup; }\n"
      "upstream two { server 127.0.0.1:4001; server 127.0.0.1:4002; }\n"
      "upstream ka { server 127.0.0.1:5001; server 127.0.0.1:5002; keepalive 2; "
      "              keepalive_requests 3; }\n"
      "server { listen 127.0.0.1:1; location / { proxy_pass http://wrr; }\n"
      "         location /f { proxy_pass http://fails; } location /b { proxy_pass http://bk; }\n"
      "         location /t { proxy_pass http://two; } location /k { proxy_pass http://ka; } }"};
  std::unique_ptr<test::TestRequest> t;

  void SetUp() override {
    ASSERT_TRUE(conf.ok()) << conf.error();
    t = std::make_unique<test::TestRequest>(conf);
    t->set_request_line("GET", "/");
  }
  UpstreamGroup& group(const char* name) {
    UpstreamGroup* g = find_upstream_group(t->r(), name, 0);
    EXPECT_NE(g, nullptr) << name;
    return *g;
  }
  // A request's first try on the group: its peer's name ("" when none may be tried), freed with
  // state.
  std::string pick(UpstreamGroup& g, unsigned state = 0) {
    PeerConnection pc;
    EXPECT_TRUE(g.init_peer(t->r(), g, pc).ok());
    if (pc.get(pc, pc.data) != Rc::Ok) return "";
    std::string name(pc.name);
    pc.free(pc, pc.data, state);
    return name;
  }
};

TEST_F(Balancers, SmoothWeightedOrderAsNginx) {
  UpstreamGroup& g = group("wrr");
  std::vector<std::string> order;
  for (int i = 0; i < 14; i++) order.push_back(pick(g).substr(10));  // the port
  // Weights 5, 1, 1: nginx's smooth round robin spreads the light ones, twice over.
  std::vector<std::string> cycle = {"1001", "1001", "1002", "1001", "1003", "1001", "1001"};
  std::vector<std::string> want = cycle;
  want.insert(want.end(), cycle.begin(), cycle.end());
  EXPECT_EQ(order, want);
}

TEST_F(Balancers, MaxFailsTakesAPeerOutForFailTimeout) {
  UpstreamGroup& g = group("fails");
  EXPECT_EQ(pick(g, kPeerFailed), "127.0.0.1:2001");
  EXPECT_EQ(pick(g), "127.0.0.1:2002");
  EXPECT_EQ(pick(g, kPeerFailed), "127.0.0.1:2001");  // one failure of two: still in; the second
  for (int i = 0; i < 4; i++) EXPECT_EQ(pick(g), "127.0.0.1:2002");
}

// A lone primary with a backup counts its failures (nginx's `single` is off with backups): the
// backup takes the next requests for fail_timeout, not only the retries of the failed one.
TEST_F(Balancers, BackupOnceEveryPrimaryFailed) {
  UpstreamGroup& g = group("bk");
  EXPECT_EQ(pick(g), "127.0.0.1:3001");
  EXPECT_EQ(pick(g, kPeerFailed), "127.0.0.1:3001");  // max_fails 1: out for 10 s
  EXPECT_EQ(pick(g), "127.0.0.1:3002");
  EXPECT_EQ(pick(g), "127.0.0.1:3002");
}

TEST_F(Balancers, OneRequestTriesEachPeerOnce) {
  UpstreamGroup& g = group("two");
  PeerConnection pc;
  ASSERT_TRUE(g.init_peer(t->r(), g, pc).ok());
  EXPECT_EQ(pc.tries, 2u);
  ASSERT_EQ(pc.get(pc, pc.data), Rc::Ok);
  std::string first(pc.name);
  pc.free(pc, pc.data, kPeerNext);
  ASSERT_EQ(pc.get(pc, pc.data), Rc::Ok);
  EXPECT_NE(std::string(pc.name), first);
  pc.free(pc, pc.data, kPeerNext);
  EXPECT_EQ(pc.get(pc, pc.data), Rc::Busy);
}

// The keepalive cache over real sockets: each "upstream connection" is one end of a socketpair.
class KeepaliveCacheTest : public Balancers {
 protected:
  std::vector<int> far_ends;

  void TearDown() override {
    for (int fd : far_ends) ::close(fd);
  }
  Connection* open_connection() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    far_ends.push_back(fds[1]);
    Log log;
    return ConnectionPool::current->get(fds[0], log);
  }
  // A try on the group: the cached connection it got (nullptr: a new one is to be opened, and
  // `fresh` is used), then freed with state.
  Connection* use(UpstreamGroup& g, unsigned state, Connection* fresh,
                  std::string* peer = nullptr) {
    PeerConnection pc;
    EXPECT_TRUE(g.init_peer(t->r(), g, pc).ok());
    Rc rc = pc.get(pc, pc.data);
    EXPECT_TRUE(rc == Rc::Ok || rc == Rc::Done);
    Connection* cached = rc == Rc::Done ? pc.connection : nullptr;
    if (peer != nullptr) *peer = std::string(pc.name);
    if (cached == nullptr) pc.connection = fresh;
    pc.free(pc, pc.data, state);
    return cached;
  }
};

TEST_F(KeepaliveCacheTest, KeptConnectionComesBackForItsPeer) {
  UpstreamGroup& g = group("ka");
  Connection* a = open_connection();
  std::string peer_a;
  EXPECT_EQ(use(g, kPeerKeepalive, a, &peer_a), nullptr);
  // Round robin moves to the other peer: nothing cached for it.
  Connection* b = open_connection();
  std::string peer_b;
  EXPECT_EQ(use(g, kPeerKeepalive, b, &peer_b), nullptr);
  EXPECT_NE(peer_a, peer_b);
  // Each peer gets its own connection back.
  std::string peer;
  EXPECT_EQ(use(g, kPeerKeepalive, nullptr, &peer), a);
  EXPECT_EQ(peer, peer_a);
  EXPECT_EQ(use(g, kPeerKeepalive, nullptr, &peer), b);
  EXPECT_EQ(peer, peer_b);
}

TEST_F(KeepaliveCacheTest, NotKeptWithoutARequestBoundaryOrAfterKeepaliveRequests) {
  UpstreamGroup& g = group("ka");
  // Not well framed: not cached (the lifecycle closes it).
  for (int i = 0; i < 2; i++) {  // each peer
    Connection* a = open_connection();
    EXPECT_EQ(use(g, 0, a), nullptr);
    close_connection(*a);
  }

  Connection* c = open_connection();
  EXPECT_EQ(use(g, kPeerKeepalive, c), nullptr);    // 1st request: kept
  (void)use(g, kPeerKeepalive, open_connection());  // the other peer
  EXPECT_EQ(use(g, kPeerKeepalive, nullptr), c);    // 2nd: kept
  (void)use(g, kPeerKeepalive, nullptr);            // the other peer
  EXPECT_EQ(use(g, kPeerKeepalive, nullptr), c);    // 3rd: keepalive_requests 3 reached
  (void)use(g, kPeerKeepalive, nullptr);
  EXPECT_EQ(use(g, kPeerKeepalive, open_connection()), nullptr);  // so it was not kept
}

TEST_F(KeepaliveCacheTest, ConnectionTheUpstreamClosedIsDropped) {
  UpstreamGroup& g = group("ka");
  Connection* a = open_connection();
  EXPECT_EQ(use(g, kPeerKeepalive, a), nullptr);
  (void)use(g, kPeerKeepalive, open_connection());
  // The upstream closes the idle connection: its read event drops it from the cache.
  ::close(far_ends[0]);
  far_ends[0] = -1;
  a->read.ready = true;
  a->read.handler(a->read);
  EXPECT_EQ(use(g, kPeerKeepalive, open_connection()), nullptr);  // nothing for that peer now
}

}  // namespace
}  // namespace weir::http
