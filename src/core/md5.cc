// The low-level MD5 calls are deprecated in OpenSSL 3.0 in favour of EVP, which allocates per use
// (see md5.h); they remain in 3.x and work on the caller's MD5_CTX.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core/md5.h"

namespace weir {

Md5::Md5() {
  MD5_Init(&ctx_);
}

void Md5::update(std::string_view bytes) {
  MD5_Update(&ctx_, bytes.data(), bytes.size());
}

Md5Digest Md5::final() {
  Md5Digest out{};
  MD5_Final(out.data(), &ctx_);
  return out;
}

}  // namespace weir
