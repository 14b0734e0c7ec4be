// Code: what HTTP handlers and header filters answer - an Rc, or an HTTP status to finish the
// request with (nginx's mixed NGX_OK / NGX_HTTP_* return values, kept apart by type).
#pragma once

#include "core/status.h"

namespace weir::http {

// What a handler answers: one of the Rc codes, or an HTTP status to finish the request with.
class Code {
 public:
  constexpr Code(Rc rc) : v_(-1 - static_cast<int>(rc)) {}  // NOLINT: Rc converts implicitly
  static constexpr Code status(int s) { return Code(s, 0); }
  constexpr bool operator==(Rc rc) const { return v_ == -1 - static_cast<int>(rc); }
  constexpr bool operator!=(Rc rc) const { return !(*this == rc); }
  constexpr bool is_status() const { return v_ > 0; }
  constexpr int http_status() const { return v_; }
  constexpr Rc rc() const { return static_cast<Rc>(-1 - v_); }
  // The number nginx's debug log prints for it: a status, or NGX_OK (0) down to NGX_ABORT (-6).
  constexpr int number() const { return v_ > 0 ? v_ : v_ + 1; }

 private:
  constexpr Code(int s, int) : v_(s) {}
  int v_;
};

}  // namespace weir::http
