// The copy filter's engine with output_buffers 2 4k and sendfile off: file data is read into at
// most two 4k buffers, which come back through update_chains once "sent", and the output arrives
// whole and in order.
#include "core/output_chain.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/file.h"

namespace weir {
namespace {

int kTag;

// A sink that "sends" at most `budget` bytes per call, like a slow socket, and records what it got.
struct Sink {
  std::string received;
  std::vector<size_t> buffers_seen;
  size_t budget = 1 << 30;
  std::vector<Buffer*> held;
  int calls = 0;
  static Rc output(void* ctx, ChainLink* in) {
    auto* s = static_cast<Sink*>(ctx);
    s->calls++;
    for (ChainLink* cl = in; cl != nullptr; cl = cl->next) s->held.push_back(cl->buf);
    size_t budget = s->budget;
    for (Buffer*& b : s->held) {
      if (b == nullptr) continue;
      EXPECT_TRUE(b->in_memory() || b->special());
      EXPECT_FALSE(b->in_file);  // sendfile is off: nothing may reach the socket as a file range
      size_t n = std::min<size_t>(b->last - b->pos, budget);
      s->received.append(b->pos, n);
      b->pos += n;
      budget -= n;
      if (b->pos == b->last) b = nullptr;
      if (budget == 0) break;
    }
    std::erase(s->held, nullptr);
    return s->held.empty() ? Rc::Ok : Rc::Again;
  }
};

// An output chain as the copy filter sets it up with `sendfile off; output_buffers 2 4k;`.
OutputChain two_4k_buffers_into(Sink& sink, Pool& pool, Log& log) {
  OutputChain oc;
  oc.sendfile = false;
  oc.pool = &pool;
  oc.bufs = Bufs{2, 4096};
  oc.tag = &kTag;
  oc.output = Sink::output;
  oc.output_ctx = &sink;
  oc.log = &log;
  return oc;
}

TEST(OutputChain, CopiesAFileThroughTwo4kBuffers) {
  Pool pool;
  char path[] = "/tmp/weir-oc-XXXXXX";
  File file;
  file.fd = ::mkstemp(path);
  ::unlink(path);
  std::string content;
  for (int i = 0; i < 20000; i++) content += static_cast<char>('A' + i % 23);
  ASSERT_EQ(::write(file.fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));

  Sink sink;
  sink.budget = 3000;  // slower than a buffer: buffers stay busy and must be waited for
  Log log;
  OutputChain oc = two_4k_buffers_into(sink, pool, log);

  auto* fb = pool.make<Buffer>();
  fb->in_file = true;
  fb->file = &file;
  fb->file_pos = 0;
  fb->file_last = static_cast<off_t>(content.size());
  fb->last_buf = true;
  fb->last_in_chain = true;
  ChainLink in{fb, nullptr};

  Rc rc = oc.write(&in);
  int guard = 0;
  while (rc == Rc::Again && guard++ < 100) rc = oc.write(nullptr);
  EXPECT_EQ(rc, Rc::Ok);
  EXPECT_EQ(sink.received, content);
  EXPECT_LE(oc.allocated, 2);  // never more than output_buffers' count
  EXPECT_GT(sink.calls, 5);
  ::close(file.fd);
}

TEST(OutputChain, PassesMemoryAsIsAndASmallLastFileInOneBuffer) {
  Pool pool;
  Sink sink;
  Log log;
  OutputChain oc = two_4k_buffers_into(sink, pool, log);
  Buffer* m = Buffer::create_memory(pool, "as is");
  ChainLink in{m, nullptr};
  EXPECT_EQ(oc.write(&in), Rc::Ok);
  EXPECT_EQ(oc.allocated, 0);
  EXPECT_EQ(sink.received, "as is");

  char path[] = "/tmp/weir-oc2-XXXXXX";
  File file;
  file.fd = ::mkstemp(path);
  ::unlink(path);
  ASSERT_EQ(::write(file.fd, "0123456789", 10), 10);
  auto* fb = pool.make<Buffer>();
  fb->in_file = true;
  fb->file = &file;
  fb->file_last = 10;
  fb->last_in_chain = true;
  ChainLink fin{fb, nullptr};
  EXPECT_EQ(oc.write(&fin), Rc::Ok);
  EXPECT_EQ(oc.allocated, 1);  // a 10-byte buffer, not a 4k one
  EXPECT_EQ(sink.received, "as is0123456789");
  ::close(file.fd);
}

}  // namespace
}  // namespace weir
