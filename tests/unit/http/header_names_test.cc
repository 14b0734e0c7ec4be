// Header names found by hash: KnownHeaderIndex finds every entry by its name and nothing else, with
// a table whose names crowd the index (many of one length, prefixes of each other); the hash is the
// same at compile time and at run time.
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

}  // namespace
}  // namespace weir::http
