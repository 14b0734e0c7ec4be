// libFuzzer target: mp4's cut (mp4_cut) of arbitrary files, for a start, an end and buffer sizes
// the input chooses. Nothing may be read or written outside the file's bytes and the buffers, and a
// cut must add up: its pieces and the file range it keeps make the length it announces, and the
// range lies inside the file. Built by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/log.h"
#include "core/pool.h"
#include "modules/mp4/mp4_cut.h"

using namespace weir;
using namespace weir::http;

// The input: start (ms) and length (ms) as one byte each times 100, the buffer size's and the
// largest moov's as one byte each (times 64 bytes), then the file.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  static const LogSink quiet{.level = LogLevel::Emerg};
  Log log{.sink = &quiet};
  Mp4Settings settings{.buffer_size = size_t{data[2]} * 64 + 16,
                       .max_buffer_size = size_t{data[3]} * 64 + 16,
                       .start_key_frame = (data[0] & 1) != 0};
  std::string_view file(reinterpret_cast<const char*>(data + 4), size - 4);
  Pool pool;
  Mp4Cut cut(pool, log, -1, file, "fuzz.mp4", static_cast<off_t>(file.size()),
             uint64_t{data[0]} * 100, uint64_t{data[1]} * 100, settings);
  if (cut.run() != Mp4Outcome::Cut) return 0;
  off_t total = cut.data_end() - cut.data_start();
  for (std::string_view piece : cut.pieces()) {
    for (char c : piece) asm volatile("" : : "r"(c));  // every byte of a piece is readable
    total += static_cast<off_t>(piece.size());
  }
  if (cut.data_start() < 0 || cut.data_start() > cut.data_end() ||
      cut.data_end() > static_cast<off_t>(file.size()) || total != cut.content_length()) {
    __builtin_trap();
  }
  return 0;
}
