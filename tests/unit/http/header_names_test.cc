// Header names found by hash: KnownHeaderIndex finds every entry by its name and nothing else, with
// a table whose names crowd the index (many of one length, prefixes of each other); the hash is the
// same at compile time and at run time; HeaderNameSet (the *_hide_header lists) holds what was
// added and not removed.
#include <gtest/gtest.h>

#include <string>

#include "http/headers_in.h"

namespace weir::http {
namespace {

struct Slots {
  Header* a;
};

constexpr KnownHeader<Slots, int> kTable[] = {
    {"a", nullptr, 1},
    {"ab", nullptr, 2},
    {"abc", nullptr, 3},
    {"abcdefgh", nullptr, 4},
    {"abcdefghi", nullptr, 5},
    {"content-length", nullptr, 6},
    {"content-lengtH", nullptr, 7},
    {"x-forwarded-for", nullptr, 8},
    {"te", nullptr, 9},
    {"et", nullptr, 10},
    {"", nullptr, 11},
};
constexpr KnownHeaderIndex kIndex(kTable);

TEST(KnownHeaderIndex, FindsEveryEntryAndNothingElse) {
  for (const auto& e : kTable) {
    std::string name(e.name);  // a run-time copy: the hash computed at run time
    const auto* found = kIndex.find(name);
    ASSERT_NE(found, nullptr) << name;
    EXPECT_EQ(found->handler, e.handler) << name;
  }
  for (const char* name : {"b", "abcd", "abcdefg", "abcdefghij", "content-lengt", "content-lengthx",
                           "x-forwarded-fo", "tee", "t", "e"}) {
    EXPECT_EQ(kIndex.find(name), nullptr) << name;
  }
}

TEST(KnownHeaderIndex, HashIsTheSameAtCompileAndRunTime) {
  constexpr uint32_t at_compile = header_name_hash("x-forwarded-for");
  std::string name = "x-forwarded-for";
  EXPECT_EQ(header_name_hash(name), at_compile);
  static_assert(header_name_hash("ab") != header_name_hash("ba"));
}

TEST(HeaderNameSet, HoldsWhatWasAddedAndNotRemoved) {
  HeaderNameSet set;
  EXPECT_FALSE(set.contains("date"));
  for (const char* n : {"date", "server", "x-pad", "x-accel-expires", "x-accel-redirect", "a"}) {
    set.add(n);
  }
  for (const char* n : {"date", "server", "x-pad", "x-accel-expires", "x-accel-redirect", "a"}) {
    EXPECT_TRUE(set.contains(n)) << n;
  }
  for (const char* n : {"dates", "serve", "x-accel", "content-type", "", "b"}) {
    EXPECT_FALSE(set.contains(n)) << n;
  }
  set.remove_if([](const std::string& n) { return n == "server" || n == "a"; });
  EXPECT_FALSE(set.contains("server"));
  EXPECT_FALSE(set.contains("a"));
  EXPECT_TRUE(set.contains("x-pad"));
  EXPECT_TRUE(set.contains(header_name_hash("date"), "date"));
  EXPECT_FALSE(set.contains(header_name_hash("date") + 1, "date"));
}

}  // namespace
}  // namespace weir::http
