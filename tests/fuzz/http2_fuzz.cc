// libFuzzer target: HTTP/2 input through weir's glue around nghttp2 (connection_rig.h): a
// `listen ... http2` server with answers, a mirror that reads request bodies, a subrequest and a
// redirect; the input follows the client preface. Built by `make fuzz`.
#include <cstddef>
#include <cstdint>

#include "connection_rig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* conf = new weir::test::TestConf(
      "server { listen 127.0.0.1:1 http2; large_client_header_buffers 2 1k;"
      "  location / { return 200 'hello'; }"
      "  location /m { client_max_body_size 64k; mirror /r; return 200 'mirrored'; }"
      "  location /r { internal; return 204; }"
      "  location /x { return 302 /; }"
      "}");
  weir::test::run_client(*conf, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", data, size);
  return 0;
}
