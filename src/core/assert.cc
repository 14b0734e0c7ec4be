#include "core/assert.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace weir {

DebugPoints g_debug_points = DebugPoints::None;

void debug_point() {
  switch (g_debug_points) {
    case DebugPoints::None:
      return;
    case DebugPoints::Stop:
      ::raise(SIGSTOP);
      return;
    case DebugPoints::Abort:
      std::abort();
  }
}

void assert_failed(const char* condition, const char* file, int line) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, "weir: [alert] assertion failed: %s at %s:%d\n", condition,
                        file, line);
  if (n > 0) (void)!::write(2, buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1);
  std::abort();
}

}  // namespace weir
