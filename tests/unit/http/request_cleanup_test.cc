// The request cleanup list: handlers run last-added first, once, and a handler that ends another
// part of the request does not run the list again.
#include <gtest/gtest.h>

#include <string>

#include "core/pool.h"
#include "http/request.h"

namespace weir::http {
namespace {

struct Trace {
  std::string order;
  Request* request = nullptr;
};

TEST(RequestCleanup, RunsLastAddedFirstAndOnce) {
  Pool pool;
  Request r;
  r.pool = &pool;
  r.main = &r;
  Trace t;
  static auto note = [](Trace& tr, char c) { tr.order += c; };
  ASSERT_NE(add_request_cleanup(
                r, [](void* d) { note(*static_cast<Trace*>(d), 'a'); }, &t),
            nullptr);
  ASSERT_NE(add_request_cleanup(
                r, [](void* d) { note(*static_cast<Trace*>(d), 'b'); }, &t),
            nullptr);
  RequestCleanup* c = add_request_cleanup(
      r, [](void* d) { note(*static_cast<Trace*>(d), 'c'); }, &t);
  c->handler = nullptr;  // a module that ended its state early switches its cleanup off
  run_request_cleanups(r);
  EXPECT_EQ(t.order, "ba");
  run_request_cleanups(r);
  EXPECT_EQ(t.order, "ba");
}

TEST(RequestCleanup, SubrequestsAddToTheMainRequest) {
  Pool pool;
  Request main;
  main.pool = &pool;
  main.main = &main;
  Request sub;
  sub.pool = &pool;
  sub.main = &main;
  Trace t;
  t.request = &main;
  // A handler that terminates the request again (as an upstream's abort would) finds the list
  // empty.
  add_request_cleanup(
      sub,
      [](void* d) {
        auto& tr = *static_cast<Trace*>(d);
        tr.order += 's';
        run_request_cleanups(*tr.request);
      },
      &t);
  EXPECT_EQ(sub.cleanup, nullptr);
  ASSERT_NE(main.cleanup, nullptr);
  run_request_cleanups(sub);
  EXPECT_EQ(t.order, "s");
  EXPECT_EQ(main.cleanup, nullptr);
}

}  // namespace
}  // namespace weir::http
