// Return codes on the data path (nginx's NGX_OK/NGX_AGAIN/...) and Status for configuration and
// start-up. nginx: src/core/ngx_core.h (NGX_OK ... NGX_ABORT)
#pragma once

#include <cstdarg>
#include <string>
#include <string_view>
#include <utility>

namespace weir {

// Rc is what handlers, filters and I/O return on the data path; no exceptions there.
enum class Rc { Ok, Error, Again, Busy, Done, Declined, Abort };

// What a read on a socket answers: Ok with n > 0 bytes, Done at the end of the stream, Again when
// it would block, Error (errno set; the connection layer logs it). drained: the socket has nothing
// more for now (fewer bytes came than were asked for, or it would block).
struct IoResult {
  Rc rc = Rc::Error;
  size_t n = 0;
  bool drained = false;
};

// Status carries an error message for configuration and start-up; empty means success.
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status error(std::string message) { return Status(std::move(message)); }
  // An error whose message already names its place ("... in file:line"): not decorated further.
  static Status located(std::string message) {
    Status s(std::move(message));
    s.located_ = true;
    return s;
  }
  // A failure nginx reports at [crit] rather than [emerg]: a system call on the configuration
  // file itself.
  static Status critical(std::string message) {
    Status s(std::move(message));
    s.critical_ = true;
    return s;
  }
  // The same error, reported at [error] as nginx reports some (a module's
  // ngx_conf_log_error(NGX_LOG_ERR, ...) that still fails the configuration).
  Status at_error_level() && {
    error_level_ = true;
    return std::move(*this);
  }
  [[gnu::format(printf, 1, 2)]] static Status errorf(const char* fmt, ...);
  // A failed system call on a named object, in nginx's words: `open() "name" failed (2: No such
  // file or directory)`.
  static Status sys_error(int err, const char* call, std::string_view name);

  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }
  bool is_located() const { return located_; }
  bool is_critical() const { return critical_; }
  bool is_error_level() const { return error_level_; }

 private:
  explicit Status(std::string m) : message_(std::move(m)) {
    if (message_.empty()) message_ = "error";
  }
  std::string message_;
  bool located_ = false;
  bool critical_ = false;
  bool error_level_ = false;
};

// A value, or the Status saying why there is none: what configuration and start-up calls that
// produce something return (never an out-parameter for the error, never "" for success).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}        // NOLINT: a value converts implicitly
  Result(Status error) : status_(std::move(error)) {}  // NOLINT: so does an error

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& operator*() { return value_; }
  const T& operator*() const { return value_; }
  T* operator->() { return &value_; }

 private:
  T value_{};
  Status status_;
};

// printf into a std::string.
[[gnu::format(printf, 1, 2)]] std::string strprintf(const char* fmt, ...);
std::string vstrprintf(const char* fmt, va_list ap);

}  // namespace weir
