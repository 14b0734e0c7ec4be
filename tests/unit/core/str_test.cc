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

TEST(Str, PutEveryShortLength) {
  std::string src = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
  for (size_t n = 0; n <= 40; n++) {
    std::string dst(48, '#');
    char* end = put(dst.data() + 1, std::string_view(src).substr(3, n));
    EXPECT_EQ(end, dst.data() + 1 + n);
    std::string want(48, '#');
    want.replace(1, n, src, 3, n);
    EXPECT_EQ(dst, want) << n;
  }
  EXPECT_EQ(put(nullptr, std::string_view()), nullptr);
}

TEST(Str, PutUint) {
  auto fmt = [](uint64_t v) {
    char buf[32];
    return std::string(buf, put_uint(buf, v));
  };
  for (uint64_t v :
       {0ull, 7ull, 9ull, 10ull, 99ull, 100ull, 101ull, 999ull, 1000ull, 1024ull, 9999ull, 10000ull,
        123456789ull, 10000000000000000000ull, 18446744073709551615ull}) {
    EXPECT_EQ(fmt(v), std::to_string(v));
  }
  char buf[8];
  EXPECT_EQ(std::string(buf, put_uint_pad(buf, 7, 3)), "007");
  EXPECT_EQ(std::string(buf, put_uint_pad(buf, 404, 3)), "404");
  EXPECT_EQ(std::string(buf, put_uint_pad(buf, 1234, 3)), "234");
  EXPECT_EQ(std::string(buf, put_uint_pad(buf, 5, 2)), "05");
  EXPECT_EQ(std::string(buf, put_int(buf, -9223372036854775807ll - 1)), "-9223372036854775808");
}

