#include <gtest/gtest.h>

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

}  // namespace
}  // namespace weir
