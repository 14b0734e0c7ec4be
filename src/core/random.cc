#include "core/random.h"

#include <sys/random.h>

#include "core/time_cache.h"

namespace weir {

uint64_t worker_random() {
  static uint64_t state = 0;
  if (state == 0) {
    if (getrandom(&state, sizeof state, 0) != sizeof state || state == 0) {
      state = clock::msec() | 1;
    }
  }
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

}  // namespace weir
