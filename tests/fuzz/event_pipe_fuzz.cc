// libFuzzer target: the event pipe (through the unit tests' rig: real sockets, a real
// configuration and request) driven by the input - the buffers' number and size, whether a temp
// file may take the overflow, proxy_store's mode, then steps that each say how many bytes the
// upstream sends and how many the client takes. Against a model of the bytes: the client gets
// exactly what the upstream sent, in order, the raw buffers stay within their number, and at the
// end every list is empty. Built by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "pipe_rig.h"

using namespace weir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  int nbufs = 1 + data[0] % 8;
  size_t bufsize = 1 + data[1] % 128;
  bool spill = data[2] & 1;
  bool store = data[2] & 2;
  test::PipeRig rig(nbufs, bufsize, spill ? 1 << 20 : 0, data[2]);
  rig.p.store = store;
  std::string body;
  for (size_t i = 3; i + 1 < size && body.size() < 200000; i += 2) {
    // A step: the upstream sends 1-256 bytes (the model's next bytes), the client takes a budget.
    size_t n = 1 + data[i];
    std::string piece = rig.random_bytes(n);
    body += piece;
    rig.upstream_sends(piece);
    rig.client_reads(size_t{data[i + 1]} * 16);
    rig.pump(true);
  }
  rig.upstream_closes();
  if (rig.finish() != body) std::abort();
  return 0;
}
