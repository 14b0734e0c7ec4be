// MD5 for keys that name things (cache files, variants), computed on the stack: OpenSSL 3.0's EVP
// interface allocates a provider context on every digest (3 mallocs each, measured), and the
// cache digests a key on every request. The digest itself is OpenSSL's, never weir's own.
#pragma once

#include <openssl/md5.h>

#include <array>
#include <cstdint>
#include <string_view>

namespace weir {

using Md5Digest = std::array<uint8_t, 16>;

class Md5 {
 public:
  Md5();
  void update(std::string_view bytes);
  Md5Digest final();

  static Md5Digest of(std::string_view bytes) {
    Md5 md5;
    md5.update(bytes);
    return md5.final();
  }

 private:
  MD5_CTX ctx_;
};

}  // namespace weir
