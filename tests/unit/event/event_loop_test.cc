// The event loop without sockets: timers fire in deadline order with timedout set, a deleted timer
// never fires, re-arming within the lazy delay keeps the old deadline, posted events run after the
// batch (each once), next-round events run after the following wait, and only non-cancelable timers
// keep a shutting-down worker alive.
#include "event/event_loop.h"

#include <gtest/gtest.h>

#include <string>

#include "core/time_cache.h"

namespace weir {
namespace {

std::string g_trace;

struct Named {
  Event ev;
  char name;
  explicit Named(char n) : name(n) {
    ev.data = this;
    ev.handler = [](Event& e) {
      g_trace += static_cast<Named*>(e.data)->name;
      if (e.timedout) g_trace += '!';
    };
  }
};

void run_until(EventLoop& loop, size_t want, int max_rounds = 50) {
  for (int i = 0; i < max_rounds && g_trace.size() < want; i++) {
    clock::update();
    loop.process_events(20);
  }
}

TEST(EventLoop, TimersFireInDeadlineOrder) {
  EventLoop loop;
  ASSERT_TRUE(loop.init(8).ok());
  g_trace.clear();
  Named a('a'), b('b'), c('c');
  loop.add_timer(b.ev, 60);
  loop.add_timer(a.ev, 10);
  loop.add_timer(c.ev, 120);
  loop.del_timer(c.ev);  // deleted: never fires
  EXPECT_EQ(loop.timer_count(), 2u);
  run_until(loop, 4);
  EXPECT_EQ(g_trace, "a!b!");
  EXPECT_FALSE(c.ev.timer_set);
  EXPECT_TRUE(loop.no_timers_left());
}

TEST(EventLoop, ReArmingWithinTheLazyDelayKeepsTheDeadline) {
  EventLoop loop;
  ASSERT_TRUE(loop.init(8).ok());
  Named a('a');
  clock::update();
  loop.add_timer(a.ev, 1000);
  clock::msec_t first = a.ev.timer_key;
  loop.add_timer(a.ev, 1100);  // within the lazy delay: no heap work
  EXPECT_EQ(a.ev.timer_key, first);
  loop.add_timer(a.ev, 5000);  // far enough: moved
  EXPECT_GT(a.ev.timer_key, first + 3000);
  EXPECT_EQ(loop.timer_count(), 1u);
  loop.del_timer(a.ev);
}

TEST(EventLoop, PostedAndNextRoundEvents) {
  EventLoop loop;
  ASSERT_TRUE(loop.init(8).ok());
  g_trace.clear();
  Named p('p'), q('q'), n('n');
  loop.post(p.ev);
  loop.post(p.ev);  // posting twice runs it once
  loop.post(q.ev);
  loop.post_next_round(n.ev);
  loop.process_events(0);
  EXPECT_EQ(g_trace.substr(0, 2), "pq");
  run_until(loop, 3);
  EXPECT_EQ(g_trace, "pqn");
  loop.post(p.ev);
  loop.unpost(p.ev);  // taken back: never runs
  loop.process_events(0);
  EXPECT_EQ(g_trace, "pqn");
}

TEST(EventLoop, CancelableTimersDoNotHoldAShutdown) {
  EventLoop loop;
  ASSERT_TRUE(loop.init(8).ok());
  Named keepalive('k'), request('r');
  keepalive.ev.cancelable = true;
  loop.add_timer(keepalive.ev, 10000);
  EXPECT_TRUE(loop.no_timers_left());
  loop.add_timer(request.ev, 10000);
  EXPECT_FALSE(loop.no_timers_left());
  g_trace.clear();
  loop.expire_all_timers();  // fast shutdown: every handler runs, timed out
  EXPECT_EQ(g_trace.size(), 4u);
  EXPECT_NE(g_trace.find("k!"), std::string::npos);
  EXPECT_NE(g_trace.find("r!"), std::string::npos);
  EXPECT_EQ(loop.timer_count(), 0u);
}

}  // namespace
}  // namespace weir
