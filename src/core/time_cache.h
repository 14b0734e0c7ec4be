// The process's cached clock: wall and monotonic time read once per event-loop turn, and the
// formatted date strings (HTTP date, error-log, access-log, ISO 8601) rebuilt only when the second
// changes. nginx: src/core/ngx_times.c, src/core/ngx_parse_time.c
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string_view>

namespace weir::clock {

using msec_t = uint64_t;

constexpr size_t kHttpTimeLen = 29;

void update();

namespace clock_detail {
// What update() read and formatted; read through the accessors below, which are inline because
// a request reads the clock several times.
struct Cache {
  time_t sec = -1;  // -1: never read
  uint64_t wall_msec = 0;
  int64_t wall_ns = 0;
  int64_t wall_offset_ns = 0;  // wall minus monotonic
  msec_t mono = 0;
  char date_line[6 + kHttpTimeLen + 2];  // "Date: " http_time "\r\n", as a response sends it
  char err_log[24];
  char http_log[32];
  char iso[32];
};
extern Cache g;
inline const Cache& read() {
  if (g.sec < 0) update();
  return g;
}
}  // namespace clock_detail

inline time_t now() {
  return clock_detail::read().sec;
}
// Monotonic, for timers.
inline msec_t msec() {
  return clock_detail::read().mono;
}
inline uint64_t wall_msec() {
  return clock_detail::read().wall_msec;
}
inline int64_t wall_ns() {
  return clock_detail::read().wall_ns;
}
// The wall clock minus the monotonic one: it moves only when the wall clock is set (stepped).
inline int64_t wall_offset_ns() {
  return clock_detail::read().wall_offset_ns;
}
// Sat, 21 Nov 2026 23:28:03 GMT
inline std::string_view http_time() {
  return {clock_detail::read().date_line + 6, kHttpTimeLen};
}
// Date: Sat, 21 Nov 2026 23:28:03 GMT\r\n
inline std::string_view http_date_line() {
  return {clock_detail::read().date_line, sizeof clock_detail::Cache::date_line};
}
// 2026/11/21 23:28:03
inline std::string_view err_log_time() {
  return {clock_detail::read().err_log, 19};
}
// 21/Nov/2026:23:28:03 +0000
inline std::string_view http_log_time() {
  return {clock_detail::read().http_log, 26};
}
// 2026-11-21T23:28:03+00:00
inline std::string_view iso8601() {
  return {clock_detail::read().iso, 25};
}

// Writes kHttpTimeLen bytes.
char* format_http_time(char* buf, time_t t);
// t's UTC calendar fields (as gmtime_r gives them, without the C library's time-zone path).
struct tm utc_time(time_t t);
// Formats a cookie-style date "Thu, 31-Dec-37 23:55:55 GMT".
char* format_cookie_time(char* buf, time_t t);
// RFC 1123, RFC 850 and asctime dates, as nginx accepts them (If-Modified-Since and friends).
std::optional<time_t> parse_http_time(std::string_view s);

}  // namespace weir::clock
