// recv_chain over a real socketpair: one readv fills the buffers' free space in order, keeps to the
// byte limit, and answers Again when it would block and Done at the end of the stream.
#include "os/recv_chain.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace weir {
namespace {

struct Pair {
  int s[2];
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0); }
  ~Pair() {
    ::close(s[0]);
    ::close(s[1]);
  }
  void put(const std::string& d) {
    ASSERT_EQ(::write(s[1], d.data(), d.size()), ssize_t(d.size()));
  }
};

struct Bufs {
  char mem[3][4];
  Buffer b[3];
  ChainLink cl[3];
  Bufs() {
    for (int i = 0; i < 3; i++) {
      b[i].start = b[i].pos = b[i].last = mem[i];
      b[i].end = mem[i] + sizeof mem[i];
      cl[i].buf = &b[i];
      cl[i].next = i < 2 ? &cl[i + 1] : nullptr;
    }
  }
  std::string got(int i) const { return std::string(b[i].pos, b[i].last); }
};

TEST(RecvChain, FillsBuffersInOrderWithinTheLimit) {
  Pair p;
  Bufs bufs;
  bufs.b[0].last += 1;  // one byte already there: only three are free
  p.put("abcdefghij");
  IoResult first = recv_chain(p.s[0], &bufs.cl[0], 6);
  EXPECT_EQ(first.n, 6u);
  EXPECT_FALSE(first.drained);  // all it asked for came: there may be more
  EXPECT_EQ(bufs.got(0).substr(1), "abc");
  EXPECT_EQ(bufs.got(1), "def");
  EXPECT_EQ(bufs.got(2), "");
  IoResult rest = recv_chain(p.s[0], &bufs.cl[0], 0);  // the rest: fills buffer 1, then 2
  EXPECT_EQ(rest.n, 4u);
  EXPECT_TRUE(rest.drained);  // 4 of the 5 bytes of room: the socket is empty
  EXPECT_EQ(bufs.got(1), "defg");
  EXPECT_EQ(bufs.got(2), "hij");
  EXPECT_EQ(recv_chain(p.s[0], &bufs.cl[0], 0).rc, Rc::Again);  // nothing more: would block
  ::shutdown(p.s[1], SHUT_WR);
  EXPECT_EQ(recv_chain(p.s[0], &bufs.cl[0], 0).rc, Rc::Done);  // end of stream
}

TEST(RecvChain, FullChainReadsNothing) {
  Pair p;
  Bufs bufs;
  for (Buffer& b : bufs.b) b.last = b.end;
  p.put("x");
  IoResult none = recv_chain(p.s[0], &bufs.cl[0], 0);
  EXPECT_EQ(none.rc, Rc::Again);
  EXPECT_FALSE(none.drained);  // no room is not an empty socket
  char c;
  EXPECT_EQ(::recv(p.s[0], &c, 1, 0), 1);  // still in the socket
}

// More buffers than one readv takes: only the bytes it asked for count, so a full read is not taken
// for an empty socket (which would stall an edge-triggered reader).
TEST(RecvChain, LongChainIsNotDrainedByAPartialReadv) {
  Pair p;
  std::vector<char> mem(200);  // one byte in every two, so no two buffers are adjacent
  std::vector<Buffer> b(100);
  std::vector<ChainLink> cl(100);
  for (size_t i = 0; i < 100; i++) {
    b[i].start = b[i].pos = b[i].last = &mem[2 * i];
    b[i].end = &mem[2 * i] + 1;
    cl[i].buf = &b[i];
    cl[i].next = i + 1 < 100 ? &cl[i + 1] : nullptr;
  }
  p.put(std::string(100, 'x'));
  IoResult r = recv_chain(p.s[0], &cl[0], 0);
  ASSERT_EQ(r.rc, Rc::Ok);
  EXPECT_LT(r.n, 100u);  // one readv covers at most 64 pieces
  EXPECT_FALSE(r.drained);
}

}  // namespace
}  // namespace weir
