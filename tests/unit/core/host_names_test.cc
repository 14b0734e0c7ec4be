// Host name matching as server_name and map's hostnames do it: exact first, then the longest
// "*.suffix", then the longest "prefix.*"; a wildcard needs something in the host beyond it; a
// repeated name keeps its first value.
#include "core/host_names.h"

#include <gtest/gtest.h>

namespace weir {
namespace {

TEST(HostNames, ExactThenLongestSuffixThenLongestPrefix) {
  HostNames<int> names;
  EXPECT_TRUE(names.add("example.com", 1));
  EXPECT_TRUE(names.add("*.example.com", 2));
  EXPECT_TRUE(names.add("*.www.example.com", 3));
  EXPECT_TRUE(names.add("www.*", 4));
  EXPECT_TRUE(names.add("www.example.*", 5));
  EXPECT_TRUE(names.add("", 6));
  EXPECT_FALSE(names.add("*.example.com", 7));  // repeated: the first wins
  names.build();
  auto find = [&](const char* h) {
    const int* v = names.find(h);
    return v != nullptr ? *v : 0;
  };
  EXPECT_EQ(find("example.com"), 1);
  EXPECT_EQ(find("a.example.com"), 2);
  EXPECT_EQ(find("a.www.example.com"), 3);  // the longer suffix
  EXPECT_EQ(find("www.example.com"), 2);    // a suffix beats a prefix
  EXPECT_EQ(find("www.example.org"), 5);    // the longer prefix
  EXPECT_EQ(find("www.other.net"), 4);
  EXPECT_EQ(find(".example.com"), 0);  // nothing in front of the suffix
  EXPECT_EQ(find("www."), 0);          // nothing behind the prefix
  EXPECT_EQ(find(""), 6);
  EXPECT_EQ(find("other.org"), 0);
}

// Names as configuration writes them, checked as nginx's hash keys are: "" and "." are exact names;
// ".example.com" is the name and every name under it.
TEST(HostNames, ConfiguredNamesAsNginxTakesThem) {
  using Added = HostNames<int>::Added;
  HostNames<int> names;
  EXPECT_EQ(names.add_configured("", 1), Added::Ok);
  EXPECT_EQ(names.add_configured(".", 2), Added::Ok);
  EXPECT_EQ(names.add_configured(".example.com", 3), Added::Ok);
  EXPECT_EQ(names.add_configured("example.com", 4), Added::Conflict);
  for (const char* bad : {"*", "*.", "a*b", "*.a.*", "a..b", "*.*.com", ".a*"}) {
    EXPECT_EQ(names.add_configured(bad, 9), Added::Invalid) << bad;
  }
  names.build();
  auto find = [&](const char* h) {
    const int* v = names.find(h);
    return v != nullptr ? *v : 0;
  };
  EXPECT_EQ(find(""), 1);
  EXPECT_EQ(find("."), 2);
  EXPECT_EQ(find("example.com"), 3);
  EXPECT_EQ(find("a.example.com"), 3);
}

}  // namespace
}  // namespace weir
