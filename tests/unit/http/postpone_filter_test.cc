// Subrequests and the postpone filter behind a recording sink: output leaves in document order
// whatever order the requests make it in, the turn passes from a finished subrequest back to its
// parent, an in-memory subrequest keeps its output (bounded by subrequest_output_buffer_size), and
// a background one's output is dropped without changing whose turn it is.
#include <gtest/gtest.h>

#include <string>

#include "http/subrequest.h"
#include "test_http.h"

namespace weir::test {
namespace {

using http::FilterId;
using http::Request;

struct Subrequests {
  TestConf conf{"server { listen 127.0.0.1:1; subrequest_output_buffer_size 8; location / { } }"};
  std::unique_ptr<TestRequest> t;
  http::BodyFilterFn postpone = nullptr;
  Subrequests() {
    EXPECT_TRUE(conf.ok()) << conf.error();
    t = std::make_unique<TestRequest>(conf);
    postpone = conf.body_filter(FilterId::Postpone);
    reset_recorded();
  }
  Request& main() { return t->r(); }
  Request* active() { return main().http_connection->active; }
  Rc out(Request& r, const std::string& text) {
    return run_body_filter(postpone, r, text.empty() ? nullptr : t->memory_chain(text, false));
  }
};

TEST(Postpone, OutputLeavesInDocumentOrder) {
  Subrequests s;
  Request& r = s.main();
  ASSERT_EQ(s.out(r, "A"), Rc::Ok);
  EXPECT_EQ(recorded().data, "A");
  Request* sr1 = http::create_subrequest(r, "/one", "", {});
  Request* sr2 = http::create_subrequest(r, "/two", "", {});
  ASSERT_NE(sr1, nullptr);
  ASSERT_NE(sr2, nullptr);
  EXPECT_EQ(s.active(), sr1);  // r was active with nothing waiting: the first include's turn
  EXPECT_EQ(r.main->count, 3);

  // The parent's text after the includes, and the second include, arrive first: both wait.
  ASSERT_EQ(s.out(r, "D"), Rc::Ok);
  ASSERT_EQ(s.out(*sr2, "C"), Rc::Ok);
  EXPECT_EQ(recorded().data, "A");
  ASSERT_EQ(s.out(*sr1, "B"), Rc::Ok);  // the active one goes straight out
  EXPECT_EQ(recorded().data, "AB");

  http::finalize_request(*sr1, Rc::Ok);
  EXPECT_TRUE(sr1->done);
  EXPECT_EQ(s.active(), &r);  // the turn goes back to the parent
  EXPECT_EQ(r.main->count, 2);
  ASSERT_EQ(s.out(r, ""), Rc::Ok);  // the parent resumes: the next entry is sr2, whose turn it is
  EXPECT_EQ(s.active(), sr2);
  ASSERT_EQ(s.out(*sr2, ""), Rc::Ok);  // sr2 resumes: its waiting output goes
  EXPECT_EQ(recorded().data, "ABC");
  http::finalize_request(*sr2, Rc::Ok);
  EXPECT_EQ(s.active(), &r);
  ASSERT_EQ(s.out(r, ""), Rc::Ok);
  EXPECT_EQ(recorded().data, "ABCD");
  EXPECT_EQ(r.postponed, nullptr);
  EXPECT_EQ(r.main->count, 1);
}

TEST(Postpone, SubrequestFinishedOutOfTurnWaitsForIt) {
  Subrequests s;
  Request& r = s.main();
  Request* sr1 = http::create_subrequest(r, "/one", "", {});
  Request* sr2 = http::create_subrequest(r, "/two", "", {.waited = true});
  Request* sr3 = http::create_subrequest(r, "/three", "", {});
  // sr2 made no output: it is finished when its turn comes (and, waited, says it is done).
  http::finalize_request(*sr2, Rc::Ok);
  EXPECT_TRUE(sr2->done);
  // sr3 still holds output: it waits to send it before it can end.
  ASSERT_EQ(s.out(*sr3, "late"), Rc::Ok);
  http::finalize_request(*sr3, Rc::Ok);
  EXPECT_FALSE(sr3->done);
  EXPECT_NE(sr3->postponed, nullptr);
  EXPECT_EQ(s.active(), sr1);  // neither took the turn
  EXPECT_EQ(r.main->count, 4);
  EXPECT_EQ(recorded().data, "");
}

TEST(Postpone, InMemorySubrequestKeepsItsOutput) {
  Subrequests s;
  Request& r = s.main();
  Request* sr = http::create_subrequest(r, "/auth", "", {.in_memory = true, .waited = true});
  ASSERT_NE(sr, nullptr);
  ASSERT_EQ(s.out(*sr, "yes"), Rc::Ok);
  ASSERT_EQ(s.out(*sr, "!!"), Rc::Ok);
  ASSERT_NE(sr->out, nullptr);
  EXPECT_EQ(std::string(sr->out->buf->pos, sr->out->buf->last), "yes!!");
  EXPECT_EQ(recorded().data, "");  // nothing reached the client
  // subrequest_output_buffer_size 8: more is an error, as in nginx.
  EXPECT_EQ(s.out(*sr, "overflow"), Rc::Error);
}

TEST(Postpone, BackgroundOutputIsDropped) {
  Subrequests s;
  Request& r = s.main();
  Request* bg = http::create_subrequest(r, "/mirror", "", {.background = true});
  ASSERT_NE(bg, nullptr);
  EXPECT_EQ(s.active(), &r);  // a background subrequest never takes a turn
  EXPECT_EQ(r.postponed, nullptr);
  ChainLink* in = s.t->memory_chain("dropped", false);
  ASSERT_EQ(run_body_filter(s.postpone, *bg, in), Rc::Ok);
  EXPECT_EQ(in->buf->pos, in->buf->last);  // marked sent, so the filters above can reuse it
  EXPECT_EQ(recorded().data, "");
  ASSERT_EQ(s.out(r, "main"), Rc::Ok);
  EXPECT_EQ(recorded().data, "main");
}

}  // namespace
}  // namespace weir::test
