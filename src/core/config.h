// Build-wide switches. Sanitizer builds (make asan, make fuzz) recycle no memory - pool blocks and
// connection state go back to the allocator - so that AddressSanitizer sees every use after free.
#pragma once

namespace weir {

#ifdef WEIR_NO_RECYCLE
inline constexpr bool kRecycleMemory = false;
#else
inline constexpr bool kRecycleMemory = true;
#endif

}  // namespace weir
