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

void update();
time_t now();
msec_t msec();  // monotonic, for timers
uint64_t wall_msec();
int64_t wall_ns();
// The wall clock minus the monotonic one: it moves only when the wall clock is set (stepped).
int64_t wall_offset_ns();
std::string_view http_time();      // Sat, 21 Nov 2026 23:28:03 GMT
std::string_view err_log_time();   // 2026/11/21 23:28:03
std::string_view http_log_time();  // 21/Nov/2026:23:28:03 +0000
std::string_view iso8601();        // 2026-11-21T23:28:03+00:00

constexpr size_t kHttpTimeLen = 29;
// Writes kHttpTimeLen bytes.
char* format_http_time(char* buf, time_t t);
// t's UTC calendar fields (as gmtime_r gives them, without the C library's time-zone path).
struct tm utc_time(time_t t);
// Formats a cookie-style date "Thu, 31-Dec-37 23:55:55 GMT".
char* format_cookie_time(char* buf, time_t t);
// RFC 1123, RFC 850 and asctime dates, as nginx accepts them (If-Modified-Since and friends).
std::optional<time_t> parse_http_time(std::string_view s);

}  // namespace weir::clock
