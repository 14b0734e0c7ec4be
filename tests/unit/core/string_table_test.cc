// StringTable: every key added is found with its value through every growth, keys it lacks (even
// of the same hash-relevant shape: prefixes, other lengths) are not, and a key added twice keeps
// its first value; may_hold() is true for every length a key has, and long keys share one length
// bit without being missed.
#include "core/string_table.h"

#include <gtest/gtest.h>

#include <string>

namespace weir {
namespace {

TEST(StringTable, FindsEveryKeyThroughGrowth) {
  StringTable<int> t;
  EXPECT_EQ(t.find("a"), nullptr);
  for (int i = 0; i < 1000; i++) {
    ASSERT_TRUE(t.add("/page" + std::to_string(i) + ".html", i));
    for (int j = 0; j <= i; j += 97) {
      const int* v = t.find("/page" + std::to_string(j) + ".html");
      ASSERT_NE(v, nullptr) << i << " " << j;
      ASSERT_EQ(*v, j);
    }
  }
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_EQ(t.find("/page1000.html"), nullptr);
  EXPECT_EQ(t.find("/page1.htm"), nullptr);
  EXPECT_EQ(t.find("/page1.html "), nullptr);
  EXPECT_EQ(t.find(""), nullptr);
  EXPECT_FALSE(t.add("/page7.html", -1));
  EXPECT_EQ(*t.find("/page7.html"), 7);
  EXPECT_TRUE(t.add("", 42));
  EXPECT_EQ(*t.find(""), 42);
}

TEST(StringTable, LengthFilterNeverHidesAKey) {
  StringTable<int> t;
  EXPECT_FALSE(t.may_hold(0));
  ASSERT_TRUE(t.add("/a", 1));
  ASSERT_TRUE(t.add("/index.html", 2));
  std::string long_key(100, 'x');
  ASSERT_TRUE(t.add(long_key, 3));
  EXPECT_TRUE(t.may_hold(2));
  EXPECT_TRUE(t.may_hold(11));
  EXPECT_FALSE(t.may_hold(3));
  EXPECT_FALSE(t.may_hold(10));
  // 63 bytes and longer share a bit: the table is asked, and answers by the whole key.
  EXPECT_TRUE(t.may_hold(63));
  EXPECT_TRUE(t.may_hold(500));
  EXPECT_EQ(t.find(std::string(63, 'x')), nullptr);
  EXPECT_EQ(*t.find(long_key), 3);
  EXPECT_EQ(t.find("/b"), nullptr);
  EXPECT_EQ(*t.find("/index.html"), 2);
}

}  // namespace
}  // namespace weir
