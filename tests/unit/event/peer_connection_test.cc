// connect_peer through the worker's event loop and connection pool: a TCP connect in progress that
// completes on the write event, a refused peer (Declined, logged), a unix-socket peer, a balancer
// that has no peer (Busy) or hands over a cached connection (Done), and close_idle() closing an
// idle outbound connection at graceful shutdown.
#include "event/peer_connection.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "event/event_loop.h"

namespace weir {
namespace {

struct Worker {
  EventLoop loop;
  ConnectionPool pool;
  Worker() {
    EXPECT_TRUE(loop.init(64).ok());
    pool.init(8);
    ConnectionPool::current = &pool;
  }
  ~Worker() { ConnectionPool::current = nullptr; }
};

// A listening socket on 127.0.0.1 with a kernel-chosen port.
struct Listener {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SockAddr addr;
  Listener() {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(::listen(fd, 8), 0);
    addr.len = sizeof addr.ss;
    EXPECT_EQ(::getsockname(fd, addr.sa(), &addr.len), 0);
  }
  ~Listener() {
    if (fd >= 0) ::close(fd);
  }
};

bool g_written = false;

TEST(ConnectPeer, TcpConnectCompletesOnTheWriteEvent) {
  Worker w;
  Listener l;
  Log client_log;
  client_log.connection = 42;
  PeerConnection pc;
  pc.sockaddr = &l.addr;
  pc.name = "127.0.0.1";
  pc.log = &client_log;
  Rc rc = connect_peer(pc);
  ASSERT_TRUE(rc == Rc::Again || rc == Rc::Ok);
  ASSERT_NE(pc.connection, nullptr);
  Connection& c = *pc.connection;
  EXPECT_EQ(c.listening, nullptr);  // outbound: not a client connection
  EXPECT_EQ(c.log, &client_log);    // it logs in the client's context
  EXPECT_EQ(c.number, 42u);
  g_written = rc == Rc::Ok;
  c.write.handler = [](Event&) { g_written = true; };
  for (int i = 0; i < 20 && !g_written; i++) w.loop.process_events(100);
  EXPECT_TRUE(g_written);
  EXPECT_EQ(connect_error(c), 0);
  int server = ::accept(l.fd, nullptr, nullptr);
  ASSERT_GE(server, 0);
  ASSERT_EQ(::write(server, "hi", 2), 2);
  char buf[8];
  for (int i = 0; i < 20 && !c.read.ready; i++) w.loop.process_events(100);
  IoResult got = c.recv(buf, sizeof buf);
  EXPECT_EQ(got.rc, Rc::Ok);
  EXPECT_EQ(got.n, 2u);
  ::close(server);
  close_connection(c);
  EXPECT_EQ(w.pool.in_use(), 0u);
}

TEST(ConnectPeer, RefusedPeerIsDeclined) {
  Worker w;
  SockAddr addr;
  {
    Listener l;  // a port that was just free: nothing listens there once it is closed
    addr = l.addr;
  }
  PeerConnection pc;
  pc.sockaddr = &addr;
  pc.name = "127.0.0.1";
  Rc rc = connect_peer(pc);
  if (rc == Rc::Again) {  // loopback usually refuses at once, but may report it on the write event
    g_written = false;
    pc.connection->write.handler = [](Event&) { g_written = true; };
    for (int i = 0; i < 20 && !g_written; i++) w.loop.process_events(50);
    EXPECT_EQ(connect_error(*pc.connection), ECONNREFUSED);  // (reading it clears it)
    close_connection(*pc.connection);
  } else {
    EXPECT_EQ(rc, Rc::Declined);
    EXPECT_EQ(pc.connection, nullptr);
  }
  EXPECT_EQ(w.pool.in_use(), 0u);
}

TEST(ConnectPeer, UnixSocketPeer) {
  Worker w;
  std::string path = "/tmp/weir-peer-test-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SockAddr addr;
  auto* sun = reinterpret_cast<sockaddr_un*>(&addr.ss);
  sun->sun_family = AF_UNIX;
  std::strncpy(sun->sun_path, path.c_str(), sizeof sun->sun_path - 1);
  addr.len = sizeof(sockaddr_un);
  ASSERT_EQ(::bind(lfd, addr.sa(), addr.len), 0);
  ASSERT_EQ(::listen(lfd, 8), 0);
  std::string name = "unix:" + path;
  PeerConnection pc;
  pc.sockaddr = &addr;
  pc.name = name;
  EXPECT_EQ(connect_peer(pc), Rc::Ok);  // a unix socket connects at once
  ASSERT_NE(pc.connection, nullptr);
  close_connection(*pc.connection);
  ::close(lfd);
  ::unlink(path.c_str());
  // Nothing behind the path any more: the peer failed (Declined), logged, no connection kept.
  PeerConnection gone;
  gone.sockaddr = &addr;
  gone.name = name;
  EXPECT_EQ(connect_peer(gone), Rc::Declined);
  EXPECT_EQ(w.pool.in_use(), 0u);
}

TEST(ConnectPeer, BalancerBusyOrCachedConnection) {
  Worker w;
  PeerConnection pc;
  pc.get = [](PeerConnection&, void*) { return Rc::Busy; };
  EXPECT_EQ(connect_peer(pc), Rc::Busy);
  EXPECT_EQ(w.pool.in_use(), 0u);

  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
  Connection* cached = w.pool.get(sp[0], Log{});
  ASSERT_NE(cached, nullptr);
  PeerConnection keep;
  keep.data = cached;
  keep.get = [](PeerConnection& p, void* data) {
    p.connection = static_cast<Connection*>(data);
    return Rc::Done;
  };
  EXPECT_EQ(connect_peer(keep), Rc::Ok);
  EXPECT_TRUE(keep.cached);
  EXPECT_EQ(keep.connection, cached);
  EXPECT_EQ(w.pool.in_use(), 1u);  // no new connection was opened
  close_connection(*cached);
  ::close(sp[1]);
}

TEST(ConnectPeer, IdleOutboundConnectionClosedAtShutdown) {
  Worker w;
  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
  Connection* c = w.pool.get(sp[0], Log{});
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(w.loop.add_connection(*c), Rc::Ok);
  // A keepalive cache marks its idle connections so; its read handler closes on c.close.
  c->idle = true;
  c->read.handler = [](Event& ev) {
    auto* conn = static_cast<Connection*>(ev.data);
    if (conn->close) close_connection(*conn);
  };
  w.pool.close_idle();
  EXPECT_EQ(w.pool.in_use(), 0u);
  ::close(sp[1]);
}

}  // namespace
}  // namespace weir
