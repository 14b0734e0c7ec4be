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

// find_caseless: a lower-case table answers a key in any case, of every length (word-compared
// short keys and longer ones), and no other key.
TEST(StringTable, FindCaselessAnswersAnyCase) {
  StringTable<int> t;
  const char* keys[] = {"a", "js", "bin", "html", "woff2", "xhtml+xml", "x-longer-extension-name"};
  for (int i = 0; i < 7; i++) ASSERT_TRUE(t.add(keys[i], i));
  for (int i = 0; i < 7; i++) {
    std::string upper = keys[i];
    for (char& c : upper) c = to_upper(c);
    ASSERT_NE(t.find_caseless(keys[i]), nullptr) << keys[i];
    EXPECT_EQ(*t.find_caseless(keys[i]), i);
    ASSERT_NE(t.find_caseless(upper), nullptr) << upper;
    EXPECT_EQ(*t.find_caseless(upper), i);
    std::string mixed = keys[i];
    mixed[0] = to_upper(mixed[0]);
    EXPECT_EQ(*t.find_caseless(mixed), i);
  }
  EXPECT_EQ(t.find_caseless("bim"), nullptr);
  EXPECT_EQ(t.find_caseless("BI"), nullptr);
  EXPECT_EQ(t.find_caseless("HTM"), nullptr);
  EXPECT_EQ(t.find_caseless("x-longer-extension-namE "), nullptr);
  EXPECT_EQ(t.find_caseless("x-longer-extension-nbme"), nullptr);
  EXPECT_EQ(t.find_caseless(""), nullptr);
}

}  // namespace
}  // namespace weir
