// URI escaping and unescaping (src/core/escape.cc).
#include "core/escape.h"

#include <gtest/gtest.h>

#include <string>

namespace weir {
namespace {

TEST(Escape, UriAndArgs) {
  char out[64];
  size_t n = escape_uri(out, "/a b?c#d", Escape::Uri);
  EXPECT_EQ(std::string(out, n), "/a%20b%3Fc%23d");
  n = escape_uri(out, "a=b&c", Escape::Args);
  EXPECT_EQ(std::string(out, n), "a=b%26c");
  EXPECT_EQ(escape_uri(nullptr, "a b", Escape::Uri), 5u);
  n = unescape_uri(out, "/a%20b?c%20d", Unescape::Uri);
  EXPECT_EQ(std::string(out, n), "/a b?c%20d");
}

}  // namespace
}  // namespace weir
