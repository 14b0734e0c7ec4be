#include "core/status.h"

#include <cstdio>
#include <cstring>

namespace weir {

std::string vstrprintf(const char* fmt, va_list ap) {
  char small[512];
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  if (n < 0) return {};
  if (static_cast<size_t>(n) < sizeof small) return std::string(small, n);
  std::string out(n, '\0');
  std::vsnprintf(out.data(), n + 1, fmt, ap);
  return out;
}

std::string strprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vstrprintf(fmt, ap);
  va_end(ap);
  return s;
}

Status Status::sys_error(int err, const char* call, std::string_view name) {
  return errorf("%s() \"%.*s\" failed (%d: %s)", call, static_cast<int>(name.size()), name.data(),
                err, std::strerror(err));
}

Status Status::errorf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vstrprintf(fmt, ap);
  va_end(ap);
  return Status(std::move(s));
}

}  // namespace weir
