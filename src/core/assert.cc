#include "core/assert.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace weir {

void assert_failed(const char* condition, const char* file, int line) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, "weir: [alert] assertion failed: %s at %s:%d\n", condition,
                        file, line);
  if (n > 0) (void)!::write(2, buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1);
  std::abort();
}

}  // namespace weir
