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

TEST(HttpTime, ParsesWhatItFormatsInEveryMonth) {
  // The first and the last second of every month of 2024 (a leap year) and 2026.
  for (int year : {2024, 2026}) {
    for (int month = 0; month < 12; month++) {
      struct tm tm = {};
      tm.tm_year = year - 1900;
      tm.tm_mon = month;
      tm.tm_mday = 1;
      time_t first = timegm(&tm);
      tm.tm_mon = month + 1;
      time_t last = timegm(&tm) - 1;
      for (time_t t : {first, last}) {
        char buf[64];
        char* e = clock::format_http_time(buf, t);
        EXPECT_EQ(clock::parse_http_time(std::string_view(buf, e - buf)), t) << std::string(buf, e);
      }
    }
  }
  EXPECT_FALSE(clock::parse_http_time("Sun, 06 Nox 1994 08:49:37 GMT").has_value());
  EXPECT_FALSE(clock::parse_http_time("Sun, 06 nov 1994 08:49:37 GMT").has_value());
  EXPECT_FALSE(clock::parse_http_time("Sun, 06 No").has_value());
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
