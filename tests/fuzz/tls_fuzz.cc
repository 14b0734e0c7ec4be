// libFuzzer target: the TLS side of a `listen ... ssl http2` connection (event/ssl's handshake and
// record layer behind Connection, the plain-HTTP and ALPN decisions) through connection_rig.h: the
// input is the client's bytes from the first one. A fixed P-256 certificate, given as "data:".
// Seed: a real ClientHello offering h2. Built by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <string>

#include "connection_rig.h"

namespace {

// A self-signed certificate for fuzz.test, for these runs only.
constexpr const char* kCertificate =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBfzCCASWgAwIBAgIUAL4/jexrqkYT5hJT1rmsiRSQDPcwCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJZnV6ei50ZXN0MCAXDTI2MTIwNTEzMzcyN1oYDzIxMjYxMTEx\n"
    "MTMzNzI3WjAUMRIwEAYDVQQDDAlmdXp6LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAATcwHbIDCPZyHHwMOF/kI1XY/7Nq402o68jIUH7t8j6LAt7aTW2wgPk\n"
    "T/MK4XXl8gNV9Fl1PRpMGkwEz0WdEy9Xo1MwUTAdBgNVHQ4EFgQUC6XRYmFq1dYJ\n"
    "e4HU/UM2u6tCQ5MwHwYDVR0jBBgwFoAUC6XRYmFq1dYJe4HU/UM2u6tCQ5MwDwYD\n"
    "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBijMKjnCFqfwyM8PLSbrz7\n"
    "vsoqry8pCOZj7gc9+fydewIhAMmk5YdDAmv1Kn2scju9yYJ0+JGGIbYiHKjmhoyK\n"
    "ztn5\n"
    "-----END CERTIFICATE-----\n";
constexpr const char* kKey =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZDjQY8fBpZ21ZVm8\n"
    "OrjoqvCCLsVM4jukggHrKUPx5MWhRANCAATcwHbIDCPZyHHwMOF/kI1XY/7Nq402\n"
    "o68jIUH7t8j6LAt7aTW2wgPkT/MK4XXl8gNV9Fl1PRpMGkwEz0WdEy9X\n"
    "-----END PRIVATE KEY-----\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* conf = new weir::test::TestConf(
      std::string("server { listen 127.0.0.1:1 ssl http2; ssl_certificate \"data:") + kCertificate +
      "\"; ssl_certificate_key \"data:" + kKey + "\"; location / { return 200 'hello'; } }");
  weir::test::run_client(*conf, "", data, size);
  return 0;
}
