#include "core/str.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(Str, ParseSize) {
  EXPECT_EQ(parse_size("1024"), 1024);
  EXPECT_EQ(parse_size("8k"), 8192);
  EXPECT_EQ(parse_size("1M"), 1048576);
  EXPECT_FALSE(parse_size("1g").has_value());
  EXPECT_EQ(parse_offset("1g"), int64_t{1} << 30);
  EXPECT_FALSE(parse_size("").has_value());
  EXPECT_FALSE(parse_size("k").has_value());
  EXPECT_FALSE(parse_size("-1").has_value());
}

TEST(Str, ParseTime) {
  EXPECT_EQ(parse_time("30", false), 30000);
  EXPECT_EQ(parse_time("500ms", false), 500);
  EXPECT_EQ(parse_time("1h 30m", false), 5400000);
  EXPECT_EQ(parse_time("1m30", false), 90000);
  EXPECT_EQ(parse_time("2d", true), 172800);
  EXPECT_FALSE(parse_time("1y", false).has_value());  // years only for seconds
  EXPECT_EQ(parse_time("1y", true), 31536000);
  EXPECT_FALSE(parse_time("10ms", true).has_value());
  EXPECT_FALSE(parse_time("1s 1m", false).has_value());  // units must decrease
  EXPECT_FALSE(parse_time("", false).has_value());
  EXPECT_FALSE(parse_time("x", false).has_value());
}

}  // namespace
}  // namespace weir