// nginx's "%.Nf": the fraction rounded half up from the double (printf would say "0.12" for the
// first: 0.125 is exact, and it rounds to even).
TEST(Str, PutFixedAsNginx) {
  auto fmt = [](double v, int digits) {
    char buf[48];
    return std::string(buf, put_fixed(buf, v, digits));
  };
  EXPECT_EQ(fmt(0.125, 2), "0.13");
  EXPECT_EQ(fmt(37.4056, 4), "37.4056");
  EXPECT_EQ(fmt(-122.0775, 4), "-122.0775");
  EXPECT_EQ(fmt(9.999996, 5), "10.00000");  // the fraction's carry goes to the whole part
  EXPECT_EQ(fmt(-0.000001, 5), "-0.00000");
  EXPECT_EQ(fmt(2.5, 0), "2");
  EXPECT_EQ(fmt(52.35, 5), "52.35000");
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

TEST(HashBytes, EveryByteCounts) {
  // Keys that differ in one byte, at every position of every length up to 24, hash apart; equal
  // keys from different storage hash alike.
  for (size_t len = 1; len <= 24; len++) {
    std::string base(len, 'a');
    for (size_t i = 0; i < len; i++) {
      std::string other = base;
      other[i] = 'b';
      EXPECT_NE(hash_bytes(base), hash_bytes(other)) << len << " " << i;
    }
    EXPECT_EQ(hash_bytes(base), hash_bytes(std::string(len, 'a')));
  }
  EXPECT_NE(hash_bytes(""), hash_bytes(std::string_view("\0", 1)));
}

TEST(HashBytes, SameAtCompileTimeAsAtRunTime) {
  // Tables the compiler builds (KnownHeaderIndex) are searched with hashes computed at run time.
  constexpr std::string_view kKeys[] = {"",
                                        "a",
                                        "ab",
                                        "abc",
                                        "abcd",
                                        "abcdefg",
                                        "abcdefgh",
                                        "abcdefghi",
                                        "x-forwarded-for",
                                        "content-security-policy"};
  constexpr uint64_t kAtCompile[] = {
      hash_bytes(kKeys[0]), hash_bytes(kKeys[1]), hash_bytes(kKeys[2]), hash_bytes(kKeys[3]),
      hash_bytes(kKeys[4]), hash_bytes(kKeys[5]), hash_bytes(kKeys[6]), hash_bytes(kKeys[7]),
      hash_bytes(kKeys[8]), hash_bytes(kKeys[9])};
  for (size_t i = 0; i < std::size(kKeys); i++) {
    std::string copy(kKeys[i]);
    EXPECT_EQ(hash_bytes(copy), kAtCompile[i]) << copy;
  }
}

TEST(Str, IfindFindsTheFirstPlaceWhateverTheCase) {
  EXPECT_EQ(ifind("keep-alive", "close"), std::string_view::npos);
  EXPECT_EQ(ifind("Keep-Alive, CLOSE", "close"), 12u);
  EXPECT_EQ(ifind("cclose", "close"), 1u);
  EXPECT_EQ(ifind("close", "close", 1), std::string_view::npos);
  EXPECT_EQ(ifind("a, Close, close", "close", 4), 10u);
  EXPECT_EQ(ifind("clos", "close"), std::string_view::npos);
  EXPECT_EQ(ifind("abc", ""), 0u);
  EXPECT_EQ(ifind("abc", "", 3), 3u);
  EXPECT_EQ(ifind("abc", "", 4), std::string_view::npos);
  EXPECT_EQ(ifind("xYz", "Z"), 2u);
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// Every byte value at every place of strings of every length up to 20 (the rest 'Q'), for the
// case-folding helpers that work on words.
template <class Check>
void for_every_byte_everywhere(Check check) {
  for (size_t len = 0; len <= 20; len++) {
    for (size_t at = 0; at < std::max<size_t>(len, 1); at++) {
      for (int b = 0; b < 256; b++) {
        std::string s(len, 'Q');
        if (len > 0) s[at] = static_cast<char>(b);
        check(s, b);
      }
    }
  }
}

// lowercase_into: each string comes out as to_lower makes it, and nothing past the end is written.
TEST(Str, LowercaseIntoEveryByteEverywhere) {
  for_every_byte_everywhere([](const std::string& src, int) {
    size_t len = src.size();
    std::string dst(len + 1, '#');
    lowercase_into(dst.data(), src);
    for (size_t i = 0; i < len; i++) ASSERT_EQ(dst[i], to_lower(src[i])) << src;
    ASSERT_EQ(dst[len], '#');
  });
}

// hash_bytes_caseless and equals_lower: each string hashes as the lower-cased string does, and
// equals it exactly when to_lower makes the two the same.
TEST(Str, CaselessHashAndCompareSeeEveryByteEverywhere) {
  for_every_byte_everywhere([](const std::string& s, int b) {
    size_t len = s.size();
    std::string lower = lowercased(s);
    ASSERT_EQ(hash_bytes_caseless(s), hash_bytes(lower)) << len << " " << b;
    ASSERT_TRUE(equals_lower(lower, s)) << len << " " << b;
    std::string other(len, 'q');
    bool same = len == 0 || to_lower(static_cast<char>(b)) == 'q';
    ASSERT_EQ(equals_lower(other, s), same) << len << " " << b;
  });
  EXPECT_FALSE(equals_lower("bin", "bi"));
  EXPECT_FALSE(equals_lower("bin", "BINS"));
  EXPECT_TRUE(equals_lower("", ""));
}

// same_bytes and compare_keys read words: a difference at any place of keys of every length up to
// 40 is seen, equal keys are equal, and the order is by length, then memcmp's.
TEST(Str, SameBytesAndCompareKeysSeeEveryPlace) {
  for (size_t len = 0; len <= 40; len++) {
    std::string a(len, 'k');
    ASSERT_TRUE(same_bytes(a.data(), std::string(a).data(), len));
    ASSERT_EQ(compare_keys(a, std::string(a)), 0);
    for (size_t at = 0; at < len; at++) {
      std::string b = a;
      b[at] = 'l';
      ASSERT_FALSE(same_bytes(a.data(), b.data(), len)) << len << " " << at;
      ASSERT_LT(compare_keys(a, b), 0);
      ASSERT_GT(compare_keys(b, a), 0);
    }
    ASSERT_LT(compare_keys(a, a + "a"), 0);
    ASSERT_GT(compare_keys("z" + a + "a", a), 0);
  }
}

// take_int reads the digits where it is and stops after them, with parse_int's overflow rule.
TEST(Str, TakeIntStopsAfterTheDigits) {
  size_t i = 6;
  std::string_view v = "bytes=100-199/1000";
  ASSERT_EQ(take_int(v, i), 100);
  ASSERT_EQ(i, 9u);
  i++;
  ASSERT_EQ(take_int(v, i), 199);
  ASSERT_EQ(v[i], '/');
  size_t none = 0;
  ASSERT_EQ(take_int("-5", none), std::nullopt);
  ASSERT_EQ(none, 0u);
  size_t big = 0;
  ASSERT_EQ(take_int("9223372036854775807", big), INT64_MAX);
  big = 0;
  ASSERT_EQ(take_int("9223372036854775808-", big), std::nullopt);
  ASSERT_EQ(big, 19u);
}

}  // namespace
}  // namespace weir
