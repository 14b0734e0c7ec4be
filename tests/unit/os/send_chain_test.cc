// The send chain over a real socketpair: memory buffers coalesced into one writev, file ranges into
// one sendfile, the byte limit, and partial writes that leave the chain pointing at what is unsent.
#include "os/send_chain.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "core/file.h"
#include "core/str.h"

namespace weir {
namespace {

struct Pair {
  int s[2];
  Pair(int sndbuf = 0) {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
    if (sndbuf > 0) {
      ::setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      ::setsockopt(s[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
    }
  }
  ~Pair() {
    ::close(s[0]);
    ::close(s[1]);
  }
  std::string drain() {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(s[1], buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, n);
    }
    return out;
  }
};

ChainLink* link(Pool& p, Buffer* b, ChainLink* next = nullptr) {
  ChainLink* cl = p.alloc_link();
  cl->buf = b;
  cl->next = next;
  return cl;
}

struct TempFileFixture {
  File file;
  std::string content;
  explicit TempFileFixture(size_t size) {
    char path[] = "/tmp/weir-sendchain-XXXXXX";
    file.fd = ::mkstemp(path);
    ::unlink(path);
    for (size_t i = 0; i < size; i++) content += static_cast<char>('a' + i % 26);
    EXPECT_EQ(::write(file.fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
  }
  ~TempFileFixture() { ::close(file.fd); }
  Buffer* range(Pool& p, off_t a, off_t b) {
    auto* buf = p.make<Buffer>();
    buf->in_file = true;
    buf->file = &file;
    buf->file_pos = a;
    buf->file_last = b;
    return buf;
  }
};

TEST(SendChain, MemoryAndFileBuffersInOrder) {
  Pool pool;
  Pair pair;
  TempFileFixture tf(10000);
  std::string head = "HTTP/1.1 200 OK\r\n\r\n";
  // Two adjacent pieces of one block (one iovec), then two contiguous file ranges (one sendfile),
  // then memory.
  Buffer* block = Buffer::create_temp(pool, 64);
  block->last = put(block->last, head);
  Buffer* h1 = pool.make<Buffer>(*block);
  Buffer* h2 = pool.make<Buffer>(*block);
  h1->last = h1->pos + 5;
  h2->pos = h1->last;
  Buffer* tail = Buffer::create_memory(pool, "--end--");
  tail->last_buf = true;
  ChainLink* in = link(pool, h1,
                       link(pool, h2,
                            link(pool, tf.range(pool, 0, 4000),
                                 link(pool, tf.range(pool, 4000, 10000), link(pool, tail)))));
  SendState st;
  st.fd = pair.s[0];
  Log log;
  SendResult sent = send_chain(st, in, 0, log);
  EXPECT_EQ(sent.rc, Rc::Ok);
  EXPECT_EQ(sent.rest, nullptr);
  EXPECT_EQ(st.sent, static_cast<off_t>(head.size() + 10000 + 7));
  EXPECT_EQ(pair.drain(), head + tf.content + "--end--");
}

TEST(SendChain, LimitStopsMidBuffer) {
  Pool pool;
  Pair pair;
  TempFileFixture tf(5000);
  ChainLink* in =
      link(pool, Buffer::create_memory(pool, "0123456789"), link(pool, tf.range(pool, 0, 5000)));
  SendState st;
  st.fd = pair.s[0];
  Log log;
  SendResult sent = send_chain(st, in, 4106, log);
  ASSERT_EQ(sent.rc, Rc::Again);
  ASSERT_NE(sent.rest, nullptr);
  // 10 memory bytes, then the file up to the limit rounded to a page boundary (4096).
  EXPECT_EQ(st.sent, 4106);
  EXPECT_EQ(sent.rest->buf->file_pos, 4096);
  sent = send_chain(st, sent.rest, 0, log);
  EXPECT_EQ(sent.rc, Rc::Ok);
  EXPECT_EQ(sent.rest, nullptr);
  EXPECT_EQ(pair.drain(), "0123456789" + tf.content);
}

TEST(SendChain, PartialWritesLeaveTheUnsentPart) {
  Pool pool;
  Pair pair(4096);
  TempFileFixture tf(300000);
  std::string big(200000, 'm');
  ChainLink* in =
      link(pool, Buffer::create_memory(pool, big), link(pool, tf.range(pool, 0, 300000)));
  SendState st;
  st.fd = pair.s[0];
  Log log;
  std::string received;
  int rounds = 0;
  ChainLink* rest = in;
  while (rest != nullptr) {
    SendResult sent = send_chain(st, rest, 0, log);
    ASSERT_NE(sent.rc, Rc::Error);
    rest = sent.rest;
    if (rest != nullptr) {
      EXPECT_EQ(sent.rc, Rc::Again);
      EXPECT_TRUE(st.blocked);
      // What is left is exactly what was not sent.
      off_t left = chain_size(rest);
      EXPECT_EQ(static_cast<off_t>(big.size() + 300000) - st.sent, left);
    }
    received += pair.drain();
    rounds++;
  }
  received += pair.drain();
  EXPECT_GT(rounds, 2);
  EXPECT_EQ(received, big + tf.content);
}

TEST(SendChain, ManyBuffersBeyondIovMax) {
  Pool pool;
  Pair pair;
  std::vector<std::string> parts;
  ChainLink* in = nullptr;
  ChainLink** ll = &in;
  std::string expect;
  for (int i = 0; i < 3000; i++) {
    parts.push_back(std::to_string(i) + ",");
  }
  for (const std::string& p : parts) {
    *ll = link(pool, Buffer::create_memory(pool, p));
    ll = &(*ll)->next;
    expect += p;
  }
  SendState st;
  st.fd = pair.s[0];
  Log log;
  std::string got;
  ChainLink* rest = in;
  while (rest != nullptr) {
    SendResult sent = send_chain(st, rest, 0, log);
    ASSERT_NE(sent.rc, Rc::Error);
    rest = sent.rest;
    got += pair.drain();
  }
  EXPECT_EQ(got, expect);
}

TEST(SendChain, PeerGoneIsAnError) {
  ::signal(SIGPIPE, SIG_IGN);  // sendfile has no MSG_NOSIGNAL; weir's processes ignore SIGPIPE
  Pool pool;
  Pair pair;
  ::close(pair.s[1]);
  pair.s[1] = ::open("/dev/null", O_RDONLY);
  SendState st;
  st.fd = pair.s[0];
  Log log;
  Log quiet;
  LogSink sink;
  sink.level = LogLevel::Emerg;
  quiet.sink = &sink;
  ChainLink* in = link(pool, Buffer::create_memory(pool, "x"));
  EXPECT_EQ(send_chain(st, in, 0, quiet).rc, Rc::Error);
}

}  // namespace
}  // namespace weir
