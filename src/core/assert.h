// Invariant checks. WEIR_ASSERT(cond) is checked in debug, sanitizer and fuzz builds and compiled
// out of release ones (the hot paths pay nothing); WEIR_RELEASE_ASSERT(cond) is always checked, for
// invariants whose breach would corrupt memory or answer the wrong client. A failed check writes
// the condition with file:line to stderr and aborts (a worker is respawned by the master).
#pragma once

namespace weir {

[[noreturn]] void assert_failed(const char* condition, const char* file, int line);

// debug_points: what a worker does where nginx calls ngx_debug_point() (after an alert that says
// the code itself went wrong, such as a zero size buf): nothing, stop itself (SIGSTOP, for a
// debugger to attach) or abort (a core dump).
enum class DebugPoints : unsigned char { None, Stop, Abort };
extern DebugPoints g_debug_points;
void debug_point();

}  // namespace weir

#define WEIR_RELEASE_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::weir::assert_failed(#cond, __FILE__, __LINE__))

#if defined(WEIR_CHECKED) || !defined(NDEBUG)
#define WEIR_ASSERT(cond) WEIR_RELEASE_ASSERT(cond)
#else
#define WEIR_ASSERT(cond) static_cast<void>(sizeof(cond))
#endif
