// A worker's random numbers: xorshift64*, seeded once from the kernel. Fast, and good enough to
// spread load (upstream random) or pick a file (random_index); not for secrets.
#pragma once

#include <cstdint>

namespace weir {

uint64_t worker_random();

}  // namespace weir
