// The event pipe between two socketpairs: an "upstream" the test writes in pieces of random sizes
// (reads come short), and a client whose socket buffer is small and who reads a random budget at a
// time (writes come short). Whatever the sizes, the client gets exactly the upstream's bytes, in
// order; the raw buffers never exceed bufs.num; spills go to the temp file and come back from it;
// a preread is sent first; a known length drops what follows it; proxy_store's mode keeps all of it
// in the temp file; and at the end every list is empty.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <string>

#include "pipe_rig.h"
#include "upstream/lifecycle.h"

namespace weir::test {
namespace {

// The upstream sends body in pieces of 1 to max_piece bytes, then closes; after each the client
// reads 0 to max_budget bytes.
void send_in_random_pieces(PipeRig& rig, const std::string& body, size_t max_piece,
                           size_t max_budget) {
  std::uniform_int_distribution<size_t> piece(1, max_piece);
  std::uniform_int_distribution<size_t> budget(0, max_budget);
  for (size_t at = 0; at < body.size();) {
    size_t n = std::min(piece(rig.rng), body.size() - at);
    rig.upstream_sends(std::string_view(body).substr(at, n));
    at += n;
    rig.client_reads(budget(rig.rng));
    rig.pump(true);
  }
  rig.upstream_closes();
}

// Random read sizes and client budgets, several buffer shapes: the bytes arrive whole and in order.
TEST(EventPipe, RandomPiecesArriveWholeAndInOrder) {
  for (unsigned seed = 1; seed <= 20; seed++) {
    for (auto [nbufs, size] : {std::pair{1, 16}, {2, 7}, {4, 64}, {8, 4096}}) {
      PipeRig rig(nbufs, static_cast<size_t>(size), 0, seed);
      std::string body = rig.random_bytes(20000 + seed * 97);
      send_in_random_pieces(rig, body, 300, 700);
      ASSERT_EQ(rig.finish(), body) << "seed " << seed << " bufs " << nbufs << "x" << size;
    }
  }
}

// A client that reads nothing while the upstream sends much more than the buffers hold: the rest
// goes to the temp file (within max_temp_file_size), and comes back from it in order.
TEST(EventPipe, SpillsToTheTempFileAndBack) {
  PipeRig rig(2, 64, 1 << 20, 7);
  std::string body = rig.random_bytes(300000);
  std::uniform_int_distribution<size_t> piece(1, 5000);
  for (size_t at = 0; at < body.size();) {
    size_t n = std::min(piece(rig.rng), body.size() - at);
    rig.upstream_sends(std::string_view(body).substr(at, n));
    at += n;
  }
  EXPECT_GT(rig.p.temp_written, 100000);
  rig.upstream_closes();
  EXPECT_EQ(rig.finish(), body);
}

// nginx's default buffers (8 4k) and a client that takes almost nothing: a write made while the
// client had kept up hands it at most all but one buffer, so a buffer stays free to read into and
// the rest of a fast upstream's body spills to the temp file.
TEST(EventPipe, AWriteTheClientCannotTakeLeavesABufferToSpillWith) {
  PipeRig rig(8, 4096, 1 << 22, 13);
  std::string body = rig.random_bytes(600000);
  for (size_t at = 0; at < body.size(); at += 60000) {
    rig.upstream_sends(std::string_view(body).substr(at, 60000));
  }
  EXPECT_GT(rig.p.temp_written, 300000);
  rig.upstream_closes();
  EXPECT_EQ(rig.finish(), body);
}

// With no temp file allowed, a client that reads nothing stops the reading once the buffers are
// full (upstream_blocked), and reading goes on when it takes some.
TEST(EventPipe, FullBuffersBlockTheUpstreamUntilTheClientTakes) {
  PipeRig rig(2, 64, 0, 3);
  std::string body = rig.random_bytes(100000);
  ASSERT_EQ(::write(rig.up[1], body.data(), body.size()), static_cast<ssize_t>(body.size()));
  rig.upstream->read.ready = true;
  ASSERT_EQ(http::run_event_pipe(rig.p, false), Rc::Ok);
  EXPECT_TRUE(rig.p.upstream_blocked);
  EXPECT_LT(rig.p.read_length, static_cast<off_t>(body.size()));
  rig.upstream_closes();
  EXPECT_EQ(rig.finish(), body);
}

// The body's first bytes came with the header (the preread): they go first; and with a known
// length, what the upstream sends beyond it is not passed on.
TEST(EventPipe, PrereadFirstAndNothingBeyondTheLength) {
  PipeRig rig(4, 32, 0, 5);
  std::string head = "first bytes, with the header;";
  auto* pre = Buffer::create_temp(*rig.p.pool, head.size());
  pre->last = std::copy(head.begin(), head.end(), pre->last);
  pre->tag = rig.p.tag;
  rig.p.preread = pre;
  rig.p.preread_size = static_cast<off_t>(head.size());
  std::string rest = rig.random_bytes(1000);
  rig.p.length = static_cast<off_t>(head.size() + rest.size());
  rig.upstream_sends(rest + "EXTRA BYTES");
  EXPECT_EQ(rig.finish(), head + rest);
  EXPECT_TRUE(rig.p.upstream_done);
  EXPECT_FALSE(rig.p.upstream_eof);  // done by the length, not by a close
}

// The lifecycle's default pipe filter (a protocol without its own, as SCGI's in nginx) copies as
// pipe_copy_filter does: up to a known length, with nginx's warning for what follows it.
TEST(EventPipe, DefaultFilterStopsAtTheLength) {
  PipeRig rig(4, 64, 0, 9);
  rig.p.input_filter = http::default_pipe_input_filter;
  std::string body = rig.random_bytes(3000);
  rig.p.length = static_cast<off_t>(body.size());
  rig.upstream_sends(body + "MORE THAN THE LENGTH");
  EXPECT_EQ(rig.finish(), body);
  EXPECT_TRUE(rig.p.upstream_done);
}

// proxy_store's mode: every byte goes through the temp file, which is kept (max_temp_file_size 0
// notwithstanding), and the client is served from it.
TEST(EventPipe, StoreSendsEverythingThroughTheKeptTempFile) {
  PipeRig rig(2, 64, 0, 11);
  rig.p.store = true;
  std::string body = rig.random_bytes(50000);
  send_in_random_pieces(rig, body, 700, 900);
  EXPECT_EQ(rig.finish(), body);
  ASSERT_NE(rig.p.temp_file, nullptr);
  EXPECT_EQ(rig.p.temp_written, static_cast<off_t>(body.size()));
  std::string kept(body.size(), '\0');
  std::string name(rig.p.temp_file->file.name);
  int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << name;
  EXPECT_EQ(::read(fd, kept.data(), kept.size()), static_cast<ssize_t>(body.size()));
  ::close(fd);
  EXPECT_EQ(kept, body);
}

}  // namespace
}  // namespace weir::test
