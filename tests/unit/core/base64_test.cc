// Base64 as nginx reads and writes it: RFC 4648's test vectors both ways, decoding that stops at
// '=' (the userid cookie's 22 characters), and what is not an encoding.
#include "core/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace weir {
namespace {

std::string encode(std::string_view s) {
  std::string out(base64_encoded_length(s.size()), '\0');
  size_t n =
      base64_encode(out.data(), {reinterpret_cast<const unsigned char*>(s.data()), s.size()});
  EXPECT_EQ(n, out.size());
  return out;
}

std::optional<std::string> decode(std::string_view s) {
  std::string out(base64_decoded_length(s.size()), '\0');
  auto n = base64_decode(out.data(), s);
  if (!n) return std::nullopt;
  out.resize(*n);
  return out;
}

TEST(Base64, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (auto [plain, coded] : vectors) {
    EXPECT_EQ(encode(plain), coded);
    EXPECT_EQ(decode(coded), std::string(plain));
  }
  std::string all;
  for (int i = 0; i < 256; i++) all += static_cast<char>(i);
  EXPECT_EQ(decode(encode(all)), all);
}

TEST(Base64, DecodesUpToPaddingAndWithoutIt) {
  EXPECT_EQ(decode("Zm9vYg"), "foob");
  EXPECT_EQ(decode("Zm9vYg==garbage"), "foob");  // what follows '=' is not read
  EXPECT_EQ(decode("Zm9vYmE"), "fooba");
}

TEST(Base64, RejectsWhatIsNoEncoding) {
  EXPECT_EQ(decode("Zm9v!"), std::nullopt);
  EXPECT_EQ(decode("Zm9vY"), std::nullopt);  // one character past a group holds no byte
  EXPECT_EQ(decode("Zm 9v"), std::nullopt);
}

}  // namespace
}  // namespace weir
