#include <gtest/gtest.h>

#include <random>

#include "core/time_cache.h"

namespace weir {
namespace {

TEST(HttpTime, FormatsAndParsesTheThreeForms) {
  char buf[64];
  char* e = clock::format_http_time(buf, 784111777);
  EXPECT_EQ(std::string(buf, e), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(clock::parse_http_time("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(clock::parse_http_time("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(clock::parse_http_time("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(clock::parse_http_time("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(clock::parse_http_time("Tue, 29 Feb 2000 12:00:00 GMT"), 951825600);
  EXPECT_FALSE(clock::parse_http_time("Mon, 29 Feb 2001 12:00:00 GMT").has_value());
  EXPECT_FALSE(clock::parse_http_time("garbage").has_value());
  EXPECT_FALSE(clock::parse_http_time("Sun, 06 Nov 1994 25:49:37 GMT").has_value());
}

TEST(HttpTime, UtcFieldsAsGmtimeGivesThem) {
  std::mt19937_64 rng(7);
  std::vector<time_t> times = {0,         -1,         86399,      86400,       951782400,
                               951868800, 4107542399, 4107542400, -2208988800, 253402300799};
  for (int i = 0; i < 200000; i++) {
    times.push_back(static_cast<time_t>(rng() % 20'000'000'000ULL) - 5'000'000'000LL);
  }
  for (time_t t : times) {
    struct tm want;
    ASSERT_NE(gmtime_r(&t, &want), nullptr);
    struct tm got = clock::utc_time(t);
    ASSERT_EQ(got.tm_year, want.tm_year) << t;
    ASSERT_EQ(got.tm_mon, want.tm_mon) << t;
    ASSERT_EQ(got.tm_mday, want.tm_mday) << t;
    ASSERT_EQ(got.tm_hour, want.tm_hour) << t;
    ASSERT_EQ(got.tm_min, want.tm_min) << t;
    ASSERT_EQ(got.tm_sec, want.tm_sec) << t;
    ASSERT_EQ(got.tm_wday, want.tm_wday) << t;
  }
}

}  // namespace
}  // namespace weir
