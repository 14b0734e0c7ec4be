// The copy filter behind a recording sink: with sendfile a file buffer passes as it is; without it
// the file is read into output_buffers-sized memory buffers, in order, ending with last_buf.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "test_http.h"

namespace weir::test {
namespace {

using http::FilterId;

struct FileResponse {
  TestConf conf{"output_buffers 2 4; server { listen 127.0.0.1:1; location / { } }"};
  std::unique_ptr<TestRequest> t;
  File file;
  std::string content = "0123456789abcdefghij";  // 20 bytes: five 4-byte buffers
  explicit FileResponse(bool sendfile) {
    EXPECT_TRUE(conf.ok()) << conf.error();
    std::string path = conf.prefix() + "f.txt";
    std::ofstream(path) << content;
    file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    t = std::make_unique<TestRequest>(conf);
    t->r().connection->io.use_sendfile = sendfile;
    reset_recorded();
  }
  ~FileResponse() { ::close(file.fd); }
  ChainLink* file_chain() {
    http::Request& r = t->r();
    auto* b = r.pool->make<Buffer>();
    b->in_file = true;
    b->file = &file;
    b->file_pos = 0;
    b->file_last = static_cast<off_t>(content.size());
    b->last_buf = true;
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = b;
    cl->next = nullptr;
    return cl;
  }
};

TEST(CopyFilter, SendfilePassesTheFileBuffer) {
  FileResponse f(true);
  ChainLink* in = f.file_chain();
  Buffer* b = in->buf;
  ASSERT_EQ(run_body_filter(f.conf.body_filter(FilterId::Copy), f.t->r(), in), Rc::Ok);
  EXPECT_EQ(recorded().data, "");        // nothing was read into memory
  EXPECT_EQ(b->file_pos, b->file_last);  // the sink took the file range itself
  EXPECT_TRUE(recorded().last);
}

TEST(CopyFilter, WithoutSendfileTheFileIsReadIntoOutputBuffers) {
  FileResponse f(false);
  http::Request& r = f.t->r();
  http::BodyFilterFn copy = f.conf.body_filter(FilterId::Copy);
  Rc rc = run_body_filter(copy, r, f.file_chain());
  // Two 4-byte buffers at a time: the filter continues each time the sink has taken them.
  for (int i = 0; i < 10 && (r.buffered & http::kCopyFilterBuffered); i++) {
    rc = run_body_filter(copy, r, nullptr);
  }
  EXPECT_EQ(rc, Rc::Ok);
  EXPECT_EQ(recorded().data, f.content);
  EXPECT_TRUE(recorded().last);
  EXPECT_EQ(r.buffered & http::kCopyFilterBuffered, 0);
}

}  // namespace
}  // namespace weir::test
